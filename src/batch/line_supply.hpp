#pragma once
// The runner's lines, read from the input one at a time (README, "detour batch"): blank lines
// skipped, over-long and malformed ones turned into bad_input, ids a --resume already has
// answered left out, and the rest planned into calls.
#include <cstdint>

#include "batch/line_reader.hpp"
#include "batch/plan.hpp"
#include "batch/resume.hpp"
#include "batch/runner.hpp"
#include "batch/shard.hpp"

namespace detour::batch {

struct SupplyCounts {
  std::uint64_t skipped_answered = 0;  // lines left out: --resume found them answered
  std::uint64_t other_shards = 0;      // lines left out: another shard's (--shard)
};

// Reads `input` from where it is (the start of a pass). `resume` may be null (a fresh run),
// and `shard` (all lines); `counts` is updated as lines are read. All must outlive the
// supplier.
LineSupplier supply_lines(InputSource& input, LinePlanner& planner, const ResumeState* resume,
                          SupplyCounts& counts, const Shard* shard = nullptr);

}  // namespace detour::batch
