#include "io/log.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace detour::io {

bool wants_color(int fd, bool no_color_flag) {
  if (no_color_flag) return false;
  if (const char* no_color = std::getenv("NO_COLOR"); no_color && *no_color) return false;
  if (const char* term = std::getenv("TERM"); term && std::strcmp(term, "dumb") == 0) return false;
  return isatty(fd) == 1;
}

bool stderr_wants_color(bool no_color_flag) {
  return wants_color(STDERR_FILENO, no_color_flag);
}

void Logger::verbose(int level, std::string_view message, nlohmann::json fields) {
  if (settings_.verbosity >= level) write("info", message, std::move(fields));
}

void Logger::warning(std::string_view message, nlohmann::json fields) {
  if (settings_.verbosity >= 0) write("warning", message, std::move(fields));
}

void Logger::error(std::string_view message, nlohmann::json fields) {
  write("error", message, std::move(fields));
}

void Logger::summary(std::string_view text, nlohmann::json fields) {
  if (settings_.verbosity < 0) return;
  if (settings_.format == LogFormat::json) {
    const auto first_line = text.substr(0, text.find('\n'));
    write("info", first_line, std::move(fields));
    return;
  }
  while (!text.empty()) {
    const auto end = text.find('\n');
    write("info", text.substr(0, end), nlohmann::json::object());
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

void Logger::write(std::string_view level, std::string_view message, nlohmann::json fields) {
  std::string line;
  if (settings_.format == LogFormat::json) {
    nlohmann::json object = std::move(fields);
    object["level"] = level;
    object["message"] = message;
    line = object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    const bool emphasise = settings_.color && level != "info";
    const char* colour = level == "error" ? "\033[31m" : "\033[33m";
    line = "detour: ";
    if (level != "info") {
      if (emphasise) line += colour;
      line += std::string(level) + ":";
      if (emphasise) line += "\033[0m";
      line += " ";
    }
    line += message;
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace detour::io
