#include "cli/batch_report.hpp"

#include "batch/estimate.hpp"
#include "batch/line_supply.hpp"

namespace detour::cli {

namespace {

std::string dollars(double usd) {
  char text[32];
  std::snprintf(text, sizeof text, "$%.4f", usd);
  return text;
}

std::string per_target_text(const std::map<std::string, std::uint64_t>& lines) {
  std::string text;
  for (const auto& [target, n] : lines) {
    if (!text.empty()) text += ", ";
    text += target + " " + io::group_thousands(n);
  }
  return text.empty() ? "none" : text;
}

constexpr int kBadLinesNamed = 20;

// "$0.0000" would say the answers were free when detour only does not know their price.
std::string cost_text(const batch::Summary& s) {
  if (s.unpriced == 0) return dollars(s.cost_usd);
  const std::string no_price = " without a price ([models] input_cost, output_cost)";
  if (s.unpriced == s.ok) return "unknown: every answer came from a model" + no_price;
  return dollars(s.cost_usd) + ", not counting " + io::group_thousands(s.unpriced) +
         (s.unpriced == 1 ? " line" : " lines") + " from models" + no_price;
}

}  // namespace

io::ProgressCounts progress_counts(const batch::Summary& s, std::uint64_t total) {
  io::ProgressCounts c;
  c.total = total;
  c.done = s.lines;
  c.ok = s.ok;
  c.failed = s.lines - s.ok;
  c.rate_limited = s.rate_limited;
  c.failovers = s.failovers;
  return c;
}

void report_summary(io::Logger& log, const batch::Summary& s, Millis elapsed,
                    const batch::SupplyCounts& supplied) {
  const std::uint64_t skipped_answered = supplied.skipped_answered;
  nlohmann::json fields = {
      {"lines", s.lines},
      {"ok", s.ok},
      {"failed", s.failed},
      {"bad_input", s.bad_input},
      {"budget_exceeded", s.not_sent},
      {"already_answered", skipped_answered},
      {"other_shards", supplied.other_shards},
      {"elapsed_ms", elapsed.count()},
      {"input_tokens", s.input_tokens},
      {"output_tokens", s.output_tokens},
      {"cost_usd", s.unpriced == s.ok && s.ok > 0 ? nlohmann::json() : nlohmann::json(s.cost_usd)},
      {"unpriced_lines", s.unpriced},
      {"rate_limited", s.rate_limited},
      {"failovers", s.failovers},
      {"per_target", s.per_target},
      {"interrupted", s.interrupted},
  };
  std::string text = "batch: " + io::group_thousands(s.lines) +
                     (s.lines == 1 ? " line in " : " lines in ") + format_duration(elapsed) + ": " +
                     io::group_thousands(s.ok) + " ok, " + io::group_thousands(s.failed) +
                     " failed, " + io::group_thousands(s.bad_input) + " bad input";
  if (s.not_sent > 0) text += ", " + io::group_thousands(s.not_sent) + " over --max-cost";
  if (skipped_answered > 0) {
    text += "; " + io::group_thousands(skipped_answered) + " already answered";
  }
  if (supplied.other_shards > 0) {
    text += "; " + io::group_thousands(supplied.other_shards) + " in other shards";
  }
  if (s.interrupted) text += " (interrupted: --resume completes it)";
  text += "\nbatch: tokens " + io::group_thousands(static_cast<std::uint64_t>(s.input_tokens)) +
          " in, " + io::group_thousands(static_cast<std::uint64_t>(s.output_tokens)) +
          " out; cost " + cost_text(s) + "; 429s " + io::group_thousands(s.rate_limited) +
          "; failovers " + io::group_thousands(s.failovers);
  text += "\nbatch: answered by " + per_target_text(s.per_target);
  log.summary(text, std::move(fields));
}

int print_dry_run(batch::InputSource& input, batch::LinePlanner& planner,
                  const batch::InputScan& scan, const batch::Shard* shard, io::Logger& log,
                  std::FILE* out) {
  batch::Estimator estimator;
  batch::SupplyCounts counts;
  auto lines = batch::supply_lines(input, planner, nullptr, counts, shard);
  int named = 0;
  while (auto line = lines()) {
    if (auto* why = std::get_if<std::string>(&line->plan)) {
      estimator.add_bad();
      if (named++ < kBadLinesNamed) log.error(*why);
      continue;
    }
    estimator.add(std::get<batch::PlannedCall>(line->plan).spec);
  }
  const batch::Estimate e = estimator.finish();
  if (named > kBadLinesNamed) {
    log.error("and " + std::to_string(named - kBadLinesNamed) + " more bad lines");
  }
  std::fprintf(out, "lines: %s (%s to send, %s bad) of %s in the file\n",
               io::group_thousands(e.lines + e.bad_lines).c_str(),
               io::group_thousands(e.lines).c_str(), io::group_thousands(e.bad_lines).c_str(),
               io::group_thousands(scan.lines).c_str());
  std::fprintf(out, "estimated tokens: %s (input estimate plus max_tokens)\n",
               io::group_thousands(static_cast<std::uint64_t>(e.tokens)).c_str());
  std::string cost = dollars(e.cost_usd) + " at most";
  if (e.unpriced_lines > 0) {
    cost += ", not counting " + io::group_thousands(e.unpriced_lines) +
            " lines whose model has no known price (config or catalog)";
  }
  std::fprintf(out, "estimated cost: %s\n", cost.c_str());
  std::fprintf(out, "minimum time: %s\n",
               e.minimum_time ? format_duration(*e.minimum_time).c_str()
                              : "unknown (no rpm or tpm limit known for these targets)");
  std::fprintf(out, "lines per target: %s\n", per_target_text(e.lines_per_target).c_str());
  std::fflush(out);
  return e.bad_lines == 0 ? 0 : 1;
}

}  // namespace detour::cli
