#pragma once
// One logical call: a request walked along a chain of targets on the transport's event loop.
// A Call never blocks; it starts attempts, reacts to their completion, and reports once.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "engine/errors.hpp"
#include "net/transport.hpp"
#include "providers/types.hpp"

namespace detour::engine {

struct CallSpec {
  providers::ChatRequest request;  // `model` and `stream` are set per attempt
  config::Chain chain;
  Millis timeout{60'000};    // one attempt
  Millis deadline{300'000};  // the whole call
  bool stream = false;       // stream on the wire (and report text as it arrives)
};

struct AttemptRecord {
  std::string provider;
  std::string model;
  std::optional<int> status;  // HTTP status; empty when no reply arrived
  ErrorClass error = ErrorClass::none;
  std::string message;  // why it failed, for people (redacted of API keys)
  Millis latency{0};
  Millis waited{0};
  bool printed_text = false;  // streamed text reached the observer before it failed
};

struct CallResult {
  bool ok = false;
  providers::ChatReply reply;
  std::optional<config::ResolvedTarget> target;  // the target that answered
  bool degraded = false;                         // answered by a lower tier than the first target
  std::optional<double> cost_usd;
  ErrorClass error = ErrorClass::none;  // on failure: the class that ended the call
  std::optional<int> status;
  std::string message;
  Millis latency{0};
  std::vector<AttemptRecord> attempts;
};

// What a caller sees while the call runs: live text and one line per decision.
class CallObserver {
 public:
  virtual ~CallObserver() = default;
  virtual void on_attempt_start(const config::ResolvedTarget& /*target*/, int /*number*/) {}
  virtual void on_text(std::string_view /*text*/) {}
  // `next` is the target the call moves to, or empty when the call ends here.
  virtual void on_attempt_end(const AttemptRecord& /*attempt*/, std::string_view /*decision*/) {}
};

// What to do after a failed attempt. The one place the failover policy lives, so the
// resilience engine can replace it without touching the call machinery.
enum class NextStep { next_target, stop };
NextStep decide_after_failure(const AttemptRecord& attempt);

// The exit code for a failed call, from every attempt it made (DESIGN.md section 1).
int exit_code_for_failure(const CallResult& result);

// Dollars for a reply, when the model's prices are known.
std::optional<double> cost_of(const config::ModelConfig& model, const providers::Usage& usage);

class Call {
 public:
  using Done = std::function<void(CallResult)>;
  Call(net::Transport& transport, const net::Clock& clock, CallSpec spec, CallObserver& observer,
       Done done);
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  void start();
  void cancel();  // cancels the attempt in flight; the call then reports `cancelled`
  // What the call has done when its loop was stopped before it reported (Ctrl-C): the
  // attempts so far and the one in flight, as `cancelled`.
  CallResult interrupted_result() const;

 private:
  struct Attempt;
  void start_attempt();
  void complete_attempt(net::HttpResponse response);
  void finish_success(providers::ChatReply reply);
  void finish_failure(const AttemptRecord& last);
  Millis time_left() const;

  net::Transport& transport_;
  const net::Clock& clock_;
  CallSpec spec_;
  CallObserver& observer_;
  Done done_;
  std::chrono::steady_clock::time_point started_;
  size_t next_target_ = 0;
  std::shared_ptr<Attempt> attempt_;  // the attempt in flight, shared with its callbacks
  CallResult result_;
  bool cancelled_ = false;
};

// Runs one call to completion on the transport's loop and returns its result.
CallResult run_call(net::Transport& transport, const net::Clock& clock, CallSpec spec,
                    CallObserver& observer);

// Replaces every occurrence of each secret in text, so provider messages that echo a key
// never reach output.
std::string redact(std::string text, const std::vector<std::string>& secrets);

}  // namespace detour::engine
