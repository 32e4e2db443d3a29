#pragma once
// stderr lines for people (-v, -q, --log-format, colour rules: README, "Global options").
#include <cstdio>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace detour::io {

enum class LogFormat { text, json };

struct LogSettings {
  int verbosity = 0;  // -v count; -q makes it -1
  LogFormat format = LogFormat::text;
  bool color = false;
};

// Colour only on a terminal, never with NO_COLOR, TERM=dumb or --no-color.
bool stderr_wants_color(bool no_color_flag);
// The same rule for any file descriptor (stdout for tables).
bool wants_color(int fd, bool no_color_flag);

class Logger {
 public:
  explicit Logger(LogSettings settings, std::FILE* out = stderr) : settings_(settings), out_(out) {}

  // level: 1 = -v, 2 = -vv, 3 = -vvv. `fields` go into JSON lines as they are.
  void verbose(int level, std::string_view message,
               nlohmann::json fields = nlohmann::json::object());
  void warning(std::string_view message, nlohmann::json fields = nlohmann::json::object());
  void error(std::string_view message, nlohmann::json fields = nlohmann::json::object());
  // A report shown unless -q (a batch's summary): each line of `text` as its own stderr line,
  // or with --log-format json one object holding `fields`.
  void summary(std::string_view text, nlohmann::json fields);

  int verbosity() const { return settings_.verbosity; }

 private:
  void write(std::string_view level, std::string_view message, nlohmann::json fields);
  LogSettings settings_;
  std::FILE* out_;
};

}  // namespace detour::io
