#pragma once
// api_key_cmd (README, "Providers"): a provider's key is what a command prints -- a short-lived
// token (gcloud, az) or a password store's entry. Run without a shell when the provider is first
// used, its first line cached for the process or for api_key_ttl, run again after a 401.
#include <chrono>
#include <functional>
#include <memory>
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
  // Where the command runs: by default a thread of its own, so that a batch's event loop goes
  // on with other providers' requests while `gcloud` takes its second or two. Tests pass
  // run_inline to decide the order themselves.
  using Launcher = std::function<void(std::function<void()>)>;
  static void run_on_thread(std::function<void()> work);
  static void run_inline(std::function<void()> work) { work(); }

  struct Key {
    std::string value;
    bool fresh = false;  // the command ran for this request (a 401 then means the key is bad)
  };

  static constexpr Millis kTimeout{30'000};
  // A command that just failed is not run again for this long: a batch would otherwise run a
  // broken `gcloud` once for every line of its provider.
  static constexpr Millis kFailureKept{10'000};

  KeyCommand(std::string provider, std::string command, std::optional<Millis> ttl,
             Runner runner = io::run_command, std::function<Clock::time_point()> now = Clock::now,
             Launcher launcher = run_on_thread);

  // Never waits: the cached key, or, when there is none or it has expired, nothing yet -- the
  // command is started (once, however many ask) and a later poll has its key. Throws
  // KeyCommandError, naming the provider and the program, while its last failure is kept.
  std::optional<Key> poll();
  // Waits for the command when it has to run (health's one-off uses, tests).
  Key get();
  // Forgets the cached key (the provider refused it) and any failure: the next poll runs the
  // command.
  void invalidate();
  // The key currently cached (for redaction), if any.
  std::optional<std::string> cached() const;
  const std::string& provider() const;

 private:
  // What the command's thread shares with this object; it outlives the object when the
  // process ends while the command runs.
  struct Shared;
  std::shared_ptr<Shared> shared_;
  Launcher launcher_;
};

// The one KeyCommand of a provider in this process, made on first request, so that every
// target of the provider shares its key and the command runs once.
std::shared_ptr<KeyCommand> key_command_for(const std::string& provider, const std::string& command,
                                            std::optional<Millis> ttl);

}  // namespace detour::config
