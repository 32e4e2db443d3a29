#pragma once
// The option table (README, "Configuration"): every setting a user can give -- a flag, a
// [defaults] key, an environment variable, or several of them -- described once, with its
// default and its help. The command line (cli/options.hpp), the config checker's [defaults]
// keys, the environment overrides and the completions (through CLI11) read it, and a test holds
// the man page to it, so a setting cannot be documented in one place and missing in another.
#include <string>
#include <string_view>
#include <vector>

#include "core/duration.hpp"

namespace detour::config {

// Defaults more than one layer needs (the config, the engine, the help text): here once.
inline constexpr Millis kDefaultTimeout{60'000};
inline constexpr Millis kDefaultDeadline{300'000};
inline constexpr int kDefaultRetries = 2;
// More retries than this is a typo or a retry storm; the deadline bounds the call anyway.
inline constexpr int kMaxRetries = 100;
inline constexpr Millis kDefaultProbeTimeout{10'000};
inline constexpr Millis kDefaultProbeSlow{5'000};

// Which command line takes the option. `request`: both ask and batch (cli/request_options.cpp).
enum class Scope { global, request, ask, batch, health, limits };
std::string_view scope_name(Scope scope);

struct Setting {
  Scope scope;
  std::string_view names;    // CLI11's: "-m,--model", "--retries", or a positional's name
  std::string_view value;    // what its value is in --help and the man page; "" for a switch
  std::string_view help;     // one line, without the default
  std::string default_text;  // "" when there is none to state
  std::string_view key;      // the [defaults] key for the same setting; "" when none
  std::string_view env;      // the environment variable for it; "" when none

  // "model" for "-m,--model"; a positional's name as it is.
  std::string_view long_name() const;
  bool positional() const { return names.front() != '-'; }
  // The help line with what the table adds: "(default 2; [defaults] retries, DETOUR_RETRIES)".
  std::string help_text() const;
};

// Every setting, grouped by scope in the order --help lists them.
const std::vector<Setting>& settings();
// The setting of that scope and long name. An unknown one throws std::logic_error: a call
// site with a typo is a bug to catch in the tests, not a user error.
const Setting& setting(Scope scope, std::string_view long_name);
// The [defaults] keys the config accepts, in table order.
const std::vector<std::string_view>& defaults_keys();

}  // namespace detour::config
