#include "batch/line_supply.hpp"

namespace detour::batch {

LineSupplier supply_lines(InputSource& input, LinePlanner& planner, const ResumeState* resume,
                          SupplyCounts& counts, const Shard* shard) {
  return [&input, &planner, resume, &counts, shard]() -> std::optional<SourcedLine> {
    InputLine line;
    while (input.next(line)) {
      std::optional<ParsedLine> parsed = parse_input_line(line, kMaxLineBytes);
      if (!parsed) continue;  // a blank line: no request, no output line
      const std::string& id =
          std::visit([](const auto& l) -> const std::string& { return l.id; }, *parsed);
      // Before the resume check: a shard's output only ever holds its own ids.
      if (shard && !shard->holds(id)) {
        ++counts.other_shards;
        continue;
      }
      if (resume && resume->answered_ok(id)) {
        ++counts.skipped_answered;
        continue;
      }
      SourcedLine out;
      if (auto* wrong = std::get_if<BadLine>(&*parsed)) {
        out.id = std::move(wrong->id);
        out.line_no = wrong->line_no;
        out.plan = std::move(wrong->message);
        out.metadata = std::move(wrong->metadata);
        return out;
      }
      auto& request = std::get<LineRequest>(*parsed);
      out.id = request.id;
      out.line_no = request.line_no;
      out.metadata = std::move(request.metadata);
      out.plan = planner.plan(request);
      return out;
    }
    return std::nullopt;
  };
}

}  // namespace detour::batch
