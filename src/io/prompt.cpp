#include "io/prompt.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace detour::io {

namespace {

void drop_one_trailing_newline(std::string& text) {
  if (!text.empty() && text.back() == '\n') {
    text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
  }
}

void append_part(std::string& prompt, std::string part) {
  if (part.empty()) return;
  if (!prompt.empty()) prompt += "\n\n";
  prompt += part;
}

}  // namespace

std::string assemble_prompt(const PromptSources& sources, const PromptInput& input) {
  std::string prompt;
  std::string words;
  for (const auto& word : sources.words) {
    if (!words.empty()) words += ' ';
    words += word;
  }
  append_part(prompt, std::move(words));

  bool stdin_used = false;
  for (const auto& path : sources.files) {
    std::string text;
    if (path == "-") {
      if (stdin_used) continue;  // stdin can only be read once; a second "-f -" adds nothing
      stdin_used = true;
      if (input.stdin_is_tty) throw UsageError("-f -: stdin is a terminal, not a file or pipe");
      text = input.read_stdin();
    } else {
      text = input.read_file(path);
    }
    drop_one_trailing_newline(text);
    append_part(prompt, std::move(text));
  }

  if (!stdin_used && !input.stdin_is_tty) {
    std::string text = input.read_stdin();
    drop_one_trailing_newline(text);
    append_part(prompt, std::move(text));
  }

  if (prompt.empty()) {
    throw UsageError("no prompt: give it as arguments, with -f FILE, or on stdin");
  }
  return prompt;
}

std::string read_file_or_usage_error(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(flag + " " + path + ": " + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw UsageError(flag + " " + path + ": read failed");
  return buffer.str();
}

PromptInput system_prompt_input() {
  PromptInput input;
  input.stdin_is_tty = isatty(STDIN_FILENO) == 1;
  input.read_stdin = [] {
    std::string text;
    char buffer[65536];
    for (;;) {
      ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
      if (n > 0) {
        text.append(buffer, static_cast<size_t>(n));
      } else if (n == 0) {
        break;
      } else if (errno != EINTR) {
        // stdin closed or not readable (e.g. started with <&-): it adds nothing.
        break;
      }
    }
    return text;
  };
  input.read_file = [](const std::string& path) { return read_file_or_usage_error(path, "-f"); };
  return input;
}

}  // namespace detour::io
