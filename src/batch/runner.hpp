#pragma once
// A batch on the engine's driver (docs/architecture.md, "detour batch"): lines come from a
// source in input order, each good one becomes a Call, each result becomes one output line
// handed to the writer with its sequence number, and admission stops when the writer's window
// is full, the budget is spent or Ctrl-C came. Knows nothing of files, flags or terminals.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "engine/call.hpp"
#include "engine/driver.hpp"
#include "engine/validate.hpp"

namespace detour::batch {

// A line ready to be sent: its spec, and what the spec points into (its own --schema).
struct PlannedCall {
  engine::CallSpec spec;
  std::unique_ptr<engine::SchemaValidator> schema;  // spec.validation.schema may point here
};

// One line of the input, in order. `sequence` numbers the lines this run answers, from 0.
struct SourcedLine {
  std::uint64_t sequence = 0;
  std::string id;
  std::uint64_t line_no = 0;
  // What to send, or why the line cannot be sent (bad_input: its message names the line).
  std::variant<PlannedCall, std::string> plan;
  std::optional<nlohmann::ordered_json> metadata;
};

// Pulls lines in input order; nullopt at the end. Lines skipped by --resume never come out.
using LineSupplier = std::function<std::optional<SourcedLine>()>;

// What became of one line, for the output formatter and the summary.
struct LineOutcome {
  enum class Kind {
    called,           // its call ran and reported: `result` says how (ok, failed, cancelled)
    bad_input,        // never sent: the line itself is wrong (`message` says how)
    budget_exceeded,  // never sent: --max-cost was reached first (`message` says how)
  };
  Kind kind = Kind::called;
  const SourcedLine* line = nullptr;
  engine::CallResult result;         // kind called
  std::string message;               // the other kinds
  std::optional<std::string> route;  // the chain's route name, when the line named one
};

// Turns an outcome into its output line (without the newline) and takes it in sequence order.
class LineWriter {
 public:
  virtual ~LineWriter() = default;
  virtual void finish(std::uint64_t sequence, const LineOutcome& outcome) = 0;
  // False while the line `sequence` must wait: finished lines behind a slow one fill the window.
  virtual bool has_room(std::uint64_t sequence) const = 0;
};

struct RunOptions {
  std::size_t concurrency = 64;
  std::optional<double> max_cost_usd;  // --max-cost
  Millis grace{10'000};                // Ctrl-C: what in-flight calls get to finish
};

struct Summary {
  std::uint64_t lines = 0;  // lines written this run
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;     // sent and failed
  std::uint64_t bad_input = 0;  // never sent: the line itself is wrong
  std::uint64_t not_sent = 0;   // never sent: --max-cost was reached first
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  double cost_usd = 0;
  std::uint64_t unpriced = 0;      // answered lines whose model has no known price
  std::uint64_t rate_limited = 0;  // 429s received
  std::uint64_t failovers = 0;     // answered by another target than their chain's first
  std::map<std::string, std::uint64_t> per_target;  // answered lines per "provider/model"
  bool interrupted = false;
};

// Told after each written line, for the progress display.
using ProgressHook = std::function<void(const Summary&)>;

class Runner {
 public:
  Runner(engine::CallContext context, LineSupplier lines, LineWriter& writer, RunOptions options,
         engine::CallObserver& observer, ProgressHook progress = {});
  // Runs until every line is written or the run is interrupted; the loop is the context's
  // transport. Call once.
  Summary run();

 private:
  class LineJob;
  std::unique_ptr<engine::Job> next_job();
  void write(std::uint64_t sequence, const LineOutcome& outcome);
  void count(const LineOutcome& outcome);
  std::optional<std::string> over_budget(const engine::CallSpec& spec) const;

  engine::CallContext context_;
  LineSupplier lines_;
  LineWriter& writer_;
  RunOptions options_;
  engine::CallObserver& observer_;
  ProgressHook progress_;
  std::uint64_t next_sequence_ = 0;
  bool stopped_ = false;        // Ctrl-C: nothing more is admitted
  double in_flight_cost_ = 0;   // the estimate of the lines in flight (--max-cost)
  bool budget_spent_ = false;   // every later line is budget_exceeded
  std::string budget_message_;  // why, for each of those lines
  Summary summary_;
};

}  // namespace detour::batch
