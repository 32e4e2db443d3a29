#include "batch/output_writer.hpp"

namespace detour::batch {

nlohmann::ordered_json outcome_line(OutputFormat format, const LineOutcome& outcome,
                                    std::int64_t created_unix_s) {
  LineContext context;
  context.id = outcome.line->id;
  context.metadata = outcome.line->metadata;
  context.route = outcome.route;
  switch (outcome.kind) {
    case LineOutcome::Kind::called:
      return result_line(format, context, outcome.result, created_unix_s);
    case LineOutcome::Kind::bad_input:  // the message already names the line
      return not_sent_line(format, context, kBadInput, outcome.message);
    case LineOutcome::Kind::budget_exceeded:
      break;
  }
  return not_sent_line(format, context, kBudgetExceeded, outcome.message);
}

OutputWriter::OutputWriter(LineSink& sink, OutputFormat format, std::size_t window, bool unordered,
                           std::function<std::int64_t()> now_unix_s)
    : format_(format), now_unix_s_(std::move(now_unix_s)), ordered_(sink, window, unordered) {}

void OutputWriter::finish(std::uint64_t sequence, const LineOutcome& outcome) {
  ordered_.finish(sequence, to_line(outcome_line(format_, outcome, now_unix_s_())));
}

}  // namespace detour::batch
