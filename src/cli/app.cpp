#include "cli/app.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string_view>

#include "cli/complete.hpp"
#include "cli/options.hpp"
#include "core/error.hpp"
#include "io/log.hpp"

namespace detour::cli {

io::LogSettings GlobalOptions::log_settings() const {
  io::LogSettings settings;
  settings.verbosity = quiet ? -1 : verbose;
  settings.format = log_format == "json" ? io::LogFormat::json : io::LogFormat::text;
  settings.color = settings.format == io::LogFormat::text && io::stderr_wants_color(no_color);
  return settings;
}

namespace {

void add_global_options(CLI::App& app, GlobalOptions& global) {
  using config::Scope;
  add_setting(app, Scope::global, "config", global.config_path);
  add_setting(app, Scope::global, "state", global.state);
  add_switch(app, Scope::global, "verbose", global.verbose);
  add_switch(app, Scope::global, "quiet", global.quiet);
  add_setting(app, Scope::global, "log-format", global.log_format)
      ->check(CLI::IsMember({"text", "json"}));
  add_switch(app, Scope::global, "no-color", global.no_color);
}

// The subcommand argv names: its first word that is neither an option nor a global option's
// value. Empty when there is none (`detour --help`, a typo), and then every subcommand gets its
// options.
std::string_view named_command(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") return {};
    if (arg == "-c" || arg == "--config" || arg == "--state" || arg == "--log-format") {
      ++i;  // its value
      continue;
    }
    if (!arg.empty() && arg.front() == '-') continue;
    return arg;
  }
  return {};
}

void print_error(const std::string& message) {
  std::fprintf(stderr, "detour: error: %s\n", message.c_str());
}

}  // namespace

void build_command_line(CLI::App& app, CommandLine& line, std::string_view named) {
  add_global_options(app, line.global);
  auto command = [&](const char* name, const char* about, auto add_options, auto& options) {
    CLI::App* sub = app.add_subcommand(name, about);
    if (named.empty() || named == name) add_options(*sub, options);
    return sub;
  };
  line.ask = command("ask", "One prompt, one answer", add_ask_options, line.ask_options);
  line.batch = command("batch", "A JSONL file of requests, one answer line each", add_batch_options,
                       line.batch_options);
  line.health = command("health", "Probe providers and targets, for people and CI",
                        add_health_options, line.health_options);
  line.limits = command("limits", "What the engine knows now: limits, circuits, latency",
                        add_limits_options, line.limits_options);
}

int run(int argc, char** argv, const char* revision) {
  // The completion scripts' question (complete.hpp); not a subcommand users see.
  if (argc >= 2 && std::string_view(argv[1]) == "__complete") {
    return run_complete(std::vector<std::string>(argv + 2, argv + argc));
  }
  CLI::App app{
      "detour: answers from LLM APIs that are rate limited, overloaded, slow, down or wrong"};
  app.name("detour");
  // "detour 0.1.0 (git 1a2b3c4d5e6f)": which release, and which commit it was built from.
  std::string version = std::string("detour ") + DETOUR_VERSION;
  if (revision != nullptr && *revision != '\0') version += std::string(" (git ") + revision + ")";
  app.set_version_flag("--version", version);
  app.require_subcommand(1);
  app.fallthrough();

  CommandLine line;
  build_command_line(app, line, named_command(argc, argv));
  const GlobalOptions& global = line.global;

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(std::string(e.what()) + " (see detour --help)");
    return static_cast<int>(ExitCode::usage);
  }

  try {
    if (line.ask->parsed()) return run_ask(global, line.ask_options);
    if (line.batch->parsed()) return run_batch(global, line.batch_options);
    if (line.health->parsed()) return run_health(global, line.health_options);
    if (line.limits->parsed()) return run_limits(global, line.limits_options);
  } catch (const DetourError& e) {
    // The global options are parsed by now: the error follows --log-format like every line.
    io::Logger(global.log_settings()).error(e.what());
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    // A bug, not a user error: say so rather than pretend it was the user's input.
    io::Logger(global.log_settings()).error(std::string("internal error: ") + e.what());
    return static_cast<int>(ExitCode::failed);
  }
  return static_cast<int>(ExitCode::usage);
}

}  // namespace detour::cli
