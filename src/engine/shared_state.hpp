#pragma once
// The engine's view of the shared state: circuit breakers, outcome stats and retry budgets of
// the targets a call uses, read from and written to a state::Store so that what one process
// learns the next one knows. Every write is one atomic Store::update.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "engine/breaker.hpp"
#include "engine/limiter.hpp"
#include "engine/retry.hpp"
#include "engine/target_state.hpp"
#include "state/store.hpp"

namespace detour::engine {

struct BudgetConfig {
  double max_tokens = 10;    // gRPC's default
  double token_ratio = 0.1;  // a success refunds this much
};

struct Gate {
  bool allowed = true;
  bool probe = false;  // this call is the one half-open probe
  std::optional<std::chrono::steady_clock::time_point> open_until;
  std::optional<LastError> cause;  // the last error the target gave, when it is open
};

// The limiter's view of a target: its provider's and its own configured limits.
LimitScope limit_scope(const config::ResolvedTarget& target);

class SharedState {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  SharedState(state::Store& store, BreakerConfig breaker = {}, BudgetConfig budget = {});

  // The target's state as stored; a state learned with another API key is forgotten.
  TargetState load(const config::ResolvedTarget& target);

  // Whether an attempt may go to the target now. Closed: yes (a read, no write). Open: no.
  // Half-open: claims the one probe atomically, so of many processes exactly one probes; a
  // claim older than `probe_timeout` is taken over (its process died or hung). `known` is the
  // state the caller loaded moments ago: when it shows a closed circuit, it is not read again.
  Gate gate(const config::ResolvedTarget& target, time_point now, Millis probe_timeout,
            const TargetState* known = nullptr);

  // Records one attempt's outcome into the target's breaker and stats.
  void record(const config::ResolvedTarget& target, ErrorClass outcome, std::optional<int> status,
              const std::string& message, Millis latency, std::optional<Millis> ttft,
              time_point now, std::int64_t wall_ms);

  // Closes the target's circuit and resets its cooldown: a health check's one-token request
  // just got an answer, which says more than the failures that opened it.
  void close_circuit(const config::ResolvedTarget& target);

  // The provider's retry budget: whether a retry may go out (without spending), spending one,
  // and an attempt's outcome (success refunds, transient failure costs).
  bool can_retry(const std::string& provider);
  bool spend_retry(const std::string& provider);
  void budget_outcome(const std::string& provider, ErrorClass outcome);

  // Round-robin: this call's turn on the route (0, 1, 2, ... across processes).
  std::uint64_t take_turn(const std::string& route);

  const BreakerConfig& breaker_config() const { return breaker_; }
  // Rate limits and in-flight slots, in the same store.
  Limiter& limiter() { return limiter_; }

 private:
  RetryBudget budget_from(const nlohmann::json& doc) const;
  state::Store& store_;
  Limiter limiter_;
  BreakerConfig breaker_;
  BudgetConfig budget_;
};

}  // namespace detour::engine
