#pragma once

namespace detour::cli {

// Parses the command line, runs the subcommand and returns the process exit code. Every error
// becomes "detour: error: ..." on stderr and its exit code (README, "Exit codes").
int run(int argc, char** argv);

}  // namespace detour::cli
