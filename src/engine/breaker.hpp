#pragma once
// The per-target circuit breaker (docs/architecture.md, "Circuit breakers"), as a pure state
// machine: no I/O and no clock reads. Every call that depends on time takes `now`, so tests (and a
// future shared state store) drive it with whatever times they like.
//
//   closed --(N consecutive health failures | failure rate over the window)--> open
//   closed --(quota_exhausted | auth)--> open for long_cooldown
//   open   --(cooldown elapsed)--> half-open (derived from `now`, not a stored transition)
//   half-open: allow() lets exactly one probe through; its success closes the breaker and resets
//   the cooldown, its failure re-opens it with the next (doubled) cooldown.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "core/duration.hpp"
#include "engine/errors.hpp"

namespace detour::engine {

struct BreakerConfig {
  int consecutive_failures = 3;     // this many health failures in a row open the breaker
  double failure_rate = 0.5;        // a failure rate of at least this much over the window opens it
  int min_calls = 10;               // ... but only once the window holds at least this many calls
  Millis window{60'000};            // how far back the failure rate looks
  Millis cooldown{30'000};          // first open period; doubles on each consecutive trip
  Millis max_cooldown{600'000};     // cap of the doubling
  Millis long_cooldown{3'600'000};  // quota_exhausted and auth: the target is unusable for long
};

// How an outcome weighs on the target's health.
enum class HealthEffect {
  success,  // the target answered: counts as a good call
  failure,  // the target is unhealthy: counts as a failed call
  neutral,  // says nothing about the target's health: not counted at all
  disable,  // the target cannot serve anyone for a long time: open at once for long_cooldown
};

// The weighing rule; pure, and the rationale for each class is in breaker.cpp.
HealthEffect health_effect(ErrorClass c);

// A plain, serialisable copy of a breaker's state so that a state store can persist it across
// processes. Times are milliseconds since steady_clock's epoch (CLOCK_MONOTONIC on Linux: the
// same for every process on one machine until it reboots; restore() guards against reboots).
struct BreakerSnapshot {
  enum class Stored { closed, open, half_open };  // half_open: a probe is in flight
  Stored state = Stored::closed;
  std::optional<std::int64_t> open_until_ms;  // set when open or half-open
  int consecutive_failures = 0;
  int trips = 0;                                      // consecutive trips since last closed
  std::vector<std::pair<std::int64_t, bool>> window;  // (ms, failed), oldest first

  bool operator==(const BreakerSnapshot&) const = default;
};

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;
  using time_point = Clock::time_point;
  enum class State { closed, open, half_open };

  // The window never holds more than this many calls, whatever the call rate: at that size the
  // failure rate is well measured, and a snapshot stays small, which matters because every
  // detour process reads and writes it in the shared state (tests/bench P1).
  static constexpr std::size_t kMaxWindowCalls = 128;

  explicit CircuitBreaker(BreakerConfig config = {});

  // Whether a call to the target may go out now. Closed: always. Open: never. Half-open: true
  // exactly once (that call is the probe), then false until an outcome is recorded.
  bool allow(time_point now);

  // Records the outcome of a call to the target (ErrorClass::none for success).
  void record(ErrorClass outcome, time_point now);

  State state(time_point now) const;

  // When the current cooldown ends (it has ended when half-open); nullopt when closed.
  std::optional<time_point> open_until() const { return open_until_; }

  // Consecutive trips since the breaker last closed; decides the next cooldown.
  int trips() const { return trips_; }

  int consecutive_failures() const { return consecutive_failures_; }
  std::size_t window_calls() const { return window_.size(); }
  const BreakerConfig& config() const { return config_; }

  BreakerSnapshot snapshot() const;

  // Rebuilds a breaker from a snapshot. `now` guards against a snapshot written before a
  // reboot (steady_clock restarts): a cooldown ending further ahead than any cooldown could is
  // cut to the longest one, and window entries from the future are dropped.
  static CircuitBreaker restore(const BreakerSnapshot& snapshot, BreakerConfig config,
                                time_point now);

 private:
  void trip(time_point now, Millis duration);
  void close();
  void drop_old(time_point now);
  Millis next_cooldown() const;
  bool rate_exceeded() const;

  BreakerConfig config_;
  std::optional<time_point> open_until_;  // set while open or half-open
  bool probe_in_flight_ = false;
  int consecutive_failures_ = 0;
  int trips_ = 0;
  std::vector<std::pair<time_point, bool>> window_;  // (time, failed), oldest first
};

std::string_view to_string(CircuitBreaker::State s);

}  // namespace detour::engine
