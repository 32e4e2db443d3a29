#pragma once
// api_key_cmd (README, "Providers"): a provider's key is what a command prints -- a short-lived
// token (gcloud, az) or a password store's entry. Run without a shell when the provider is first
// used, its first line cached for the process or for api_key_ttl, run again after a 401.
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/duration.hpp"
#include "core/error.hpp"
#include "io/command.hpp"

namespace detour::config {

// Splits a command line into words the way a shell would for plain words and quotes ('...',
// "...", backslash escapes), and refuses what only a shell could do (pipes, redirections,
// variables, command substitution, ';', '&'), naming the character: such a command belongs in
// a script. Throws ConfigError.
std::vector<std::string> split_command(const std::string& command);

// Why a key could not be had from the command. Never carries its output.
struct KeyCommandError : DetourError {
  explicit KeyCommandError(std::string message)
      : DetourError(ExitCode::config, std::move(message)) {}
};

class KeyCommand {
 public:
  using Clock = std::chrono::steady_clock;
  using Runner = std::function<io::CommandResult(const std::vector<std::string>&, Millis)>;

  struct Key {
    std::string value;
    bool fresh = false;  // the command ran for this request (a 401 then means the key is bad)
  };

  static constexpr Millis kTimeout{30'000};
  // A command that just failed is not run again for this long: a batch would otherwise run a
  // broken `gcloud` once for every line of its provider.
  static constexpr Millis kFailureKept{10'000};

  KeyCommand(std::string provider, std::string command, std::optional<Millis> ttl,
             Runner runner = io::run_command, std::function<Clock::time_point()> now = Clock::now);

  // The cached key, or the command's output when there is none or it has expired. Throws
  // KeyCommandError naming the provider and the program when the command fails.
  Key get();
  // Forgets the cached key (the provider refused it) and any failure: the next get() runs the
  // command.
  void invalidate();
  // The key currently cached (for redaction), if any.
  std::optional<std::string> cached() const;
  const std::string& provider() const { return provider_; }

 private:
  std::string provider_;
  std::string command_;
  std::vector<std::string> argv_;
  std::optional<Millis> ttl_;
  Runner runner_;
  std::function<Clock::time_point()> now_;
  mutable std::mutex mutex_;  // a batch's probes and calls share one per provider
  std::optional<std::string> key_;
  Clock::time_point fetched_at_;
  std::optional<std::string> failure_;  // why the last run gave no key
  Clock::time_point failed_at_;
  [[noreturn]] void fail(std::string why, Clock::time_point now);
};

// The one KeyCommand of a provider in this process, made on first request, so that every
// target of the provider shares its key and the command runs once.
std::shared_ptr<KeyCommand> key_command_for(const std::string& provider, const std::string& command,
                                            std::optional<Millis> ttl);

}  // namespace detour::config
