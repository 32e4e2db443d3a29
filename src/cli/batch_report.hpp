#pragma once
// What `detour batch` tells people on stderr (README, "detour batch"): the progress counts, the
// summary at the end, and the report of a --dry-run on stdout.
#include <cstdio>

#include "batch/input_scan.hpp"
#include "batch/line_supply.hpp"
#include "batch/plan.hpp"
#include "batch/runner.hpp"
#include "io/log.hpp"
#include "io/progress.hpp"

namespace detour::cli {

io::ProgressCounts progress_counts(const batch::Summary& summary, std::uint64_t total);

// The end of every run, whatever the terminal: counts, elapsed, tokens, cost, lines per
// target. Text lines, or one JSON object with --log-format json; nothing with -q.
void report_summary(io::Logger& log, const batch::Summary& summary, Millis elapsed,
                    const batch::SupplyCounts& supplied);

// --dry-run: plans every line (the input rewound at line 1), prints the count, the estimated
// tokens and cost and the least time the known limits allow, and names the bad lines on
// stderr. Exit 0 when every line could be sent, 1 when some could not. Only the lines of
// `shard` when one is given.
int print_dry_run(batch::InputSource& input, batch::LinePlanner& planner,
                  const batch::InputScan& scan, const batch::Shard* shard, io::Logger& log,
                  std::FILE* out);

}  // namespace detour::cli
