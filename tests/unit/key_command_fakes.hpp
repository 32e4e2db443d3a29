#pragma once
// A scripted stand-in for the program api_key_cmd runs: one result per run, the last repeated.
#include <algorithm>
#include <string>
#include <vector>

#include "config/key_command.hpp"
#include "io/command.hpp"

namespace detour::testing {

struct ScriptedCommand {
  std::vector<io::CommandResult> results;
  int runs = 0;
  std::vector<std::string> last_argv;
  config::KeyCommand::Runner runner() {
    return [this](const std::vector<std::string>& argv, Millis) {
      last_argv = argv;
      const std::size_t at = std::min(static_cast<std::size_t>(runs), results.size() - 1);
      ++runs;
      return results[at];
    };
  }
};

// What a program that ran printed (`output` as is) and its exit status.
inline io::CommandResult printed(std::string output, int status = 0) {
  io::CommandResult r;
  r.started = true;
  r.exit_status = status;
  r.output = std::move(output);
  return r;
}

}  // namespace detour::testing
