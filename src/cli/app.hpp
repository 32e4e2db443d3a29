#pragma once
#include <CLI/CLI.hpp>
#include <string_view>

#include "cli/ask.hpp"
#include "cli/batch.hpp"
#include "cli/global_options.hpp"
#include "cli/health.hpp"
#include "cli/limits.hpp"

namespace detour::cli {

// Parses the command line, runs the subcommand and returns the process exit code. Every error
// becomes "detour: error: ..." on stderr and its exit code (README, "Exit codes").
// `revision` is the git commit the binary was built from, for --version ("" when unknown).
int run(int argc, char** argv, const char* revision = "");

// What the command line fills in, and its subcommands.
struct CommandLine {
  GlobalOptions global;
  AskOptions ask_options;
  BatchOptions batch_options;
  HealthOptions health_options;
  LimitsOptions limits_options;
  CLI::App* ask = nullptr;
  CLI::App* batch = nullptr;
  CLI::App* health = nullptr;
  CLI::App* limits = nullptr;
};

// Adds the global options and the four subcommands to `app`. Every subcommand exists for the
// parser, but only `named` gets its options (each of them when `named` is empty): a one-shot
// `ask` does not build batch's thirty (tests/bench/run P1). The completer builds them all.
void build_command_line(CLI::App& app, CommandLine& line, std::string_view named);

}  // namespace detour::cli
