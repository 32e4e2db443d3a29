#pragma once
// The runner's LineWriter over a file (README, "detour batch"): each outcome becomes its line in
// the chosen format, and the ordered writer puts the lines in input order (or not, with
// --unordered) before they reach the sink one write(2) each.
#include <functional>

#include "batch/ordered_writer.hpp"
#include "batch/output_file.hpp"
#include "batch/output_line.hpp"
#include "batch/runner.hpp"

namespace detour::batch {

class OutputWriter final : public LineWriter {
 public:
  // `now_unix_s` dates an OpenAI chat.completion (`created`).
  OutputWriter(LineSink& sink, OutputFormat format, std::size_t window, bool unordered,
               std::function<std::int64_t()> now_unix_s);

  void finish(std::uint64_t sequence, const LineOutcome& outcome) override;
  bool has_room(std::uint64_t sequence) const override { return ordered_.has_room(sequence); }

  std::uint64_t written() const { return ordered_.written(); }

 private:
  OutputFormat format_;
  std::function<std::int64_t()> now_unix_s_;
  OrderedWriter ordered_;
};

// The output line of an outcome, without its newline.
nlohmann::ordered_json outcome_line(OutputFormat format, const LineOutcome& outcome,
                                    std::int64_t created_unix_s);

}  // namespace detour::batch
