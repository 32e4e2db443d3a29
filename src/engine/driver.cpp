// The driver of jobs on one loop (docs/architecture.md, "Many calls on one loop"), the Call as a
// job, and run_call, the one-call runner `ask` uses.
#include "engine/driver.hpp"

namespace detour::engine {

JobSource source_of(std::vector<std::unique_ptr<Job>> jobs) {
  auto held = std::make_shared<std::vector<std::unique_ptr<Job>>>(std::move(jobs));
  auto next = std::make_shared<std::size_t>(0);
  return [held, next]() -> std::unique_ptr<Job> {
    if (*next >= held->size()) return nullptr;
    return std::move((*held)[(*next)++]);
  };
}

Driver::Driver(net::Transport& transport, std::size_t max_in_flight, JobSource source)
    : transport_(transport),
      max_in_flight_(max_in_flight > 0 ? max_in_flight : 1),
      source_(std::move(source)) {}

Driver::~Driver() {
  if (pump_) transport_.cancel_timer(*pump_);
  // A running job is only left here when run() was never called or threw; its destructor
  // detaches from the transport.
  running_.clear();
  finished_.clear();
}

void Driver::run() {
  fill();
  // The loop runs while anything is pending on it: every running job has a request or a timer
  // there, and a pump is pending whenever a job has reported. So it returns with work left only
  // when it was stopped.
  if (loop_has_work()) transport_.run();
  if (loop_has_work() && grace_) drain_for_grace();
  const bool stopped = loop_has_work();
  if (pump_) {
    transport_.cancel_timer(*pump_);
    pump_.reset();
  }
  if (stopped) {
    // Stopped (Ctrl-C), or a job that has nothing left on the loop and never reported: either
    // way the loop will not finish it, so it reports what it has now, and nothing more is
    // pulled.
    interrupted_ = true;
    exhausted_ = true;
    driving_ = true;  // the loop is done: no pump; the reported jobs are freed below
    std::vector<std::uint64_t> keys;
    for (const auto& [key, job] : running_)
      keys.push_back(key);
    for (std::uint64_t key : keys) {
      auto it = running_.find(key);
      if (it == running_.end()) continue;
      it->second->interrupt();
      // A job that did not report from interrupt() breaks the contract; free it all the same.
      if (auto still = running_.find(key); still != running_.end()) {
        finished_.push_back(std::move(still->second));
        running_.erase(still);
      }
    }
    driving_ = false;
  }
  free_finished();
}

// The loop was stopped once: the jobs running may finish within the grace, then are cancelled
// (each still reports); a second stop leaves them to run()'s interrupt.
void Driver::drain_for_grace() {
  exhausted_ = true;
  if (on_stop_) on_stop_();
  const net::Transport::Id timer = transport_.add_timer(*grace_, [this] { cancel_all(); });
  if (running_.empty() && !pump_) schedule_pump();
  transport_.run();
  transport_.cancel_timer(timer);
}

void Driver::cancel_all() {
  exhausted_ = true;
  std::vector<std::uint64_t> keys;
  for (const auto& [key, job] : running_)
    keys.push_back(key);
  // A job may report from inside cancel(), which erases it from running_: look each one up.
  for (std::uint64_t key : keys) {
    auto it = running_.find(key);
    if (it != running_.end()) it->second->cancel();
  }
}

void Driver::stop_pulling() {
  exhausted_ = true;
  // Nothing running: the pump stops the loop (run() may be waiting in it).
  if (running_.empty() && !driving_) schedule_pump();
}

// Called only from run() and from the pump timer, never from inside a job's callback: that is
// what makes freeing reported jobs here safe.
void Driver::fill() {
  driving_ = true;
  free_finished();
  while (!exhausted_ && running_.size() < max_in_flight_) {
    if (gate_ && !gate_()) break;
    std::unique_ptr<Job> job = source_();
    if (!job) {
      // With the gate closed now, the source only had nothing to start yet (it wrote lines that
      // need no call until the window filled): it is asked again after the next report.
      if (!gate_ || gate_()) exhausted_ = true;
      break;
    }
    ++pulled_;
    const std::uint64_t key = next_key_++;
    Job& started = *job;
    running_.emplace(key, std::move(job));
    started.start([this, key] { on_reported(key); });
    // start() has returned, so a job that reported from inside it is off every stack now.
    free_finished();
  }
  driving_ = false;
}

void Driver::on_reported(std::uint64_t key) {
  auto it = running_.find(key);
  if (it == running_.end()) return;  // a second report: the job breaks its contract; ignore it
  ++reported_;
  // Not destroyed here: the job's own code is still on the stack below this callback.
  finished_.push_back(std::move(it->second));
  running_.erase(it);
  if (driving_) return;  // fill() is on the stack and looks again when start() returns
  if (exhausted_ && running_.empty()) {
    // The last job has reported: the loop stops now, not at a pump later in this turn, so
    // what else is due on it (the shared state's sync) is left to its owner, who writes it
    // after using the result (`ask` prints the answer first). run() frees the finished jobs.
    transport_.stop();
    return;
  }
  schedule_pump();
}

void Driver::schedule_pump() {
  if (pump_) return;
  pump_ = transport_.add_timer(Millis(0), [this] {
    pump_.reset();
    fill();
    // Every job has reported and none is left to pull: the loop's work is done. What else is
    // on it (the shared state's sync) is its owner's to finish, not a reason to keep running.
    if (exhausted_ && running_.empty()) transport_.stop();
  });
}

void Driver::free_finished() {
  // Moved out first: a job's destructor must not see the vector mid-change.
  auto done = std::move(finished_);
  finished_.clear();
  done.clear();
}

CallJob::CallJob(CallContext context, CallSpec spec, CallObserver& observer, Consumer consumer)
    : consumer_(std::move(consumer)),
      call_(context, std::move(spec), observer, [this](CallResult r) { report(std::move(r)); }) {}

void CallJob::start(Reported reported) {
  reported_ = std::move(reported);
  call_.start();
}

void CallJob::cancel() {
  call_.cancel();
}

void CallJob::interrupt() {
  report(call_.interrupted_result());
}

void CallJob::report(CallResult result) {
  if (done_) return;
  done_ = true;
  consumer_(std::move(result));
  // A copy, so that nothing is read from the job's members after the driver's callback.
  Reported reported = reported_;
  reported();
}

CallResult run_call(CallContext context, CallSpec spec, CallObserver& observer) {
  CallResult result;
  std::optional<CallSpec> pending(std::move(spec));
  // Room for two, with one job: after starting it, fill() asks the source again and learns it
  // is empty, so the call's report ends the loop at once (Driver::on_reported).
  Driver driver(context.transport, 2, [&]() -> std::unique_ptr<Job> {
    if (!pending) return nullptr;
    auto job = std::make_unique<CallJob>(context, std::move(*pending), observer,
                                         [&](CallResult r) { result = std::move(r); });
    pending.reset();
    return job;
  });
  driver.run();
  return result;
}

}  // namespace detour::engine
