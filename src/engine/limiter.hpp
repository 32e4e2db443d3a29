#pragma once
// The proactive limiter (docs/architecture.md, "The limiter"): before an attempt is sent, it
// reserves capacity in the provider's and the target's buckets (requests per minute, tokens per
// minute, requests in flight); after it, the reply corrects the reservation and teaches the limits.
//
// All of a provider's limits live in ONE shared-state document, "limits:<provider>", so a
// reservation across the provider's buckets and the target's is one atomic change: concurrent
// detour processes share one budget. The document functions below are pure (JSON in, JSON out,
// times passed in); `Limiter` runs them in this process's view of the store (state/view.hpp).
//
//   {"provider": SCOPE, "targets": {"<model>": SCOPE}}
//   SCOPE  = {"requests": BUCKET, "tokens": BUCKET,
//             "in_flight": {"<process>": {"n": count, "until": ms}},
//             "known": true, "blocked_until": ms}
//   BUCKET = {"tat": ms, "limit": learned per minute, "burst": learned burst,
//             "remaining": last reported, "reported_at": ms}
//
// In-flight slots are counted per process, not per request, so the document stays the same size
// however many requests a process has in flight. A process that dies leaves its count behind;
// `until` (pushed forward by each of its reservations to the end of that request's longest
// possible attempt) is when the count stops counting.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/bucket.hpp"
#include "providers/types.hpp"
#include "state/view.hpp"

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
  std::string holder;        // the process taking the in-flight slot
  double lease_ms = 60'000;  // a slot never released (the process died) frees itself after this
};

struct Admission {
  enum class Kind {
    granted,    // reserved: wait `wait_ms`, then send
    wait,       // no capacity before `wait_ms` (nothing reserved)
    too_large,  // larger than a whole minute's token budget: never send it here
  } kind = Kind::granted;
  double wait_ms = 0;
  // With `wait`: every in-flight slot is taken, which nobody can say how long for. The caller
  // waits for a settlement to free one (slot_full), and when another process holds some of
  // them (others_hold) also re-checks now and then, since their settlements are not seen here.
  bool slot_full = false;
  bool others_hold = false;
  std::string why;  // what limits it, for -v: "requests per minute of openai/gpt-4o (60/min)"
};

// How often a process with calls waiting for slots that other processes hold checks again.
inline constexpr Millis kOtherHoldersRecheck{20};

// Decides whether the request may go, and when; with `commit`, reserves it in `doc`.
// A target that nothing is known of (no configured limits anywhere, no reply seen yet) gets
// one request in flight at a time until its first reply teaches its limits: without that,
// eight processes starting at once would spend a provider's burst before any had learned it.
Admission admit(nlohmann::json& doc, const LimitScope& scope, const AdmissionRequest& request,
                bool commit);

// What an attempt's reply said, to settle its reservation.
struct AdmissionFeedback {
  std::string holder;  // the process whose slot it was
  double reserved_tokens = 0;
  bool reached_provider = true;       // false: nothing was sent, everything is given back
  bool replied = false;               // an HTTP reply arrived (its headers are below)
  std::optional<double> used_tokens;  // input + output tokens of the reply's usage
  providers::RateLimitInfo headers;
  std::optional<double> blocked_until_ms;  // a 429: nothing before then
  double now_ms = 0;
};

// When a 429 lets the target be tried again: after the reply's hint (Retry-After, or the reset of
// the bucket it emptied), else its requests reset, else a second -- the one rule for a call's 429
// and a health probe's, so the next process does not spend a request to hear the same refusal.
double blocked_until_after_429(double now_ms, std::optional<Millis> hint,
                               const providers::RateLimitInfo& headers);

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

// Whether the process behind an in-flight holder id ("<pid>-<random>") has ended: its slots
// are then free at once rather than at their expiry. False for ids of any other form.
bool holder_is_gone(std::string_view holder);

// The documents above, in this process's view of the shared store.
class Limiter {
 public:
  using Settled = std::function<void(const std::string& provider)>;
  // `settled` hears of every settlement: a slot of that provider may have freed.
  explicit Limiter(state::View& view, Settled settled = {})
      : view_(view), settled_(std::move(settled)) {}
  // Against the store as it is now (inside a sync, in its transaction).
  Admission reserve(const LimitScope& scope, const AdmissionRequest& request);
  // As reserve, but reserving nothing (a read of the view: whether a target has capacity now).
  Admission peek(const LimitScope& scope, const AdmissionRequest& request);
  // Applied to the view at once and to the store with the next sync.
  void settle(const LimitScope& scope, const AdmissionFeedback& feedback);

 private:
  state::View& view_;
  Settled settled_;
};

}  // namespace detour::engine
