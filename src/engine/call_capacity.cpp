// The limiter's part in a call (docs/architecture.md, "The limiter" and "Routing"): capacity is
// reserved before each attempt is sent, a target without capacity is passed over while another has
// some, a wait is taken when none has, and every reservation is settled (or given back) when its
// attempt ends.
#include <algorithm>
#include <cmath>

#include "engine/call.hpp"
#include "engine/call_internal.hpp"
#include "engine/context.hpp"

namespace detour::engine {

using std::chrono::duration_cast;

namespace {

ConfiguredLimits limits_of(std::optional<std::int64_t> rpm, std::optional<std::int64_t> tpm,
                           std::optional<std::int64_t> burst,
                           std::optional<std::int64_t> concurrency) {
  return ConfiguredLimits{rpm, tpm, burst, concurrency};
}

Millis ceil_ms(double ms) {
  return Millis(static_cast<Millis::rep>(std::ceil(std::max(0.0, ms))));
}

}  // namespace

LimitScope limit_scope(const config::ResolvedTarget& target) {
  LimitScope scope;
  scope.provider = target.target.provider;
  scope.model = target.target.model;
  if (target.provider) {
    const auto& p = *target.provider;
    scope.provider_limits = limits_of(p.rpm, p.tpm, p.burst, p.concurrency);
  }
  const auto& m = target.model;
  scope.target_limits = limits_of(m.rpm, m.tpm, m.burst, m.concurrency);
  return scope;
}

AdmissionRequest Call::admission_request(std::size_t index, Millis max_wait) const {
  const config::ResolvedTarget& target = spec_.chain.targets[index];
  AdmissionRequest request;
  // What the provider counts against tokens per minute: the input and the answer it may
  // write. Without max_tokens only the input is known; the reply's usage corrects it.
  std::int64_t answer = spec_.request.max_tokens.value_or(0);
  if (!spec_.request.max_tokens && target.provider && target.provider->protocol == "anthropic")
    answer = providers::kAnthropicDefaultMaxTokens;
  request.tokens = static_cast<double>(estimate_input_tokens(spec_.request) + answer);
  request.now_ms = static_cast<double>(wall_ms(ctx_.clock));
  request.max_wait_ms = static_cast<double>(max_wait.count());
  request.holder = ctx_.state.holder();
  request.lease_ms = static_cast<double>((spec_.timeout + Millis(5000)).count());
  return request;
}

Admission Call::reserve_now(std::size_t index) {
  const config::ResolvedTarget& target = spec_.chain.targets[index];
  AdmissionRequest request = admission_request(index, Millis(0));
  Admission admission = ctx_.state.limiter().reserve(limit_scope(target), request);
  if (admission.kind == Admission::Kind::granted) {
    progress_[index].reserved = Reservation{request.holder, request.tokens};
  }
  return admission;
}

// How soon another target's slot must come to beat `admission`'s: at least 2 ms sooner, so
// that the route's order decides ties; when every in-flight slot is taken nobody knows for how
// long, so only a target free now beats it. None: nothing can be sooner.
namespace {
std::optional<Millis> sooner_than(const Admission& admission) {
  if (admission.slot_full) return Millis(0);
  if (admission.wait_ms < 2.0) return std::nullopt;
  return Millis(static_cast<Millis::rep>(std::floor(admission.wait_ms - 2.0)));
}
}  // namespace

// Whether target j could be sent to within `within` (a read only).
bool Call::can_go_within(std::size_t j, Millis within) {
  const config::ResolvedTarget& target = spec_.chain.targets[j];
  return ctx_.state.limiter().peek(limit_scope(target), admission_request(j, within)).kind ==
         Admission::Kind::granted;
}

// Whether a target later in this pass's order could be sent to sooner than `admission` allows
// this one.
bool Call::sooner_elsewhere(std::size_t except, const Admission& admission) {
  const std::optional<Millis> within = sooner_than(admission);
  if (!within) return false;
  const auto now = ctx_.clock.now();
  for (std::size_t at = cursor_; at < order_.size(); ++at) {
    const std::size_t j = order_[at];
    const Progress& p = progress_[j];
    if (j == except || p.done || p.in_flight) continue;
    if (pass_ > 0 && !p.come_back && !p.capacity_skipped) continue;
    if (p.state.breaker.state != BreakerSnapshot::Stored::closed &&
        CircuitBreaker::restore(p.state.breaker, ctx_.state.breaker_config(), now).state(now) ==
            CircuitBreaker::State::open)
      continue;
    if (can_go_within(j, *within)) return true;
  }
  return false;
}

// A target this pass passed over for capacity whose next slot comes sooner than `admission`
// allows `except`.
std::optional<std::size_t> Call::sooner_skipped(std::size_t except, const Admission& admission) {
  const std::optional<Millis> within = sooner_than(admission);
  if (!within) return std::nullopt;
  for (std::size_t j : order_) {
    const Progress& p = progress_[j];
    if (j == except || !p.capacity_skipped || p.done || p.in_flight) continue;
    if (can_go_within(j, *within)) return j;
  }
  return std::nullopt;
}

// A target this pass passed over for capacity that has some now, reserved (for a hedge: the
// call's attempt may have gone to a later target whose slot was sooner).
std::optional<std::size_t> Call::skipped_with_capacity() {
  for (std::size_t j : order_) {
    Progress& p = progress_[j];
    if (!p.capacity_skipped || p.done || p.in_flight) continue;
    if (reserve_now(j).kind != Admission::Kind::granted) continue;
    p.capacity_skipped = false;
    return j;
  }
  return std::nullopt;
}

// Passes a target over for capacity in this pass; a later pass comes back to it (free: it
// never failed).
void Call::pass_over(std::size_t index, const Admission& admission) {
  Progress& p = progress_[index];
  p.capacity_skipped = true;
  p.not_before = ctx_.clock.now() + ceil_ms(admission.wait_ms);
  skip_for_capacity(index, admission);
}

void Call::skip_for_capacity(std::size_t index, const Admission& admission) {
  const config::ResolvedTarget& target = spec_.chain.targets[index];
  AttemptRecord r;
  r.provider = target.target.provider;
  r.model = target.target.model;
  r.error = ErrorClass::skipped_budget;
  if (admission.kind == Admission::Kind::too_large) {
    r.cause = ErrorClass::bad_request;  // the request must change to fit this target
    r.message = admission.why;
  } else {
    r.cause = ErrorClass::rate_limited;
    r.message =
        "no capacity for " + format_duration(ceil_ms(admission.wait_ms)) + ": " + admission.why;
  }
  result_.attempts.push_back(r);
  if (!last_failure_ || last_failure_->error == ErrorClass::skipped_budget) last_failure_ = r;
  observer_.on_attempt_end(r, next_target_text());
}

// Starts the attempt once the limiter admits it: at once when take_candidate reserved it,
// after the reserved slot's wait, or -- when every in-flight slot is taken -- once a slot frees.
// A wait that does not fit the deadline passes the target over.
void Call::admit_then_start(std::size_t index, Millis waited) {
  Progress& p = progress_[index];
  if (p.reserved) {
    start_attempt(index, waited, /*hedge=*/false);
    return;
  }
  if (!ctx_.state.syncing()) {
    p.in_flight = true;  // taken for this wait: no hedge or pass may take it meanwhile
    synced([this, index, waited] {
      progress_[index].in_flight = false;
      admit_then_start(index, waited);
    });
    return;
  }
  const config::ResolvedTarget& target = spec_.chain.targets[index];
  // Leave the attempt itself some time: a slot just before the deadline is of no use.
  const Millis max_wait = std::max(Millis(0), time_left() - std::min(spec_.timeout, Millis(1000)));
  const Millis ahead = std::min(max_wait, spec_.reserve_ahead.value_or(max_wait));
  AdmissionRequest request = admission_request(index, ahead);
  Admission admission = ctx_.state.limiter().reserve(limit_scope(target), request);
  if (admission.slot_full && max_wait > Millis(0)) {
    wait_for_slot(index, waited, admission, max_wait);
    return;
  }
  if (p.slot_deadline) cancel_wait(*p.slot_deadline);
  p.slot_deadline.reset();
  if (p.waiting_for_slot) {
    waited += std::chrono::duration_cast<Millis>(ctx_.clock.now() - p.slot_wait_began);
    p.waiting_for_slot = false;
  }
  if (admission.kind == Admission::Kind::wait && admission.wait_ms <= max_wait.count()) {
    hold_off(index, waited, admission, ahead);
    return;
  }
  if (admission.kind != Admission::Kind::granted) {
    p.done = true;
    skip_for_capacity(index, admission);
    next();
    return;
  }
  Millis wait = ceil_ms(admission.wait_ms);
  if (wait > Millis(0)) wait += kSlotMargin;
  p.reserved = Reservation{request.holder, request.tokens};
  if (wait > Millis(0)) {
    observer_.on_decision("waiting " + format_duration(wait) + " for capacity at " +
                          target.target.name() + ": " + admission.why);
  }
  p.in_flight = true;  // reserved for this wait: no hedge or pass may take it meanwhile
  wait_then(wait, [this, index, waited, wait] {
    progress_[index].in_flight = false;
    admit_then_start(index, waited + wait);
  });
}

// The next slot is further away than the call may reserve ahead (CallSpec::reserve_ahead), yet
// within its deadline: it waits without a reservation until the slot is that near, and asks
// again -- unless another target of the pass can go sooner, which then takes the call.
void Call::hold_off(std::size_t index, Millis waited, const Admission& admission, Millis ahead) {
  Progress& p = progress_[index];
  // A target passed over earlier in this pass may be the sooner one by now: without this
  // look back, a call waiting at a later target stays there, and a batch's backlog drifts
  // onto the last target of its route while the first goes idle.
  if (auto earlier = sooner_skipped(index, admission)) {
    pass_over(index, admission);
    progress_[*earlier].capacity_skipped = false;
    admit_then_start(*earlier, waited);
    return;
  }
  if (sooner_elsewhere(index, admission)) {
    pass_over(index, admission);
    next(waited);
    return;
  }
  const Millis hold =
      std::max(Millis(1), ceil_ms(admission.wait_ms - static_cast<double>(ahead.count())));
  p.in_flight = true;  // taken for this wait: no hedge or pass may take it meanwhile
  wait_then(hold, [this, index, waited, hold] {
    progress_[index].in_flight = false;
    admit_then_start(index, waited + hold);
  });
}

// Every in-flight slot is taken: the call waits in this process's queue for a settlement to
// free one (or, for slots other processes hold, the process's one re-check timer), and gives
// up when it can wait no longer. No polling of the store per waiting call.
void Call::wait_for_slot(std::size_t index, Millis waited, const Admission& admission,
                         Millis max_wait) {
  Progress& p = progress_[index];
  const config::ResolvedTarget& target = spec_.chain.targets[index];
  if (!p.waiting_for_slot) {
    p.waiting_for_slot = true;
    p.slot_wait_began = ctx_.clock.now();
    observer_.on_decision("waiting for capacity at " + target.target.name() + ": " + admission.why);
    p.slot_deadline = wait_then(max_wait, [this, index, admission] {
      Progress& q = progress_[index];
      q.slot_deadline.reset();
      q.waiting_for_slot = false;
      q.in_flight = false;
      q.done = true;
      Admission gave_up = admission;
      gave_up.wait_ms = static_cast<double>(
          std::chrono::duration_cast<Millis>(ctx_.clock.now() - q.slot_wait_began).count());
      skip_for_capacity(index, gave_up);
      next();
    });
  }
  p.in_flight = true;  // taken for this wait: no hedge or pass may take it meanwhile
  ctx_.state.wait_for_slot(target.target.provider, admission.others_hold, alive_,
                           [this, index, waited] {
                             Progress& q = progress_[index];
                             if (finished_ || !q.waiting_for_slot) return;
                             q.in_flight = false;
                             admit_then_start(index, waited);
                           });
}

void Call::release(std::size_t index, const Reservation& reservation, bool reached_provider) {
  if (reservation.holder.empty()) return;
  AdmissionFeedback feedback;
  feedback.holder = reservation.holder;
  feedback.reserved_tokens = reservation.tokens;
  feedback.reached_provider = reached_provider;
  feedback.now_ms = static_cast<double>(wall_ms(ctx_.clock));
  ctx_.state.limiter().settle(limit_scope(spec_.chain.targets[index]), feedback);
}

// Settles a finished attempt's reservation: frees its slot, corrects its tokens from the
// usage, learns the limits its headers state, and after a 429 empties the target's bucket
// until the server's hint.
void Call::settle_capacity(const Attempt& attempt, const net::HttpResponse& response,
                           const providers::RateLimitInfo& headers,
                           const std::optional<providers::Usage>& usage,
                           const AttemptRecord& record, const Outcome& outcome) {
  const Reservation& r = attempt.reservation;
  if (r.holder.empty()) return;
  using net::TransportStatus;
  AdmissionFeedback f;
  f.holder = r.holder;
  f.reserved_tokens = r.tokens;
  const TransportStatus t = response.transport;
  f.reached_provider = attempt.request != 0 && t != TransportStatus::connect_failed &&
                       t != TransportStatus::dns_failed && t != TransportStatus::tls_failed &&
                       t != TransportStatus::connect_timeout;
  f.replied = response.status != 0;
  f.headers = headers;
  if (usage && (usage->input_tokens || usage->output_tokens)) {
    f.used_tokens =
        static_cast<double>(usage->input_tokens.value_or(0) + usage->output_tokens.value_or(0));
  }
  f.now_ms = static_cast<double>(wall_ms(ctx_.clock));
  if (record.error == ErrorClass::rate_limited)
    f.blocked_until_ms = blocked_until_after_429(f.now_ms, outcome.hint, headers);
  ctx_.state.limiter().settle(limit_scope(spec_.chain.targets[attempt.index]), f);
}

// Gives back what was reserved for attempts that were never sent.
void Call::release_unsent() {
  for (std::size_t i = 0; i < progress_.size(); ++i) {
    if (!progress_[i].reserved) continue;
    Reservation r = std::move(*progress_[i].reserved);
    progress_[i].reserved.reset();
    release(i, r, /*reached_provider=*/false);
  }
}

}  // namespace detour::engine
