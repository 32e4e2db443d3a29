#pragma once
// Where the prompt of `detour ask` comes from: words, -f files, piped stdin (README, "detour ask").
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace detour::io {

struct PromptSources {
  std::vector<std::string> words;  // PROMPT... arguments
  std::vector<std::string> files;  // -f FILE, in order; "-" is stdin
};

// The outside world the prompt is read from, so the combining rules are tested without I/O.
struct PromptInput {
  bool stdin_is_tty = false;
  std::function<std::string()> read_stdin;                        // reads stdin to EOF
  std::function<std::string(const std::string& path)> read_file;  // throws UsageError
};

// Joins the words with spaces, then appends each -f file and finally piped stdin (unless it
// was read as "-f -" already), each part separated by a blank line. One trailing newline of
// a file or of stdin is dropped; empty parts add nothing. Throws UsageError when there is no
// prompt at all; never reads a terminal.
std::string assemble_prompt(const PromptSources& sources, const PromptInput& input);

// The real world: isatty(0), read(0), and files read whole (errors name the file).
PromptInput system_prompt_input();

// Reads a whole file; UsageError "<flag> <path>: <strerror>" on failure.
std::string read_file_or_usage_error(const std::string& path, const std::string& flag);

}  // namespace detour::io
