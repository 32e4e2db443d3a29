#include "config/key_command.hpp"

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace detour::config {

namespace {

// A key is one line; pass(1) prints the password first and metadata after it.
std::string first_line(const std::string& output) {
  std::string line = output.substr(0, output.find('\n'));
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
    line.pop_back();
  std::size_t start = 0;
  while (start < line.size() && (line[start] == ' ' || line[start] == '\t'))
    ++start;
  return line.substr(start);
}

}  // namespace

std::vector<std::string> split_command(const std::string& command) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  enum class Quote { none, single, dbl } quote = Quote::none;
  for (std::size_t i = 0; i < command.size(); ++i) {
    const char c = command[i];
    if (quote == Quote::single) {
      if (c == '\'') {
        quote = Quote::none;
      } else {
        word += c;
      }
      continue;
    }
    if (quote == Quote::dbl) {
      if (c == '"') {
        quote = Quote::none;
      } else if (c == '\\' && i + 1 < command.size() &&
                 std::string_view("\"\\$`").find(command[i + 1]) != std::string_view::npos) {
        word += command[++i];
      } else if (c == '$' || c == '`') {
        throw ConfigError(std::string("'") + c +
                          "' inside double quotes needs a shell: api_key_cmd runs its program "
                          "directly (put the pipeline in a script and name the script)");
      } else {
        word += c;
      }
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::exchange(word, {}));
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      quote = Quote::single;
    } else if (c == '"') {
      quote = Quote::dbl;
    } else if (c == '\\' && i + 1 < command.size()) {
      word += command[++i];
    } else if (std::string_view("|&;<>()$`*?[]{}~").find(c) != std::string_view::npos) {
      throw ConfigError(std::string("'") + c +
                        "' needs a shell: api_key_cmd runs its program directly (quote it, or put "
                        "the pipeline in a script and name the script)");
    } else {
      word += c;
    }
  }
  if (quote != Quote::none) throw ConfigError("a quote is not closed");
  if (in_word) words.push_back(word);
  if (words.empty()) throw ConfigError("names no program");
  return words;
}

struct KeyCommand::Shared {
  std::string provider;
  std::vector<std::string> argv;
  std::optional<Millis> ttl;
  Runner runner;
  std::function<Clock::time_point()> now;

  mutable std::mutex mutex;
  std::condition_variable finished;
  bool running = false;
  std::optional<std::string> key;
  Clock::time_point fetched_at;        // when the run that printed `key` started
  std::optional<std::string> failure;  // why the last run gave no key
  Clock::time_point failed_at;

  // Runs the command (without the lock: it may take seconds) and records what it gave.
  void run(Clock::time_point started) {
    // The program's name, never its arguments: those may be a vault path or carry a secret.
    const std::string what = "provider " + provider + ": api_key_cmd (" + argv.front() + ")";
    const io::CommandResult result = runner(argv, kTimeout);
    std::string why;
    std::string printed_key;
    if (!result.started) {
      why = what + " could not be run: " + result.error;
    } else if (result.timed_out) {
      why = what + " did not finish within " + format_duration(kTimeout);
    } else if (result.exit_status != 0) {
      why = what + " failed" +
            (result.exit_status > 0 ? " with exit status " + std::to_string(result.exit_status)
                                    : std::string(" (killed by a signal)")) +
            "; its output is not shown, as it may hold a secret";
    } else {
      printed_key = first_line(result.output);
      if (printed_key.empty()) why = what + " printed no key on its first line";
    }
    {
      std::lock_guard lock(mutex);
      running = false;
      if (why.empty()) {
        key = std::move(printed_key);
        fetched_at = started;
      } else {
        failure = std::move(why);
        failed_at = started;
      }
    }
    finished.notify_all();
  }

  // The outcome of the run that just ended: its key, or its failure thrown.
  Key outcome() const {
    if (key) return {*key, true};
    throw KeyCommandError(failure.value_or("provider " + provider + ": api_key_cmd gave no key"));
  }
};

void KeyCommand::run_on_thread(std::function<void()> work) {
  std::thread(std::move(work)).detach();
}

KeyCommand::KeyCommand(std::string provider, std::string command, std::optional<Millis> ttl,
                       Runner runner, std::function<Clock::time_point()> now, Launcher launcher)
    : shared_(std::make_shared<Shared>()), launcher_(std::move(launcher)) {
  shared_->provider = std::move(provider);
  shared_->argv = split_command(command);
  shared_->ttl = ttl;
  shared_->runner = std::move(runner);
  shared_->now = std::move(now);
}

const std::string& KeyCommand::provider() const {
  return shared_->provider;
}

std::optional<KeyCommand::Key> KeyCommand::poll() {
  Shared& s = *shared_;
  Clock::time_point started;
  {
    std::lock_guard lock(s.mutex);
    if (s.running) return std::nullopt;
    started = s.now();
    if (s.key && (!s.ttl || started - s.fetched_at < *s.ttl)) return Key{*s.key, false};
    s.key.reset();
    if (s.failure && started - s.failed_at < kFailureKept) throw KeyCommandError(*s.failure);
    s.failure.reset();
    s.running = true;
  }
  launcher_([shared = shared_, started] { shared->run(started); });
  // An inline launcher has finished the run already.
  std::lock_guard lock(s.mutex);
  if (s.running) return std::nullopt;
  return s.outcome();
}

KeyCommand::Key KeyCommand::get() {
  if (auto key = poll()) return *key;
  Shared& s = *shared_;
  std::unique_lock lock(s.mutex);
  s.finished.wait(lock, [&] { return !s.running; });
  return s.outcome();
}

void KeyCommand::invalidate() {
  std::lock_guard lock(shared_->mutex);
  shared_->key.reset();
  shared_->failure.reset();
}

std::optional<std::string> KeyCommand::cached() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->key;
}

std::shared_ptr<KeyCommand> key_command_for(const std::string& provider, const std::string& command,
                                            std::optional<Millis> ttl) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<KeyCommand>> commands;
  std::lock_guard lock(mutex);
  auto& slot = commands[provider + '\n' + command];
  if (!slot) slot = std::make_shared<KeyCommand>(provider, command, ttl);
  return slot;
}

}  // namespace detour::config
