#include "batch/runner.hpp"

#include "batch/estimate.hpp"

namespace detour::batch {

// A line's call as a driver job. The line (and its schema) live here, under the call that
// points into them, until the driver frees the job after it reported.
class Runner::LineJob final : public engine::Job {
 public:
  LineJob(Runner& runner, SourcedLine line, double cost_estimate)
      : runner_(runner), line_(std::move(line)), cost_estimate_(cost_estimate) {
    auto& planned = std::get<PlannedCall>(line_.plan);
    schema_ = std::move(planned.schema);
    route_ = planned.spec.chain.route;
    call_.emplace(runner_.context_, std::move(planned.spec), runner_.observer_,
                  [this](engine::CallResult result) { report(std::move(result)); });
  }

  void start(Reported reported) override {
    reported_ = std::move(reported);
    call_->start();
  }
  void cancel() override { call_->cancel(); }
  void interrupt() override { report(call_->interrupted_result()); }

 private:
  void report(engine::CallResult result) {
    if (done_) return;
    done_ = true;
    runner_.in_flight_cost_ -= cost_estimate_;
    LineOutcome outcome;
    outcome.line = &line_;
    outcome.result = std::move(result);
    outcome.route = route_;
    runner_.write(line_.sequence, outcome);
    Reported reported = reported_;  // nothing of this job is read after the driver is told
    reported();
  }

  Runner& runner_;
  SourcedLine line_;
  double cost_estimate_;
  std::unique_ptr<engine::SchemaValidator> schema_;
  std::optional<std::string> route_;
  Reported reported_;
  bool done_ = false;
  std::optional<engine::Call> call_;  // last: destroyed first, while what it points to lives
};

Runner::Runner(engine::CallContext context, LineSupplier lines, LineWriter& writer,
               RunOptions options, engine::CallObserver& observer, ProgressHook progress)
    : context_(context),
      lines_(std::move(lines)),
      writer_(writer),
      options_(options),
      observer_(observer),
      progress_(std::move(progress)) {}

namespace {

LineOutcome not_sent(const SourcedLine& line, LineOutcome::Kind kind, std::string message,
                     std::optional<std::string> route) {
  LineOutcome outcome;
  outcome.kind = kind;
  outcome.line = &line;
  outcome.message = std::move(message);
  outcome.route = std::move(route);
  return outcome;
}

}  // namespace

std::optional<std::string> Runner::over_budget(const engine::CallSpec& spec) const {
  if (!options_.max_cost_usd) return std::nullopt;
  const double estimate = estimated_cost(spec).value_or(0);
  if (summary_.cost_usd + in_flight_cost_ + estimate <= *options_.max_cost_usd) return std::nullopt;
  char text[160];
  std::snprintf(text, sizeof text,
                "--max-cost %.4f: spent %.4f, %.4f in flight, this line up to %.4f USD",
                *options_.max_cost_usd, summary_.cost_usd, in_flight_cost_, estimate);
  return std::string(text);
}

// The next line worth a call. Lines that need none (bad input, over the budget) are written
// on the way; the window is checked before each line is taken, so a run of bad lines behind a
// slow one waits like any other.
std::unique_ptr<engine::Job> Runner::next_job() {
  while (!stopped_) {
    // Not now: the driver asks again after the next report (Driver::set_gate).
    if (!writer_.has_room(next_sequence_)) return nullptr;
    std::optional<SourcedLine> pulled = lines_();
    if (!pulled) return nullptr;
    SourcedLine line = std::move(*pulled);
    line.sequence = next_sequence_++;
    if (auto* bad = std::get_if<std::string>(&line.plan)) {
      write(line.sequence, not_sent(line, LineOutcome::Kind::bad_input, *bad, std::nullopt));
      continue;
    }
    auto& planned = std::get<PlannedCall>(line.plan);
    if (!budget_spent_) {
      if (auto why = over_budget(planned.spec)) {
        budget_message_ = std::move(*why);
        budget_spent_ = true;
      }
    }
    if (budget_spent_) {
      write(line.sequence, not_sent(line, LineOutcome::Kind::budget_exceeded, budget_message_,
                                    planned.spec.chain.route));
      continue;
    }
    const double estimate = options_.max_cost_usd ? estimated_cost(planned.spec).value_or(0) : 0;
    in_flight_cost_ += estimate;
    return std::make_unique<LineJob>(*this, std::move(line), estimate);
  }
  return nullptr;
}

void Runner::write(std::uint64_t sequence, const LineOutcome& outcome) {
  count(outcome);
  writer_.finish(sequence, outcome);
  if (progress_) progress_(summary_);
}

void Runner::count(const LineOutcome& outcome) {
  const engine::CallResult& r = outcome.result;
  ++summary_.lines;
  for (const auto& attempt : r.attempts) {
    if (attempt.status == 429) ++summary_.rate_limited;
  }
  if (r.ok) {
    ++summary_.ok;
    summary_.input_tokens += r.reply.usage.input_tokens.value_or(0);
    summary_.output_tokens += r.reply.usage.output_tokens.value_or(0);
    summary_.cost_usd += r.cost_usd.value_or(0);
    if (!r.cost_usd) ++summary_.unpriced;
    const std::string answered = r.target->target.name();
    ++summary_.per_target[answered];
    if (r.first_target && *r.first_target != answered) ++summary_.failovers;
  } else if (outcome.kind == LineOutcome::Kind::bad_input) {
    ++summary_.bad_input;
  } else if (outcome.kind == LineOutcome::Kind::budget_exceeded) {
    ++summary_.not_sent;
  } else {
    ++summary_.failed;
  }
}

Summary Runner::run() {
  engine::Driver driver(context_.transport, options_.concurrency, [this] { return next_job(); });
  driver.set_gate([this] { return writer_.has_room(next_sequence_); });
  driver.set_grace(options_.grace, [this] {
    stopped_ = true;
    summary_.interrupted = true;
  });
  driver.run();
  if (driver.interrupted()) summary_.interrupted = true;
  // What the calls taught the shared state reaches the store before the summary is printed.
  context_.state.flush();
  return summary_;
}

}  // namespace detour::batch
