#pragma once
// Runs a program without a shell and captures what it writes to stdout (api_key_cmd: README,
// "Providers"). Its stderr is the user's terminal, as for any program they run; its stdout
// never is, since it holds a secret.
#include <string>
#include <vector>

#include "core/duration.hpp"

namespace detour::io {

struct CommandResult {
  bool started = false;  // false: the program could not be run at all (see `error`)
  int exit_status = -1;  // the program's exit status; -1 when killed by a signal or timed out
  bool timed_out = false;
  std::string output;  // stdout, up to a limit
  std::string error;   // why it could not be started or waited for
};

// argv[0] is looked up in PATH. Stdin is /dev/null. Killed after `timeout`.
CommandResult run_command(const std::vector<std::string>& argv, Millis timeout);

}  // namespace detour::io
