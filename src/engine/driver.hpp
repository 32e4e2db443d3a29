#pragma once
// Many jobs on one transport loop (docs/architecture.md, "Many calls on one loop"): the Driver
// pulls jobs from a source only as slots free, keeps at most N in flight, owns each job and
// frees it once it has reported, and runs the loop until the source is exhausted and nothing is
// in flight. `ask` (one call), `health` (every probe exchange at once) and `batch` (many calls
// from a file) all run through it, so none of them owns the loop on its own.
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "engine/call.hpp"
#include "net/transport.hpp"

namespace detour::engine {

// One unit of work on the loop that reports exactly once: a Call, a health probe's exchange.
// The job hands its result to its own consumer, then calls `reported`; the driver learns only
// that the slot is free. A job may report from inside start() or cancel(), or later from a
// transport callback; it is never destroyed inside one of those (the driver frees it later).
class Job {
 public:
  using Reported = std::function<void()>;
  virtual ~Job() = default;
  virtual void start(Reported reported) = 0;
  // Gives up what is in flight. The job still reports (as cancelled), now or from the loop.
  virtual void cancel() = 0;
  // The loop was stopped (Ctrl-C) before the job reported: report what it has, from inside
  // this call, without the loop. The job is destroyed right after, so its destructor must
  // detach from the transport whatever it still has there.
  virtual void interrupt() = 0;
};

// The next job, or nullptr when there are no more. Called only when a slot is free, so a source
// reading a 100k-line file holds at most one line ahead of the jobs in flight.
using JobSource = std::function<std::unique_ptr<Job>()>;

// A source over jobs made up front (health probes: few, and all wanted at once).
JobSource source_of(std::vector<std::unique_ptr<Job>> jobs);

class Driver {
 public:
  Driver(net::Transport& transport, std::size_t max_in_flight, JobSource source);
  ~Driver();  // frees every job it still holds; a job still running detaches in its destructor
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  // Starts up to N jobs and runs the loop until the source is exhausted and every job has
  // reported. When the loop is stopped first (Ctrl-C), no job is pulled any more and each one
  // still running reports through interrupt(); interrupted() then says so. Called once, and
  // never from inside the loop (a nested CurlTransport::run returns at once).
  void run();
  // Pulls no more jobs and cancels every running one; each still reports once. Safe to call from
  // a consumer (inside a job's report) or a timer.
  void cancel_all();
  // Pulls no more jobs; those running go on to their end. Safe from a consumer or a timer.
  void stop_pulling();
  // While `ready` says no, the source is not asked for the next job (a batch whose ordered
  // output window is full behind a slow line), and a source that returns nullptr while it says
  // no is not exhausted, only idle for now. It is asked again each time a job reports, so it
  // must not say no while nothing is running.
  void set_gate(std::function<bool()> ready) { gate_ = std::move(ready); }
  // The first time the loop is stopped (Ctrl-C), no more jobs are pulled and those running get
  // `grace` to finish before they are cancelled; `on_stop` is told at once. Stopping the loop
  // again interrupts them. Without a grace, the first stop interrupts (ask, health).
  void set_grace(Millis grace, std::function<void()> on_stop) {
    grace_ = grace;
    on_stop_ = std::move(on_stop);
  }

  bool interrupted() const { return interrupted_; }
  std::size_t in_flight() const { return running_.size(); }
  // Jobs the driver still owns: running, or reported and not yet freed. 0 once run() returns.
  std::size_t held() const { return running_.size() + finished_.size(); }
  std::size_t pulled() const { return pulled_; }
  std::size_t reported() const { return reported_; }

 private:
  void fill();
  // A pump with nothing running and nothing left to pull would only free reported jobs, which
  // run() does itself.
  bool loop_has_work() const { return !running_.empty() || (pump_.has_value() && !exhausted_); }
  void drain_for_grace();
  void on_reported(std::uint64_t key);
  void schedule_pump();
  void free_finished();

  net::Transport& transport_;
  std::size_t max_in_flight_;
  JobSource source_;
  std::function<bool()> gate_;
  std::optional<Millis> grace_;
  std::function<void()> on_stop_;
  bool exhausted_ = false;  // the source said no more, or cancel_all/interrupt closed it
  // True while the driver itself starts or interrupts jobs: it frees those that report then
  // itself, so a report needs no pump.
  bool driving_ = false;
  bool interrupted_ = false;
  std::uint64_t next_key_ = 0;
  std::map<std::uint64_t, std::unique_ptr<Job>> running_;
  // Reported jobs wait here until the driver is outside every job's callback.
  std::vector<std::unique_ptr<Job>> finished_;
  // The zero-delay timer that frees finished jobs and starts the next ones.
  std::optional<net::Transport::Id> pump_;
  std::size_t pulled_ = 0;
  std::size_t reported_ = 0;
};

// A Call as a job: its result goes to `consumer`, then the driver is told.
class CallJob final : public Job {
 public:
  using Consumer = std::function<void(CallResult)>;
  CallJob(CallContext context, CallSpec spec, CallObserver& observer, Consumer consumer);
  void start(Reported reported) override;
  void cancel() override;
  void interrupt() override;

 private:
  void report(CallResult result);

  Consumer consumer_;
  Reported reported_;
  bool done_ = false;
  Call call_;  // last: its Done refers to the members above
};

}  // namespace detour::engine
