#pragma once
// Retry timing (docs/architecture.md, "Failure policy and retries") as pure decision functions:
// backoff, the server's hint, whether to wait or move on, and the per-provider retry budget. No
// I/O, no clock reads, no sleeps: time is passed in, randomness comes from a caller-owned
// generator, so tests drive everything.
#include <optional>
#include <random>
#include <string>

#include "core/duration.hpp"
#include "engine/errors.hpp"
#include "providers/types.hpp"

namespace detour::engine {

// Defaults match the official OpenAI/Anthropic SDKs (INITIAL_RETRY_DELAY 0.5 s, MAX 8 s).
struct BackoffConfig {
  Millis base{500};
  Millis cap{8000};
};

// Capped exponential backoff with FULL jitter: a uniform draw in [0, min(cap, base * 2^n)],
// n = retries_so_far (0 for the first retry; negative counts as 0). Overflow-safe for any n.
// A non-positive base or cap gives 0.
Millis backoff_delay(int retries_so_far, const BackoffConfig& config, std::mt19937_64& rng);

// The wait the server asked for, or nullopt when it named none. First match wins:
//   1. headers.retry_after: retry-after-ms, else Retry-After (seconds or HTTP date), already
//      merged by parse_rate_limit_headers;
//   2. error.retry_delay: Gemini RetryInfo.retryDelay;
//   3. only when error.status is 429: the rate-limit reset that explains the refusal. Of
//      requests_reset and tokens_reset (whichever are present), the one whose *_remaining is 0;
//      if both are exhausted, the later of the two (both must reset); if neither is known to be
//      exhausted, the sooner one.
// Negative values are clamped to 0. x-should-retry is not consulted here: whether to retry at
// all is the caller's decision, this only says how long the server wants us to wait.
std::optional<Millis> server_hint(const providers::RateLimitInfo& headers,
                                  const providers::ProviderError& error);

inline constexpr Millis kDefaultMoveOnThreshold{10'000};

struct WaitDecision {
  enum class Kind { retry_after, move_on } kind;
  // retry_after: how long to sleep before retrying this target.
  // move_on: the wait that was declined (how long this target is expected to stay unavailable,
  // useful to the limiter and for -v); the caller does not sleep.
  Millis wait;
  std::string reason;  // for -v lines, e.g. "retry-after 37s > 10s while another target is usable"
};

// Whether to wait on this target or move on now. The wait considered is the hint when there is
// one (a server hint always wins over our own backoff), else `backoff`. In order:
//   - a wait that uses up all the time left (wait >= time_left) leaves nothing for the attempt:
//     move on now;
//   - a wait longer than move_on_threshold while another target is usable: move on now, since
//     rate limiting is a routing decision;
//   - otherwise wait.
WaitDecision decide_wait(std::optional<Millis> hint, Millis backoff, Millis time_left,
                         Millis move_on_threshold = kDefaultMoveOnThreshold,
                         bool other_target_usable = false);

// gRPC-style retry throttling (gRFC A6), one per provider. A bucket of `max_tokens` tokens starts
// full. Retries are allowed only while tokens > max_tokens / 2. Each failed attempt costs 1 token
// (floored at 0), each success refunds `token_ratio` (capped at max_tokens). So when a provider
// fails for everyone, its bucket drains below half and retries stop, while first attempts (which
// never ask the budget) still go out; a run of successes refills it and retries resume.
// Difference from gRPC: allow_retry() also spends 1 token when it says yes, so a retry that then
// fails costs 2 in total (it is charged for being a retry and for failing); this throttles
// retry storms faster. Not thread-safe: the owner serialises access.
class RetryBudget {
 public:
  explicit RetryBudget(double max_tokens = 10, double token_ratio = 0.1);

  // True when tokens > max_tokens / 2, and then spends 1 token; false spends nothing.
  bool allow_retry();
  // An attempt to this provider succeeded: adds token_ratio, capped at max_tokens.
  void on_success();
  // An attempt to this provider failed (transiently): subtracts 1, floored at 0.
  void on_failure();

  double tokens() const { return tokens_; }
  // Restores a level read back from the shared state, clamped to [0, max_tokens].
  void set_tokens(double tokens);
  double max_tokens() const { return max_tokens_; }

 private:
  double max_tokens_;
  double token_ratio_;
  double tokens_;
};

// Worth retrying (docs/architecture.md, "Failure policy and retries"): rate_limited, overloaded,
// server_error, timeout, connection, invalid_response. Note that "transient" is not "retry now on
// the same target": timeout and connection move on at once and come back to this target only after
// the rest of the chain has failed; rate_limited goes through decide_wait; invalid_response is
// retried once. Everything else (quota, auth, request rejections, validation failures, cancelled,
// none) is not.
bool is_transient(ErrorClass c);

}  // namespace detour::engine
