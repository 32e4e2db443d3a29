#pragma once
// Helpers shared by the config unit tests: a fake environment and error capture.
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/error.hpp"

namespace detour::config::testing {

using Env = std::map<std::string, std::string>;

inline EnvLookup lookup(Env env) {
  return [env = std::move(env)](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

inline Config parse(std::string_view text, const Env& env = {}) {
  return parse_config(text, "config.toml", lookup(env));
}

// The message of the ConfigError that running f throws, or a marker that fails any check.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no ConfigError thrown>";
}

// Secrets in the test environment; no message may ever contain them.
inline const Env kKeys = {{"OPENAI_API_KEY", "sk-SECRET-openai"},
                          {"ANTHROPIC_API_KEY", "sk-SECRET-anthropic"},
                          {"OPENROUTER_API_KEY", "sk-SECRET-openrouter"}};

}  // namespace detour::config::testing
