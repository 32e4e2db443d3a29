#include "engine/breaker.hpp"

#include <algorithm>

namespace detour::engine {

HealthEffect health_effect(ErrorClass c) {
  switch (c) {
    case ErrorClass::none:
      return HealthEffect::success;
    // The target is failing to serve well-formed requests: that is what a breaker is for.
    // Validation failures (docs/architecture.md, "Checking a reply") count too: a target that
    // keeps answering 200 with empty, refused, malformed or cut-short content is as useless as
    // one answering 500.
    case ErrorClass::overloaded:
    case ErrorClass::server_error:
    case ErrorClass::timeout:
    case ErrorClass::connection:
    case ErrorClass::invalid_response:
    case ErrorClass::empty_response:
    case ErrorClass::refusal:
    case ErrorClass::schema_mismatch:
    case ErrorClass::truncated:
      return HealthEffect::failure;
    // A capacity signal, not a health one (docs/architecture.md, "Circuit breakers"): the
    // limiter learns from it, and opening the circuit on it would take a healthy target out of
    // rotation exactly when load spills over.
    case ErrorClass::rate_limited:
    // The request itself is wrong (its action is "stop"); it would fail on every target alike, so
    // it says nothing about this one, and must not let one bad batch line trip every breaker.
    case ErrorClass::bad_request:
    case ErrorClass::context_length:
    case ErrorClass::content_filter:
    // Nothing reached the target (skipped), or our side gave up (deadline, hedge lost,
    // Ctrl-C): the target never got to answer.
    case ErrorClass::skipped_open:
    case ErrorClass::skipped_budget:
    case ErrorClass::cancelled:
    // A wrong model name is a configuration fact about this target, not a transient health
    // state: a cooldown would not heal it, and routing skips the target on its own.
    case ErrorClass::not_found:
      return HealthEffect::neutral;
    // The target cannot serve anyone until a person acts (pays, changes the key): no point
    // probing it every 30 s.
    case ErrorClass::quota_exhausted:
    case ErrorClass::auth:
      return HealthEffect::disable;
  }
  return HealthEffect::neutral;
}

std::string_view to_string(CircuitBreaker::State s) {
  switch (s) {
    case CircuitBreaker::State::closed:
      return "closed";
    case CircuitBreaker::State::open:
      return "open";
    case CircuitBreaker::State::half_open:
      return "half_open";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(BreakerConfig config) : config_(config) {}

CircuitBreaker::State CircuitBreaker::state(time_point now) const {
  if (!open_until_) return State::closed;
  return now < *open_until_ ? State::open : State::half_open;
}

bool CircuitBreaker::allow(time_point now) {
  switch (state(now)) {
    case State::closed:
      return true;
    case State::open:
      return false;
    case State::half_open:
      if (probe_in_flight_) return false;
      probe_in_flight_ = true;
      return true;
  }
  return false;
}

void CircuitBreaker::record(ErrorClass outcome, time_point now) {
  const HealthEffect effect = health_effect(outcome);
  const State current = state(now);

  if (effect == HealthEffect::disable) {
    // Whatever the state, the target is unusable for long; never shorten a longer cooldown.
    const std::optional<time_point> previous =
        current == State::open ? open_until_ : std::optional<time_point>{};
    trip(now, config_.long_cooldown);
    if (previous && *previous > *open_until_) open_until_ = previous;
    return;
  }

  if (effect == HealthEffect::neutral) {
    // An inconclusive probe: free the slot so the next allow() sends another one.
    if (current == State::half_open) probe_in_flight_ = false;
    return;
  }

  switch (current) {
    case State::open:
      // A late outcome of a call sent before the breaker opened: the cooldown stands.
      return;
    case State::half_open:
      // Any conclusive outcome after the cooldown decides (normally the probe's).
      if (effect == HealthEffect::success) {
        close();
      } else {
        trip(now, next_cooldown());
      }
      return;
    case State::closed:
      break;
  }

  drop_old(now);
  const bool failed = effect == HealthEffect::failure;
  window_.emplace_back(now, failed);
  if (window_.size() > kMaxWindowCalls) window_.erase(window_.begin());
  if (!failed) {
    consecutive_failures_ = 0;
    return;
  }
  ++consecutive_failures_;
  if (consecutive_failures_ >= config_.consecutive_failures || rate_exceeded()) {
    trip(now, next_cooldown());
  }
}

bool CircuitBreaker::rate_exceeded() const {
  const auto calls = static_cast<int>(window_.size());
  if (calls < config_.min_calls || calls == 0) return false;
  const auto failures =
      std::count_if(window_.begin(), window_.end(), [](const auto& c) { return c.second; });
  return static_cast<double>(failures) >= config_.failure_rate * static_cast<double>(calls);
}

Millis CircuitBreaker::next_cooldown() const {
  // cooldown * 2^trips, capped; the loop stops at the cap so it cannot overflow.
  Millis d = config_.cooldown;
  for (int i = 0; i < trips_ && d < config_.max_cooldown; ++i)
    d *= 2;
  return std::min(d, config_.max_cooldown);
}

void CircuitBreaker::trip(time_point now, Millis duration) {
  open_until_ = now + duration;
  probe_in_flight_ = false;
  ++trips_;
  // The counters describe the closed period that just ended; the next one starts afresh.
  consecutive_failures_ = 0;
  window_.clear();
}

void CircuitBreaker::close() {
  open_until_.reset();
  probe_in_flight_ = false;
  trips_ = 0;
  consecutive_failures_ = 0;
  window_.clear();
}

void CircuitBreaker::drop_old(time_point now) {
  // "In the last window": a call exactly `window` old has left it.
  const time_point cutoff = now - config_.window;
  const auto first_kept = std::find_if(window_.begin(), window_.end(),
                                       [cutoff](const auto& c) { return c.first > cutoff; });
  window_.erase(window_.begin(), first_kept);
}

namespace {

std::int64_t to_ms(CircuitBreaker::time_point t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

CircuitBreaker::time_point from_ms(std::int64_t ms) {
  return CircuitBreaker::time_point(
      std::chrono::duration_cast<CircuitBreaker::Clock::duration>(Millis(ms)));
}

}  // namespace

BreakerSnapshot CircuitBreaker::snapshot() const {
  BreakerSnapshot s;
  if (!open_until_) {
    s.state = BreakerSnapshot::Stored::closed;
  } else {
    s.state = probe_in_flight_ ? BreakerSnapshot::Stored::half_open : BreakerSnapshot::Stored::open;
    s.open_until_ms = to_ms(*open_until_);
  }
  s.consecutive_failures = consecutive_failures_;
  s.trips = trips_;
  s.window.reserve(window_.size());
  for (const auto& [t, failed] : window_)
    s.window.emplace_back(to_ms(t), failed);
  return s;
}

CircuitBreaker CircuitBreaker::restore(const BreakerSnapshot& s, BreakerConfig config,
                                       time_point now) {
  CircuitBreaker b(config);
  if (s.state != BreakerSnapshot::Stored::closed && s.open_until_ms) {
    const time_point latest =
        now + std::max({config.long_cooldown, config.max_cooldown, config.cooldown});
    b.open_until_ = std::min(from_ms(*s.open_until_ms), latest);
    b.probe_in_flight_ = s.state == BreakerSnapshot::Stored::half_open;
  }
  b.consecutive_failures_ = std::max(0, s.consecutive_failures);
  b.trips_ = std::max(0, s.trips);
  for (const auto& [ms, failed] : s.window) {
    const time_point t = from_ms(ms);
    if (t <= now) b.window_.emplace_back(t, failed);
  }
  std::sort(b.window_.begin(), b.window_.end(),
            [](const auto& a, const auto& c) { return a.first < c.first; });
  if (b.window_.size() > kMaxWindowCalls) {
    b.window_.erase(b.window_.begin(),
                    b.window_.end() - static_cast<std::ptrdiff_t>(kMaxWindowCalls));
  }
  b.drop_old(now);
  return b;
}

}  // namespace detour::engine
