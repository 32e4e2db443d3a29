#pragma once

namespace detour::cli {

// Parses the command line, runs the subcommand and returns the process exit code. Every error
// becomes "detour: error: ..." on stderr and its exit code (README, "Exit codes").
// `revision` is the git commit the binary was built from, for --version ("" when unknown).
int run(int argc, char** argv, const char* revision = "");

}  // namespace detour::cli
