#include "config/key_command.hpp"

#include <map>

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

KeyCommand::KeyCommand(std::string provider, std::string command, std::optional<Millis> ttl,
                       Runner runner, std::function<Clock::time_point()> now)
    : provider_(std::move(provider)),
      command_(std::move(command)),
      argv_(split_command(command_)),
      ttl_(ttl),
      runner_(std::move(runner)),
      now_(std::move(now)) {}

void KeyCommand::fail(std::string why, Clock::time_point now) {
  failure_ = why;
  failed_at_ = now;
  throw KeyCommandError(std::move(why));
}

KeyCommand::Key KeyCommand::get() {
  std::lock_guard lock(mutex_);
  const auto now = now_();
  if (key_ && (!ttl_ || now - fetched_at_ < *ttl_)) return {*key_, false};
  key_.reset();
  if (failure_ && now - failed_at_ < kFailureKept) throw KeyCommandError(*failure_);
  failure_.reset();
  // The program's name, never its arguments: those may be a vault path or carry a secret.
  const std::string what = "provider " + provider_ + ": api_key_cmd (" + argv_.front() + ")";
  const io::CommandResult result = runner_(argv_, kTimeout);
  if (!result.started) fail(what + " could not be run: " + result.error, now);
  if (result.timed_out) fail(what + " did not finish within " + format_duration(kTimeout), now);
  if (result.exit_status != 0) {
    fail(what + " failed" +
             (result.exit_status > 0 ? " with exit status " + std::to_string(result.exit_status)
                                     : std::string(" (killed by a signal)")) +
             "; its output is not shown, as it may hold a secret",
         now);
  }
  std::string key = first_line(result.output);
  if (key.empty()) fail(what + " printed no key on its first line", now);
  key_ = key;
  fetched_at_ = now;
  return {std::move(key), true};
}

void KeyCommand::invalidate() {
  std::lock_guard lock(mutex_);
  key_.reset();
  failure_.reset();
}

std::optional<std::string> KeyCommand::cached() const {
  std::lock_guard lock(mutex_);
  return key_;
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
