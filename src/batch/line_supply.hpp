#pragma once
// The runner's lines, read from the input one at a time (README, "detour batch"): blank lines
// skipped, over-long and malformed ones turned into bad_input, ids a --resume already has
// answered left out, and the rest planned into calls.
#include <cstdint>

#include "batch/line_reader.hpp"
#include "batch/plan.hpp"
#include "batch/resume.hpp"
#include "batch/runner.hpp"

namespace detour::batch {

struct SupplyCounts {
  std::uint64_t skipped_answered = 0;  // lines left out: --resume found them answered
};

// Reads `input` from where it is (the start of a pass). `resume` may be null (a fresh run);
// `counts` is updated as lines are read. All three must outlive the supplier.
LineSupplier supply_lines(InputSource& input, LinePlanner& planner, const ResumeState* resume,
                          SupplyCounts& counts);

}  // namespace detour::batch
