#pragma once
// Options on the command line from the option table (config/settings.hpp, README
// "Configuration"): names, help, default and value name come from there, so --help, the
// completions and the man page agree with the config keys and environment variables.
#include <CLI/CLI.hpp>
#include <string>
#include <string_view>

#include "config/settings.hpp"

namespace detour::cli {

// An option with a value (or a positional).
template <typename T>
CLI::Option* add_setting(CLI::App& app, config::Scope scope, std::string_view name, T& into) {
  const config::Setting& s = config::setting(scope, name);
  CLI::Option* option = app.add_option(std::string(s.names), into, s.help_text());
  if (!s.value.empty()) option->type_name(std::string(s.value));
  return option;
}

// A switch (--json), or one counted when `into` is a number (-v).
template <typename T>
CLI::Option* add_switch(CLI::App& app, config::Scope scope, std::string_view name, T& into) {
  const config::Setting& s = config::setting(scope, name);
  return app.add_flag(std::string(s.names), into, s.help_text());
}

}  // namespace detour::cli
