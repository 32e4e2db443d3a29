#include "engine/shared_state.hpp"

namespace detour::engine {

using nlohmann::json;

namespace {

std::int64_t steady_ms(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

// The stored state, minus what belongs to another key.
TargetState current_state(const json& doc, const std::string& key_id) {
  TargetState s = target_state_from_json(doc);
  if (s.key_id != key_id) {
    // Learned with a different key: its breaker (an auth failure above all) says nothing
    // about the key in use now. Stats describe the target and stay.
    s.breaker = {};
    s.probe_claimed_ms.reset();
    s.key_id = key_id;
  }
  return s;
}

}  // namespace

SharedState::SharedState(state::Store& store, BreakerConfig breaker, BudgetConfig budget)
    : store_(store), limiter_(store), breaker_(breaker), budget_(budget) {}

TargetState SharedState::load(const config::ResolvedTarget& target) {
  return current_state(store_.get(target_key(target.target)), key_fingerprint(target.api_key));
}

Gate SharedState::gate(const config::ResolvedTarget& target, time_point now, Millis probe_timeout,
                       const TargetState* known) {
  const std::string key_id = key_fingerprint(target.api_key);
  if (known && known->key_id == key_id &&
      CircuitBreaker::restore(known->breaker, breaker_, now).state(now) ==
          CircuitBreaker::State::closed) {
    return Gate{};
  }
  TargetState s = current_state(store_.get(target_key(target.target)), key_id);
  auto breaker = CircuitBreaker::restore(s.breaker, breaker_, now);
  Gate gate;
  switch (breaker.state(now)) {
    case CircuitBreaker::State::closed:
      return gate;
    case CircuitBreaker::State::open:
      gate.allowed = false;
      gate.open_until = breaker.open_until();
      gate.cause = s.stats.last_error;
      return gate;
    case CircuitBreaker::State::half_open:
      break;
  }
  // Half-open: claim the probe under the store's lock, from the state as it is now.
  store_.update(target_key(target.target), [&](json& doc) {
    TargetState fresh = current_state(doc, key_id);
    if (fresh.breaker.state == BreakerSnapshot::Stored::half_open && fresh.probe_claimed_ms &&
        steady_ms(now) - *fresh.probe_claimed_ms > probe_timeout.count()) {
      fresh.breaker.state = BreakerSnapshot::Stored::open;  // the old probe is gone
    }
    auto b = CircuitBreaker::restore(fresh.breaker, breaker_, now);
    gate.allowed = b.allow(now);
    gate.probe = gate.allowed && b.state(now) == CircuitBreaker::State::half_open;
    if (gate.probe) fresh.probe_claimed_ms = steady_ms(now);
    if (!gate.allowed) {
      gate.open_until = b.open_until();
      gate.cause = fresh.stats.last_error;
    }
    fresh.breaker = b.snapshot();
    doc = to_json(fresh);
  });
  return gate;
}

void SharedState::record(const config::ResolvedTarget& target, ErrorClass outcome,
                         std::optional<int> status, const std::string& message, Millis latency,
                         std::optional<Millis> ttft, time_point now, std::int64_t wall_ms) {
  const std::string key_id = key_fingerprint(target.api_key);
  store_.update(target_key(target.target), [&](json& doc) {
    TargetState s = current_state(doc, key_id);
    auto breaker = CircuitBreaker::restore(s.breaker, breaker_, now);
    breaker.record(outcome, now);
    s.breaker = breaker.snapshot();
    if (s.breaker.state != BreakerSnapshot::Stored::half_open) s.probe_claimed_ms.reset();
    record_outcome(s.stats, outcome, status, message, latency, ttft, wall_ms);
    doc = to_json(s);
  });
}

void SharedState::close_circuit(const config::ResolvedTarget& target) {
  const std::string key_id = key_fingerprint(target.api_key);
  store_.update(target_key(target.target), [&](json& doc) {
    TargetState s = current_state(doc, key_id);
    s.breaker = {};
    s.probe_claimed_ms.reset();
    doc = to_json(s);
  });
}

RetryBudget SharedState::budget_from(const json& doc) const {
  RetryBudget budget(budget_.max_tokens, budget_.token_ratio);
  if (doc.is_object() && doc.contains("retry_tokens") && doc["retry_tokens"].is_number()) {
    budget.set_tokens(doc["retry_tokens"].get<double>());
  }
  return budget;
}

bool SharedState::can_retry(const std::string& provider) {
  RetryBudget budget = budget_from(store_.get(provider_key(provider)));
  return budget.tokens() > budget.max_tokens() / 2;
}

bool SharedState::spend_retry(const std::string& provider) {
  bool allowed = false;
  store_.update(provider_key(provider), [&](json& doc) {
    RetryBudget budget = budget_from(doc);
    allowed = budget.allow_retry();
    if (!doc.is_object()) doc = json::object();
    doc["retry_tokens"] = budget.tokens();
  });
  return allowed;
}

void SharedState::budget_outcome(const std::string& provider, ErrorClass outcome) {
  const bool success = outcome == ErrorClass::none;
  if (!success && !is_transient(outcome)) return;
  const std::string key = provider_key(provider);
  if (success && budget_from(store_.get(key)).tokens() >= budget_.max_tokens) return;  // full
  store_.update(key, [&](json& doc) {
    RetryBudget budget = budget_from(doc);
    if (success) {
      budget.on_success();
    } else {
      budget.on_failure();
    }
    if (!doc.is_object()) doc = json::object();
    doc["retry_tokens"] = budget.tokens();
  });
}

std::uint64_t SharedState::take_turn(const std::string& route) {
  std::uint64_t turn = 0;
  store_.update(route_key(route), [&](json& doc) {
    if (doc.is_object() && doc.contains("turn") && doc["turn"].is_number_unsigned())
      turn = doc["turn"].get<std::uint64_t>();
    if (!doc.is_object()) doc = json::object();
    doc["turn"] = turn + 1;
  });
  return turn;
}

}  // namespace detour::engine
