#pragma once
// Tab completion (README, "Shell completion"): the scripts in completions/ ask the binary,
// through the hidden `detour __complete WORD...`, what may come next. The answer comes from the
// command line's own CLI11 definition -- subcommands, options, the values an option's IsMember
// check allows -- and, for names, from the user's config, so nothing is listed twice.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace detour::cli {

// An option's type name (CLI11 type_name) saying what its value is, for --help and completion.
inline constexpr const char* kFileValue = "FILE";    // a path: the shell completes files
inline constexpr const char* kModelValue = "MODEL";  // -m: routes and provider/model targets
inline constexpr const char* kNameValue = "NAME";    // health/limits: also provider names

// What may come at the cursor: the shell's own file completion, or these words.
struct Completion {
  bool files = false;
  std::vector<std::string> words;
};

// Looks up names in the config for an option or positional of type kModelValue or kNameValue.
using NameLookup = std::function<std::vector<std::string>(std::string_view kind)>;

// `words` are the command line after "detour", the last being the word at the cursor (maybe
// empty). `app` is the whole command line, every subcommand with its options. Candidates start
// with the word at the cursor and come sorted, once each.
Completion complete(CLI::App& app, const std::vector<std::string>& words, const NameLookup& names);

// `detour __complete WORD...`: prints "files", or "words" and then one candidate a line.
// Never fails: a config that cannot be read just gives no names.
int run_complete(const std::vector<std::string>& words);

}  // namespace detour::cli
