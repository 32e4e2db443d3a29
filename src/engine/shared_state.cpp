#include "engine/shared_state.hpp"

#include <unistd.h>

#include <cstdio>
#include <random>

namespace detour::engine {

using nlohmann::json;

namespace {

std::int64_t steady_ms(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

// The stored state, minus what belongs to another key.
TargetState current_state(const json& doc, const std::string& key_id, std::int64_t shift) {
  TargetState s = target_state_from_json(doc, shift);
  if (s.key_id != key_id) {
    // Learned with a different key: its breaker (an auth failure above all) says nothing
    // about the key in use now. Stats describe the target and stay.
    s.breaker = {};
    s.probe_claimed_ms.reset();
    s.key_id = key_id;
  }
  return s;
}

// Each outcome into the breaker and the stats, in order; an outcome with another key than the
// state's starts the breaker afresh (see current_state).
void apply_outcomes(json& doc, const std::vector<RecordedOutcome>& outcomes,
                    const BreakerConfig& config, std::int64_t shift) {
  if (outcomes.empty()) return;
  TargetState s = current_state(doc, outcomes.front().key_id, shift);
  for (const RecordedOutcome& o : outcomes) {
    if (o.key_id != s.key_id) {
      s.breaker = {};
      s.probe_claimed_ms.reset();
      s.key_id = o.key_id;
    }
    auto breaker = CircuitBreaker::restore(s.breaker, config, o.now);
    breaker.record(o.outcome, o.now);
    s.breaker = breaker.snapshot();
    if (s.breaker.state != BreakerSnapshot::Stored::half_open) s.probe_claimed_ms.reset();
    record_outcome(s.stats, o.outcome, o.status, o.message, o.latency, o.ttft, o.wall_ms);
  }
  doc = to_json(s, shift);
}

RetryBudget budget_in(const json& doc, const BudgetConfig& config) {
  RetryBudget budget(config.max_tokens, config.token_ratio);
  if (doc.is_object() && doc.contains("retry_tokens") && doc["retry_tokens"].is_number()) {
    budget.set_tokens(doc["retry_tokens"].get<double>());
  }
  return budget;
}

}  // namespace

SharedState::SharedState(state::Store& store, BreakerConfig breaker, BudgetConfig budget)
    : store_(store),
      view_(store),
      limiter_(view_, [this](const std::string& provider) { settled(provider); }),
      breaker_(breaker),
      budget_(budget) {
  // Unique among the processes sharing a store: the pid alone is reused, and two states in one
  // process (tests) must count as two holders.
  std::random_device entropy;
  char id[40];
  std::snprintf(id, sizeof id, "%d-%08x%08x", static_cast<int>(::getpid()), entropy(), entropy());
  holder_ = id;
}

std::int64_t SharedState::clock_shift_ms() const {
  const auto offset = store_.clock_offset();
  if (!offset) return 0;
  using namespace std::chrono;
  return duration_cast<Millis>(system_clock::now().time_since_epoch() + *offset).count() -
         duration_cast<Millis>(steady_clock::now().time_since_epoch()).count();
}

SharedState::~SharedState() {
  ++*generation_;  // a sync timer still in some loop must not reach a destroyed state
}

void SharedState::attach(net::Transport& loop) {
  if (loop_ == &loop) return;
  loop_ = &loop;
  ++*generation_;
  recheck_armed_ = false;
  sync_timer_.reset();  // on another loop, which may be gone
  recheck_timer_.reset();
  view_.on_pending([this, &loop] {
    sync_timer_ = loop.add_timer(Millis(0), [this, generation = generation_, mine = *generation_] {
      if (*generation != mine) return;
      sync_timer_.reset();
      view_.sync();
    });
  });
}

void SharedState::in_sync(std::function<void()> work) {
  view_.in_sync(std::move(work));
}

void SharedState::flush() {
  view_.sync();
  if (loop_) {
    if (sync_timer_) loop_->cancel_timer(*sync_timer_);
    if (recheck_timer_) loop_->cancel_timer(*recheck_timer_);
    sync_timer_.reset();
    recheck_timer_.reset();
    // The loop may be gone (a one-shot ask flushes after its loop ended): forget it, so that
    // the next call attaches afresh instead of waiting on a timer that will never fire.
    loop_ = nullptr;
    ++*generation_;
    recheck_armed_ = false;
    view_.on_pending(nullptr);
  }
}

void SharedState::prefetch(const config::Chain& chain) {
  for (const auto& t : chain.targets) {
    view_.get(target_key(t.target));
    view_.get(provider_key(t.target.provider));
    view_.get(limits_key(t.target.provider));
  }
}

void SharedState::wait_for_slot(const std::string& provider, bool others_hold,
                                std::weak_ptr<void> alive, std::function<void()> wake) {
  slot_waiters_[provider].push_back({std::move(alive), std::move(wake)});
  if (others_hold) {
    remote_.insert(provider);
    arm_recheck();
  }
}

void SharedState::settled(const std::string& provider) {
  if (slot_waiters_.count(provider) == 0) return;
  if (!freed_.insert(provider).second) return;  // its waiters wake in the coming sync already
  view_.in_sync([this, provider] {
    freed_.erase(provider);
    wake_waiters(provider);
  });
}

// Each waiter tries again, in FIFO order; those that still find no slot wait again (at the
// back, behind nobody new: the queue was taken whole).
void SharedState::wake_waiters(const std::string& provider) {
  auto it = slot_waiters_.find(provider);
  if (it == slot_waiters_.end()) return;
  auto waiters = std::move(it->second);
  slot_waiters_.erase(it);
  for (auto& w : waiters) {
    if (w.alive.expired()) continue;
    w.wake();
  }
}

// One timer for the process: while calls wait for slots other processes hold, whose
// settlements this process never sees, look again every kOtherHoldersRecheck.
void SharedState::arm_recheck() {
  if (recheck_armed_ || !loop_) return;
  recheck_armed_ = true;
  recheck_timer_ =
      loop_->add_timer(kOtherHoldersRecheck, [this, generation = generation_, mine = *generation_] {
        if (*generation != mine) return;
        recheck_armed_ = false;
        recheck_timer_.reset();
        auto providers = std::exchange(remote_, {});
        view_.in_sync([this, providers] {
          for (const auto& p : providers)
            wake_waiters(p);
        });
        view_.sync();
      });
}

TargetState SharedState::load(const config::ResolvedTarget& target) {
  return current_state(view_.get(target_key(target.target)), key_fingerprint(target.api_key),
                       clock_shift_ms());
}

Gate SharedState::gate(const config::ResolvedTarget& target, time_point now, Millis probe_timeout,
                       const TargetState* known) {
  const std::string key_id = key_fingerprint(target.api_key);
  // A breaker stored closed is closed whatever its window holds (restoring it, which sorts
  // the window, would say the same).
  if (known && known->key_id == key_id && known->breaker.state == BreakerSnapshot::Stored::closed) {
    return Gate{};
  }
  const std::int64_t shift = clock_shift_ms();
  TargetState s = current_state(view_.get(target_key(target.target)), key_id, shift);
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
  // Half-open: claim the probe in the store's transaction, from the state as it is now.
  view_.update_now(target_key(target.target), [&](json& doc) {
    TargetState fresh = current_state(doc, key_id, shift);
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
    doc = to_json(fresh, shift);
  });
  return gate;
}

void SharedState::record(const config::ResolvedTarget& target, ErrorClass outcome,
                         std::optional<int> status, const std::string& message, Millis latency,
                         std::optional<Millis> ttft, time_point now, std::int64_t wall_ms) {
  RecordedOutcome o{
      key_fingerprint(target.api_key), outcome, status, message, latency, ttft, now, wall_ms};
  const std::string key = target_key(target.target);
  if (view_.syncing()) {
    view_.change(key, [o, breaker = breaker_, shift = clock_shift_ms()](json& doc) {
      apply_outcomes(doc, {o}, breaker, shift);
    });
    return;
  }
  // Outside a sync the outcomes of a target wait together, and the sync replays them on the
  // stored document in one conversion: a busy process finishes many calls per turn. Calls
  // read target documents only inside syncs, which see them.
  auto& batch = outcome_batches_[key];
  if (!batch || batch->replayed) {
    batch = std::make_shared<OutcomeBatch>();
    view_.defer(key, [batch, breaker = breaker_, shift = clock_shift_ms()](json& doc) {
      batch->replayed = true;
      apply_outcomes(doc, batch->outcomes, breaker, shift);
    });
  }
  batch->outcomes.push_back(std::move(o));
}

void SharedState::close_circuit(const config::ResolvedTarget& target) {
  const std::string key_id = key_fingerprint(target.api_key);
  view_.change(target_key(target.target), [key_id, shift = clock_shift_ms()](json& doc) {
    TargetState s = current_state(doc, key_id, shift);
    s.breaker = {};
    s.probe_claimed_ms.reset();
    doc = to_json(s, shift);
  });
}

RetryBudget SharedState::budget_from(const json& doc) const {
  return budget_in(doc, budget_);
}

bool SharedState::can_retry(const std::string& provider) {
  RetryBudget budget = budget_from(view_.get(provider_key(provider)));
  return budget.tokens() > budget.max_tokens() / 2;
}

bool SharedState::spend_retry(const std::string& provider) {
  const std::string key = provider_key(provider);
  if (!budget_from(view_.get(key)).allow_retry()) return false;
  view_.change(key, [config = budget_](json& doc) {
    RetryBudget budget = budget_in(doc, config);
    (void)budget.allow_retry();  // spends when there is anything left to spend
    if (!doc.is_object()) doc = json::object();
    doc["retry_tokens"] = budget.tokens();
  });
  return true;
}

void SharedState::budget_outcome(const std::string& provider, ErrorClass outcome) {
  const bool success = outcome == ErrorClass::none;
  if (!success && !is_transient(outcome)) return;
  const std::string key = provider_key(provider);
  if (success && budget_from(view_.get(key)).tokens() >= budget_.max_tokens) return;  // full
  view_.change(key, [config = budget_, success](json& doc) {
    RetryBudget budget = budget_in(doc, config);
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
  view_.update_now(route_key(route), [&](json& doc) {
    if (doc.is_object() && doc.contains("turn") && doc["turn"].is_number_unsigned())
      turn = doc["turn"].get<std::uint64_t>();
    if (!doc.is_object()) doc = json::object();
    doc["turn"] = turn + 1;
  });
  return turn;
}

}  // namespace detour::engine
