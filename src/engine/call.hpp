#pragma once
// One logical call: a request walked along a chain of targets on the transport's event loop, with
// the retry, failover, breaker, validation and hedging rules (docs/architecture.md, "How a call
// flows"). A Call never blocks; it starts attempts and timers, reacts to their completion, and
// reports once.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "engine/errors.hpp"
#include "engine/limiter.hpp"
#include "engine/policy.hpp"
#include "engine/retry.hpp"
#include "engine/shared_state.hpp"
#include "engine/validate.hpp"
#include "net/transport.hpp"
#include "providers/types.hpp"

namespace detour::engine {

struct TargetKey;  // engine/target_endpoint.hpp

struct Reservation;

struct CallSpec {
  providers::ChatRequest request;  // `model` and `stream` are set per attempt
  config::Chain chain;
  Millis timeout{config::kDefaultTimeout};    // one attempt
  Millis deadline{config::kDefaultDeadline};  // the whole call
  bool stream = false;                        // stream on the wire (and report text as it arrives)
  int retries = config::kDefaultRetries;      // retries per target for transient errors
  std::optional<Millis> first_token_timeout;  // an attempt with no text by then is a timeout
  bool hedge = false;                         // --hedge
  std::optional<Millis> hedge_after;          // --hedge=DUR; else the target's p95
  bool truncate = false;  // --truncate: fit the smallest known window of the chain
  // Applied to the order the route's strategy chose: --no-fallback keeps its first target,
  // --no-degrade drops targets of a lower tier than that first one.
  bool no_fallback = false;
  bool no_degrade = false;
  bool route_moves_on_content_filter = false;
  ValidationRules validation;
  BackoffConfig backoff;
  Millis move_on_threshold = kDefaultMoveOnThreshold;
  // How far ahead a call may reserve a rate-limited slot; unset: as far as its deadline allows.
  // A batch sets it short, so that its backlog waits unreserved and a one-off `ask` of another
  // process gets one of the next slots instead of queueing behind every line in flight.
  std::optional<Millis> reserve_ahead;
};

// A paced request goes this long after its slot, which stays where it was (the pace is not
// slowed). The provider's bucket refills from when the burst's requests ARRIVED: those went on
// new connections and arrived later than sent, while a paced request on a warm connection
// arrives at once, so sent exactly on its slot it arrives before the provider's refill and gets
// a 429 (tests/bench/run P3 and P9: the burst's requests took 5 ms, the next one 1 ms; 3 ms
// of margin was not enough). The margin adds to a paced request's wait, not to the pace; more
// than this costs calls near their deadline (tests/unit/test_driver.cpp).
inline constexpr Millis kSlotMargin{10};

// What the call uses of the outside world. All references must outlive the call.
struct CallContext {
  net::Transport& transport;
  const net::Clock& clock;
  SharedState& state;
  std::mt19937_64& rng;
};

struct AttemptRecord {
  std::string provider;
  std::string model;
  std::optional<int> status;  // HTTP status; empty when no reply arrived (or not sent)
  ErrorClass error = ErrorClass::none;
  std::string message;  // why it failed, for people (redacted of API keys)
  Millis latency{0};
  Millis waited{0};                     // slept before this attempt (backoff or the server's hint)
  bool printed_text = false;            // streamed text reached the observer before it failed
  bool hedge = false;                   // started as a hedge of another attempt
  std::optional<Millis> ttft;           // time to the first text, when streamed
  ErrorClass cause = ErrorClass::none;  // skipped_open: the last error of the target
};

struct CallResult {
  bool ok = false;
  providers::ChatReply reply;
  std::optional<config::ResolvedTarget> target;  // the target that answered
  bool degraded = false;                    // answered by a lower tier than the first target tried
  std::optional<std::string> first_target;  // the first target of this call's order
  std::optional<double> cost_usd;
  ErrorClass error = ErrorClass::none;  // on failure: the class that ended the call
  std::optional<int> status;
  std::string message;
  Millis latency{0};
  std::vector<AttemptRecord> attempts;
  // The truncation --truncate made, for a log line; 0/false when none.
  int truncated_messages = 0;
  bool truncated_text = false;
};

// What a caller sees while the call runs: live text and one line per decision.
class CallObserver {
 public:
  virtual ~CallObserver() = default;
  virtual void on_attempt_start(const config::ResolvedTarget& /*target*/, int /*number*/) {}
  virtual void on_text(std::string_view /*text*/) {}
  // Every finished or skipped attempt, with what the call decided to do next and why.
  virtual void on_attempt_end(const AttemptRecord& /*attempt*/, std::string_view /*decision*/) {}
  // A decision that is not about one attempt (a pass over the chain again, a hedge).
  virtual void on_decision(std::string_view /*what*/) {}
};

// The exit code for a failed call (README, "Exit codes"): 130 cancelled, 4 when the request itself
// was rejected, 5 when every target tried refused the key, else 1.
int exit_code_for_failure(const CallResult& result);

// Dollars for a reply, when the model's prices are known.
std::optional<double> cost_of(const config::ModelConfig& model, const providers::Usage& usage);

class Call {
 public:
  using Done = std::function<void(CallResult)>;
  Call(CallContext context, CallSpec spec, CallObserver& observer, Done done);
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  void start();
  void cancel();  // cancels what is in flight; the call then reports `cancelled`
  // What the call has done when its loop was stopped before it reported (Ctrl-C): the
  // attempts so far and those in flight, as `cancelled`.
  CallResult interrupted_result() const;

  // Defined in call_internal.hpp, for the call machinery's own files only.
  struct Attempt;
  struct Progress;  // per target of the chain, for this call
  struct Outcome;   // what one finished attempt came to

 private:
  // call.cpp: the walk along the chain.
  void plan();
  void keep_allowed_targets();  // --no-fallback and --no-degrade, on the strategy's order
  std::optional<std::size_t> take_candidate();  // the next target to try, skipping closed ones
  std::string next_target_text() const;         // "next target p/m", for -v
  void next(Millis waited = Millis(0));
  void retry_pass();
  void after_failure(const Attempt& attempt, const AttemptRecord& record, const Outcome& outcome);
  bool other_target_usable(std::size_t except) const;
  void finish_success(const Attempt& attempt, providers::ChatReply reply);
  void finish_failure(AttemptRecord last, std::string why);
  void end_in_flight(const std::string& why);
  // Waits on the loop, tracked so that nothing runs once the call has reported; returns the
  // timer (none when `wait` is not positive and `then` ran at once).
  std::optional<net::Transport::Id> wait_then(Millis wait, std::function<void()> then);
  void cancel_wait(net::Transport::Id timer);
  void cancel_waits();
  // Runs `work` inside a sync of the shared state (at once when in one already): everything
  // that reads the state to decide or reserves capacity goes through here, so that a turn's
  // decisions cost one store transaction (docs/architecture.md, "Shared state").
  void synced(std::function<void()> work);
  Millis time_left() const;

  // call_capacity.cpp: the limiter, before and after each attempt.
  Admission reserve_now(std::size_t index);  // reserves only what is free at once
  bool can_go_within(std::size_t index, Millis within);
  bool sooner_elsewhere(std::size_t except, const Admission& admission);
  std::optional<std::size_t> sooner_skipped(std::size_t except, const Admission& admission);
  std::optional<std::size_t> skipped_with_capacity();
  void admit_then_start(std::size_t index, Millis waited);
  void hold_off(std::size_t index, Millis waited, const Admission& admission, Millis ahead);
  void wait_for_slot(std::size_t index, Millis waited, const Admission& admission, Millis max_wait);
  void pass_over(std::size_t index, const Admission& admission);
  void skip_for_capacity(std::size_t index, const Admission& admission);
  void release(std::size_t index, const Reservation& reservation, bool reached_provider);
  void release_unsent();
  void settle_capacity(const Attempt& attempt, const net::HttpResponse& response,
                       const providers::RateLimitInfo& headers,
                       const std::optional<providers::Usage>& usage, const AttemptRecord& record,
                       const Outcome& outcome);
  AdmissionRequest admission_request(std::size_t index, Millis max_wait) const;

  // call_attempt.cpp: one exchange with one target.
  void start_attempt(std::size_t index, Millis waited, bool hedge);
  void send_when_keyed(const std::shared_ptr<Attempt>& attempt);  // api_key_cmd may still run
  void stop_attempt(const std::shared_ptr<Attempt>& attempt);     // cancels it, sent or not
  void send(const std::shared_ptr<Attempt>& attempt, const TargetKey& key);
  void complete_attempt(const std::shared_ptr<Attempt>& attempt, net::HttpResponse response);
  void arm_hedge(const std::shared_ptr<Attempt>& attempt);
  void hedge(const std::shared_ptr<Attempt>& attempt, Millis delay);
  void on_first_text(Attempt& attempt);
  AttemptRecord record_of(const Attempt& attempt) const;

  CallContext ctx_;
  CallSpec spec_;
  CallObserver& observer_;
  Done done_;
  std::chrono::steady_clock::time_point started_;
  std::vector<std::size_t> order_;  // indices into spec_.chain.targets, in trying order
  std::vector<Progress> progress_;
  std::size_t cursor_ = 0;  // next position in order_ for this pass
  int pass_ = 0;            // 0: first pass; later passes retry come-back targets
  std::vector<std::shared_ptr<Attempt>> in_flight_;
  // The call's own waits (backoffs, server hints, capacity): all of them, so that none can
  // start anything once the call has reported.
  std::vector<net::Transport::Id> wait_timers_;
  std::optional<std::int64_t> context_floor_;  // after context_length: windows must exceed it
  Attempt* printer_ = nullptr;  // the streamed attempt whose text reaches the observer
  CallResult result_;
  std::optional<AttemptRecord> last_failure_;
  bool cancelled_ = false;
  bool finished_ = false;
  // Work queued in the shared state's next sync holds a weak reference: once the call is
  // destroyed, it does nothing.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// Runs one call to completion on the transport's loop (through the Driver, driver.cpp) and
// returns its result. What the call changed in the shared state may still be pending: the
// caller flushes it (`ask` after printing its answer).
CallResult run_call(CallContext context, CallSpec spec, CallObserver& observer);

// Replaces every occurrence of each secret in text, and of its first 8 or more characters (a
// key in an excerpt cut short), so provider messages that echo a key never reach output.
std::string redact(std::string text, const std::vector<std::string>& secrets);

}  // namespace detour::engine
