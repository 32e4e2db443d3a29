#include "cli/complete.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>

#include "cli/app.hpp"
#include "config/config.hpp"

namespace detour::cli {

namespace {

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool is_option_word(std::string_view word) {
  return word.size() > 1 && word.front() == '-';
}

// The option `word` names ("--progress", "-m", "--progress=bar"), in `app`; null when none.
CLI::Option* find_option(CLI::App& app, std::string_view word) {
  const std::string_view name = word.substr(0, word.find('='));
  for (CLI::Option* option : app.get_options()) {
    if (starts_with(name, "--")) {
      for (const std::string& long_name : option->get_lnames()) {
        if (name.substr(2) == long_name) return option;
      }
    } else {
      for (const std::string& short_name : option->get_snames()) {
        if (name.substr(1) == short_name) return option;
      }
    }
  }
  return nullptr;
}

bool takes_value(const CLI::Option& option) {
  return option.get_items_expected_max() != 0;
}

// The values a CLI::IsMember check allows, which CLI11 describes as "{a,b,c}".
std::vector<std::string> allowed_values(CLI::Option& option) {
  std::vector<std::string> values;
  for (int i = 0;; ++i) {
    const CLI::Validator* validator = nullptr;
    try {
      validator = option.get_validator(i);
    } catch (const CLI::OptionNotFound&) {
      break;
    }
    const std::string text = validator->get_description();
    if (text.size() < 2 || text.front() != '{' || text.back() != '}') continue;
    std::string_view list = std::string_view(text).substr(1, text.size() - 2);
    while (!list.empty()) {
      const std::size_t comma = list.find(',');
      values.emplace_back(list.substr(0, comma));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  return values;
}

Completion words_from(std::vector<std::string> candidates, std::string_view at_cursor) {
  Completion out;
  for (std::string& word : candidates) {
    if (starts_with(word, at_cursor)) out.words.push_back(std::move(word));
  }
  std::sort(out.words.begin(), out.words.end());
  out.words.erase(std::unique(out.words.begin(), out.words.end()), out.words.end());
  return out;
}

// What an option's or a positional's value may be.
Completion value_of(CLI::Option& option, std::string_view at_cursor, const NameLookup& names) {
  const std::string kind = option.get_type_name();
  if (kind == kFileValue) return Completion{true, {}};
  if (kind == kModelValue || kind == kNameValue) return words_from(names(kind), at_cursor);
  return words_from(allowed_values(option), at_cursor);
}

void add_option_names(CLI::App& app, std::vector<std::string>& out) {
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_lnames())
      out.push_back("--" + name);
    for (const std::string& name : option->get_snames())
      out.push_back("-" + name);
  }
}

// The positional that the next positional word fills, after `filled` of them.
CLI::Option* positional_after(CLI::App& app, std::size_t filled) {
  for (CLI::Option* option : app.get_options()) {
    if (option->nonpositional()) continue;
    const auto takes = static_cast<std::size_t>(std::max(option->get_items_expected_max(), 1));
    if (filled < takes) return option;
    filled -= takes;
  }
  return nullptr;
}

// The -c/--config the words name, if any.
std::optional<std::string> config_in(const std::vector<std::string>& words) {
  for (std::size_t i = 0; i + 1 < words.size(); ++i) {
    if (words[i] == "-c" || words[i] == "--config") {
      if (i + 2 < words.size()) return words[i + 1];  // not the word being completed
    } else if (starts_with(words[i], "--config=")) {
      return words[i].substr(9);
    }
  }
  return std::nullopt;
}

}  // namespace

Completion complete(CLI::App& app, const std::vector<std::string>& words, const NameLookup& names) {
  const std::string at_cursor = words.empty() ? std::string() : words.back();
  CLI::App* command = nullptr;
  CLI::Option* awaiting = nullptr;  // an option whose value is the next word
  std::size_t positionals = 0;
  bool options_ended = false;  // after "--"
  for (std::size_t i = 0; i + 1 < words.size(); ++i) {
    const std::string& word = words[i];
    if (awaiting) {
      awaiting = nullptr;
      continue;
    }
    if (!options_ended && word == "--") {
      options_ended = true;
      continue;
    }
    if (!options_ended && is_option_word(word)) {
      CLI::Option* option = command ? find_option(*command, word) : nullptr;
      if (!option) option = find_option(app, word);
      if (option && takes_value(*option) && word.find('=') == std::string::npos) {
        awaiting = option;
      }
      continue;
    }
    if (!command) {
      for (CLI::App* sub : app.get_subcommands({})) {
        if (sub->get_name() == word) command = sub;
      }
      if (command) continue;
    }
    ++positionals;
  }
  if (awaiting) return value_of(*awaiting, at_cursor, names);

  if (!options_ended && starts_with(at_cursor, "-")) {
    std::vector<std::string> candidates;
    add_option_names(app, candidates);
    if (command) add_option_names(*command, candidates);
    return words_from(std::move(candidates), at_cursor);
  }
  if (!command) {
    std::vector<std::string> candidates;
    for (const CLI::App* sub : app.get_subcommands({}))
      candidates.push_back(sub->get_name());
    return words_from(std::move(candidates), at_cursor);
  }
  if (CLI::Option* positional = positional_after(*command, positionals)) {
    return value_of(*positional, at_cursor, names);
  }
  return {};
}

int run_complete(const std::vector<std::string>& words) {
  CLI::App app{"detour"};
  CommandLine line;
  build_command_line(app, line, "");
  // The names come from the config the command line would use; a config that cannot be read
  // (not written yet, half edited) gives none rather than an error in the middle of a prompt.
  const auto names = [&words](std::string_view kind) {
    std::vector<std::string> out;
    try {
      const auto env = config::process_env();
      const config::Config config = config::load_config(config_in(words), env);
      for (const auto& [name, route] : config.routes)
        out.push_back(name);
      for (std::string& target : config::known_targets(config))
        out.push_back(std::move(target));
      if (kind == kNameValue) {
        for (const auto& [name, provider] : config.providers)
          out.push_back(name);
      }
    } catch (const std::exception&) {
      out.clear();
    }
    return out;
  };
  const Completion completion = complete(app, words, names);
  if (completion.files) {
    std::puts("files");
  } else {
    std::puts("words");
    for (const std::string& word : completion.words)
      std::puts(word.c_str());
  }
  return 0;
}

}  // namespace detour::cli
