#pragma once
// The engine's view of the shared state: circuit breakers, outcome stats, retry budgets and rate
// limits of the targets calls use, kept in a state::Store so that what one process learns the
// next one knows. Everything goes through this process's state::View (docs/architecture.md,
// "Shared state"): reads come from what the process knows, outcomes are written with the next
// sync, and the decisions other processes must not race (reserving capacity, claiming a
// half-open breaker's probe, a round-robin turn) are made in a sync's transaction.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "engine/breaker.hpp"
#include "engine/limiter.hpp"
#include "engine/retry.hpp"
#include "engine/target_state.hpp"
#include "net/transport.hpp"
#include "state/store.hpp"
#include "state/view.hpp"

namespace detour::engine {

struct BudgetConfig {
  double max_tokens = 10;    // gRPC's default
  double token_ratio = 0.1;  // a success refunds this much
};

// One attempt's outcome, as SharedState::record keeps it until the next sync.
struct RecordedOutcome {
  std::string key_id;
  ErrorClass outcome = ErrorClass::none;
  std::optional<int> status;
  std::string message;
  Millis latency{0};
  std::optional<Millis> ttft;
  std::chrono::steady_clock::time_point now;
  std::int64_t wall_ms = 0;
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
  ~SharedState();
  SharedState(const SharedState&) = delete;
  SharedState& operator=(const SharedState&) = delete;

  // Syncs at the end of each turn of this loop in which something became pending (a zero-delay
  // timer runs after the turn's other callbacks). Calls attach the loop they run on.
  void attach(net::Transport& loop);
  // Runs `work` inside the next sync: where a call plans and reserves, so that what it decides
  // is decided against the store as it is, in the same transaction as everything else of the
  // turn. Inside a sync already, it runs at once.
  void in_sync(std::function<void()> work);
  bool syncing() const { return view_.syncing(); }
  // Writes what is pending now, in one transaction (none when nothing is), and forgets the
  // timer asked of the loop: `ask` does this after printing its answer.
  void flush();
  // The store's wall clock minus this machine's steady clock, for the breaker's times in a
  // store shared by machines; 0 for a store on this machine (target_state.hpp, to_json).
  std::int64_t clock_shift_ms() const;
  // This process's name in the limiter's in-flight counts.
  const std::string& holder() const { return holder_; }

  // A call waiting for an in-flight slot of `provider`: `wake` runs inside a sync when a
  // settlement in this process may have freed one, or -- when `others_hold` -- on the one
  // process-wide timer that re-checks slots other processes hold. Once only; to keep waiting,
  // wait again. `alive` going out of scope drops the wait.
  void wait_for_slot(const std::string& provider, bool others_hold, std::weak_ptr<void> alive,
                     std::function<void()> wake);

  // The target's state as stored; a state learned with another API key is forgotten.
  TargetState load(const config::ResolvedTarget& target);

  // Whether an attempt may go to the target now. Closed: yes (a read, no write). Open: no.
  // Call it inside a sync, where the read is of the store as it is now.
  // Half-open: claims the one probe atomically, so of many processes exactly one probes; a
  // claim older than `probe_timeout` is taken over (its process died or hung). `known` is the
  // state the caller loaded moments ago: when it shows a closed circuit, it is not read again.
  Gate gate(const config::ResolvedTarget& target, time_point now, Millis probe_timeout,
            const TargetState* known = nullptr);

  // Records one attempt's outcome into the target's breaker and stats, with the next sync
  // (inside a sync: in it). Outside a sync the view shows it only after that sync.
  void record(const config::ResolvedTarget& target, ErrorClass outcome, std::optional<int> status,
              const std::string& message, Millis latency, std::optional<Millis> ttft,
              time_point now, std::int64_t wall_ms);

  // Closes the target's circuit and resets its cooldown: a health check's one-token request
  // just got an answer, which says more than the failures that opened it.
  void close_circuit(const config::ResolvedTarget& target);

  // The provider's retry budget: whether a retry may go out (without spending), spending one,
  // and an attempt's outcome (success refunds, transient failure costs). Decided on the view;
  // the spending is replayed on the stored budget at the next sync, so processes racing for
  // the last tokens may overspend by one each: a budget is a ratio, not a count.
  bool can_retry(const std::string& provider);
  bool spend_retry(const std::string& provider);
  void budget_outcome(const std::string& provider, ErrorClass outcome);

  // Reads, inside the next sync's transaction, what a call of this chain will consult, so that
  // later reads outside a sync find it in the view.
  void prefetch(const config::Chain& chain);

  // Round-robin: this call's turn on the route (0, 1, 2, ... across processes).
  std::uint64_t take_turn(const std::string& route);

  const BreakerConfig& breaker_config() const { return breaker_; }
  // Rate limits and in-flight slots, in the same store.
  Limiter& limiter() { return limiter_; }

 private:
  struct OutcomeBatch {
    std::vector<RecordedOutcome> outcomes;
    bool replayed = false;  // the sync took it: later outcomes start a new batch
  };
  struct SlotWaiter {
    std::weak_ptr<void> alive;
    std::function<void()> wake;
  };
  RetryBudget budget_from(const nlohmann::json& doc) const;
  void settled(const std::string& provider);  // a slot of `provider` may be free
  void wake_waiters(const std::string& provider);
  void arm_recheck();

  state::Store& store_;
  state::View view_;
  Limiter limiter_;
  BreakerConfig breaker_;
  BudgetConfig budget_;
  std::string holder_;
  net::Transport* loop_ = nullptr;
  // Bumped when the loop changes or the state is flushed by hand: a sync timer of an older
  // generation does nothing when it fires.
  std::shared_ptr<std::uint64_t> generation_ = std::make_shared<std::uint64_t>(0);
  std::map<std::string, std::shared_ptr<OutcomeBatch>> outcome_batches_;  // by target key
  std::map<std::string, std::deque<SlotWaiter>> slot_waiters_;
  std::set<std::string> freed_;   // providers with a settlement since the waiters last woke
  std::set<std::string> remote_;  // providers whose waiters wait on other processes' slots
  bool recheck_armed_ = false;
  // The timers asked of the loop, cancelled by flush() so that nothing is left on it.
  std::optional<net::Transport::Id> sync_timer_, recheck_timer_;
};

}  // namespace detour::engine
