#pragma once
// The proactive limiter (docs/architecture.md, "The limiter"): before an attempt is sent, it
// reserves capacity in the provider's and the target's buckets (requests per minute, tokens per
// minute, requests in flight); after it, the reply corrects the reservation and teaches the limits.
//
// All of a provider's limits live in ONE shared-state document, "limits:<provider>", so a
// reservation across the provider's buckets and the target's is one atomic Store::update:
// concurrent detour processes share one budget. The document functions below are pure
// (JSON in, JSON out, times passed in); `Limiter` only runs them inside the store's update.
//
//   {"provider": SCOPE, "targets": {"<model>": SCOPE}}
//   SCOPE  = {"requests": BUCKET, "tokens": BUCKET, "leases": {"<id>": expires_ms},
//             "known": true, "blocked_until": ms}
//   BUCKET = {"tat": ms, "limit": learned per minute, "burst": learned burst,
//             "remaining": last reported, "reported_at": ms}
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/bucket.hpp"
#include "providers/types.hpp"
#include "state/store.hpp"

namespace detour::engine {

// What the config says of one scope ([providers.X] or [models."X/m"]).
struct ConfiguredLimits {
  std::optional<std::int64_t> rpm, tpm, burst, concurrency;
  bool any() const { return rpm || tpm || concurrency; }
};

// Where one request wants capacity.
struct LimitScope {
  std::string provider;
  std::string model;
  ConfiguredLimits provider_limits;
  ConfiguredLimits target_limits;
};

struct AdmissionRequest {
  double tokens = 0;         // estimated input tokens + max tokens
  double now_ms = 0;         // wall clock
  double max_wait_ms = 0;    // the longest wait worth committing to now
  std::string lease_id;      // names this request's in-flight slot
  double lease_ms = 60'000;  // a slot never released (the process died) frees itself after this
};

struct Admission {
  enum class Kind {
    granted,    // reserved: wait `wait_ms`, then send
    wait,       // no capacity before `wait_ms` (nothing reserved)
    too_large,  // larger than a whole minute's token budget: never send it here
  } kind = Kind::granted;
  double wait_ms = 0;
  // With `wait`: the wait is for a slot in flight to free, which nobody can foresee; ask again
  // after `wait_ms` (a short poll) instead of trusting it.
  bool poll = false;
  std::string why;  // what limits it, for -v: "requests per minute of openai/gpt-4o (60/min)"
};

// How long to wait before asking again when every in-flight slot is taken.
inline constexpr double kSlotPollMs = 20;

// Decides whether the request may go, and when; with `commit`, reserves it in `doc`.
// A target that nothing is known of (no configured limits anywhere, no reply seen yet) gets
// one request in flight at a time until its first reply teaches its limits: without that,
// eight processes starting at once would spend a provider's burst before any had learned it.
Admission admit(nlohmann::json& doc, const LimitScope& scope, const AdmissionRequest& request,
                bool commit);

// What an attempt's reply said, to settle its reservation.
struct AdmissionFeedback {
  std::string lease_id;
  double reserved_tokens = 0;
  bool reached_provider = true;       // false: nothing was sent, everything is given back
  bool replied = false;               // an HTTP reply arrived (its headers are below)
  std::optional<double> used_tokens;  // input + output tokens of the reply's usage
  providers::RateLimitInfo headers;
  std::optional<double> blocked_until_ms;  // a 429: nothing before then
  double now_ms = 0;
};

// Frees the request's slot, corrects its token reservation from the usage, learns limits
// from the headers (resynchronising the buckets) and empties the target after a 429.
void settle(nlohmann::json& doc, const LimitScope& scope, const AdmissionFeedback& feedback);

// What `detour limits` shows of one bucket.
struct BucketView {
  std::optional<std::int64_t> configured;  // per minute
  std::optional<std::int64_t> learned;     // per minute, from headers
  std::optional<std::int64_t> remaining;   // now, by the shared bucket; else last reported
  std::optional<double> reset_at_ms;       // when the bucket is full again (wall ms)
};

struct ScopeView {
  BucketView requests, tokens;
  std::optional<std::int64_t> concurrency_limit;
  std::int64_t in_flight = 0;
  std::optional<double> blocked_until_ms;  // after a 429
};

ScopeView provider_view(const nlohmann::json& doc, const ConfiguredLimits& configured,
                        double now_ms);
ScopeView target_view(const nlohmann::json& doc, const std::string& model,
                      const ConfiguredLimits& configured, const ConfiguredLimits& provider,
                      double now_ms);

std::string limits_key(const std::string& provider);

// The documents above, kept in the shared store.
class Limiter {
 public:
  explicit Limiter(state::Store& store) : store_(store) {}
  Admission reserve(const LimitScope& scope, const AdmissionRequest& request);
  // As reserve, but reserving nothing (a read: whether a target has capacity now).
  Admission peek(const LimitScope& scope, const AdmissionRequest& request);
  void settle(const LimitScope& scope, const AdmissionFeedback& feedback);

 private:
  state::Store& store_;
};

}  // namespace detour::engine
