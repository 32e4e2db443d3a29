#include "cli/batch.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>

#include "batch/estimate.hpp"
#include "batch/input_scan.hpp"
#include "batch/line_supply.hpp"
#include "batch/output_writer.hpp"
#include "batch/resume.hpp"
#include "cli/ask_observer.hpp"
#include "cli/batch_report.hpp"
#include "cli/complete.hpp"
#include "cli/engine_setup.hpp"
#include "cli/options.hpp"
#include "core/error.hpp"
#include "io/interrupt.hpp"
#include "io/progress.hpp"

namespace detour::cli {

void add_batch_options(CLI::App& command, BatchOptions& o) {
  command.fallthrough();
  using config::Scope;
  add_setting(command, Scope::batch, "input", o.input)->required();
  add_setting(command, Scope::batch, "output", o.output);
  add_setting(command, Scope::batch, "concurrency", o.jobs)->check(CLI::Range(1, 4096));
  add_switch(command, Scope::batch, "resume", o.resume);
  add_switch(command, Scope::batch, "unordered", o.unordered);
  add_setting(command, Scope::batch, "output-format", o.output_format)
      ->check(CLI::IsMember({"detour", "openai"}));
  add_setting(command, Scope::batch, "progress", o.progress)
      ->check(CLI::IsMember({"bar", "plain", "none"}));
  add_setting(command, Scope::batch, "max-cost", o.max_cost)->check(CLI::NonNegativeNumber);
  add_switch(command, Scope::batch, "dry-run", o.dry_run);
  add_setting(command, Scope::batch, "shard", o.shard);
  add_request_options(command, o.request, Scope::batch);
}

namespace {

// How many finished lines may wait behind a slow one before admission pauses: enough that one
// slow answer does not stall a fast batch, few enough that memory stays flat.
std::size_t window_for(std::size_t concurrency) {
  return std::max<std::size_t>(1024, concurrency * 16);
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int run_batch(const GlobalOptions& global, const BatchOptions& o) {
  io::Logger log(global.log_settings());
  const auto env = config::process_env();

  // Usage errors (exit 2) before configuration errors (exit 3), and both before anything is
  // read or sent.
  if (o.resume && o.output.empty()) {
    throw UsageError("--resume needs -o FILE: it reads back what FILE holds");
  }
  std::optional<batch::Shard> shard;
  if (!o.shard.empty()) {
    std::string why;
    shard = batch::parse_shard(o.shard, why);
    if (!shard) throw UsageError("--shard " + o.shard + ": " + why);
  }
  const batch::Shard* only_shard = shard ? &*shard : nullptr;
  const auto format = batch::parse_output_format(o.output_format).value();
  const auto progress_mode = io::parse_progress_mode(o.progress).value();
  const nlohmann::json extra = parse_extra_params(o.request.params, "--option");
  std::optional<engine::SchemaValidator> schema;
  if (!o.request.schema_file.empty()) {
    schema.emplace(read_schema_file(o.request.schema_file), "--schema " + o.request.schema_file);
  }

  config::Config config = config::load_config(global.config_path, env);
  engine::CallSpec base = base_call_spec(o.request, config, extra, schema ? &*schema : nullptr);
  auto resolve = [&config, &env](const std::vector<std::string>& names) {
    config::Chain chain = config::resolve_chain(config, names, env);
    apply_min_tier(chain);
    return chain;
  };
  // -m names that resolve to nothing are the command's mistake, not a line's: exit 3 now.
  std::optional<config::Chain> default_chain;
  if (!o.request.models.empty()) default_chain = resolve(o.request.models);
  batch::LinePlanner planner(base, o.request.models, resolve);

  batch::InputSource input;
  if (std::string error = input.open(o.input); !error.empty()) throw UsageError(error);
  const batch::InputScan scan = batch::scan_input(input, only_shard);
  if (scan.duplicate) throw UsageError(o.input + ": " + batch::describe(*scan.duplicate));

  if (o.dry_run) return print_dry_run(input, planner, scan, only_shard, log, stdout);

  batch::BatchOutput output = batch::open_batch_output(
      o.output.empty() ? std::nullopt : std::optional<std::string>(o.output), o.resume);
  const batch::ResumeState* resume = o.resume ? &output.resume : nullptr;

  std::size_t concurrency = o.jobs.value_or(0);
  if (concurrency == 0) {
    concurrency = batch::default_concurrency(default_chain ? default_chain->targets
                                                           : std::vector<config::ResolvedTarget>{});
  }
  batch::OutputWriter writer(output.file, format, window_for(concurrency), o.unordered, unix_now);
  batch::SupplyCounts supplied;
  batch::RunOptions run_options;
  run_options.concurrency = concurrency;
  run_options.max_cost_usd = o.max_cost;

  EngineSetup engine = setup_engine(global, config, env, log);
  auto transport = net::make_curl_transport(global.transport_options());
  const net::Clock& clock = *engine.clock;
  AskObserver observer(log, /*print_live=*/false);
  // Approximate after a resume: the answered ids are known, not which lines hold them.
  const std::uint64_t answered = resume ? resume->answered.size() : 0;
  const std::uint64_t total = scan.requests > answered ? scan.requests - answered : 0;
  // -v's lines are the progress then; a live line between them would be torn apart.
  const bool no_live_line = progress_mode == io::ProgressMode::bar && log.verbosity() > 0;
  io::ProgressReporter progress(
      global.quiet || no_live_line ? io::ProgressMode::none : progress_mode, stderr,
      isatty(STDERR_FILENO) == 1);
  const auto started = clock.now();
  batch::Runner runner({*transport, clock, *engine.state, engine.rng},
                       batch::supply_lines(input, planner, resume, supplied, only_shard), writer,
                       run_options, observer, [&](const batch::Summary& s) {
                         progress.update(progress_counts(s, total), clock.now());
                       });
  batch::Summary summary;
  {
    io::StopLoopOnInterrupt stop_on_interrupt(*transport);
    summary = runner.run();
  }
  output.file.close();
  progress.clear();
  report_summary(log, summary, std::chrono::duration_cast<Millis>(clock.now() - started), supplied);

  if (summary.interrupted) return static_cast<int>(ExitCode::interrupted);
  return summary.ok == summary.lines ? 0 : static_cast<int>(ExitCode::failed);
}

}  // namespace detour::cli
