#pragma once
// Errors that end a command. Each carries its exit code (README, "Exit codes"); main() turns them
// into "detour: error: <what>: <why>" on stderr and that exit code.
#include <stdexcept>
#include <string>

namespace detour {

enum class ExitCode : int {
  ok = 0,
  failed = 1,            // the call failed after everything allowed was tried
  usage = 2,             // bad flags, no prompt, unreadable input file
  config = 3,            // bad TOML, unknown provider/route, missing API key variable
  request_rejected = 4,  // bad request / context too long / content policy on every target
  auth = 5,              // authentication refused on every target tried
  interrupted = 130,
};

class DetourError : public std::runtime_error {
 public:
  DetourError(ExitCode code, std::string message)
      : std::runtime_error(std::move(message)), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

struct UsageError : DetourError {
  explicit UsageError(std::string message) : DetourError(ExitCode::usage, std::move(message)) {}
};

struct ConfigError : DetourError {
  explicit ConfigError(std::string message) : DetourError(ExitCode::config, std::move(message)) {}
};

}  // namespace detour
