// The option table (config/settings.hpp, README "Configuration") against every place a setting
// shows up: the command line CLI11 builds, the config checker's [defaults] keys, the
// environment overrides, and the man page. A flag, key or variable documented in one place and
// missing in another fails here.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "cli/app.hpp"
#include "config/config.hpp"
#include "config/internal.hpp"
#include "config/settings.hpp"
#include "core/error.hpp"

using namespace detour;
using config::Scope;
using config::Setting;

namespace {

// Every option of the real command line, as "scope name" ("ask --json", "global -c"), with
// ask's and batch's shared options under "ask and batch" as the table keeps them.
std::set<std::string> command_line_options() {
  CLI::App app;
  cli::CommandLine line;
  cli::build_command_line(app, line, "");
  std::map<std::string, std::set<std::string>> by_command;
  auto names_of = [](const CLI::Option* option) {
    std::vector<std::string> names = option->get_snames();
    for (auto& n : names)
      n = "-" + n;
    for (const auto& n : option->get_lnames())
      names.push_back("--" + n);
    if (names.empty()) names.push_back(option->get_name());
    std::string joined;
    for (const auto& n : names)
      joined += (joined.empty() ? "" : ",") + n;
    return joined;
  };
  for (const CLI::Option* option : app.get_options()) {
    const std::string name = names_of(option);
    if (name == "-h,--help" || name == "--version") continue;  // CLI11's own
    by_command["global"].insert(name);
  }
  for (const CLI::App* sub : app.get_subcommands({})) {
    for (const CLI::Option* option : sub->get_options()) {
      const std::string name = names_of(option);
      if (name == "-h,--help") continue;
      by_command[sub->get_name()].insert(name);
    }
  }
  std::set<std::string> out;
  for (const auto& name : by_command["ask"]) {
    const bool shared = by_command["batch"].count(name) > 0;
    out.insert(std::string(shared ? "ask and batch" : "ask") + " " + name);
  }
  for (const auto& name : by_command["batch"]) {
    if (!by_command["ask"].count(name)) out.insert("batch " + name);
  }
  for (const char* command : {"global", "health", "limits"}) {
    for (const auto& name : by_command[command])
      out.insert(std::string(command) + " " + name);
  }
  return out;
}

std::string table_name(const Setting& s) {
  return std::string(s.names);
}

std::string man_page_text() {
  std::ifstream in(std::string(DETOUR_SOURCE_DIR) + "/man/detour.1");
  std::stringstream text;
  text << in.rdbuf();
  // What a reader sees: roff's escaped hyphens and font changes removed.
  std::string out;
  const std::string raw = text.str();
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\\' && i + 1 < raw.size()) {
      const char next = raw[i + 1];
      if (next == '-' || next == '\\') {
        out += next;
        ++i;
        continue;
      }
      if (next == 'f' && i + 2 < raw.size()) {
        i += 2;  // \fB, \fR, \fI, \fP
        continue;
      }
      if (next == '&') {
        ++i;
        continue;
      }
    }
    out += raw[i];
  }
  return out;
}

}  // namespace

TEST_CASE("option table: every option on the command line is in the table, and back", "[options]") {
  const std::set<std::string> on_command_line = command_line_options();
  std::set<std::string> in_table;
  for (const Setting& s : config::settings()) {
    std::string name = table_name(s);
    in_table.insert(std::string(config::scope_name(s.scope)) + " " + name);
  }
  for (const auto& option : on_command_line) {
    INFO("on the command line but not in config/settings.cpp: " << option);
    CHECK(in_table.count(option) == 1);
  }
  for (const auto& option : in_table) {
    INFO("in config/settings.cpp but not on the command line: " << option);
    CHECK(on_command_line.count(option) == 1);
  }
}

TEST_CASE("option table: every [defaults] key is read from the file and refused when wrong",
          "[options][config]") {
  auto no_env = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  for (std::string_view key : config::defaults_keys()) {
    INFO(key);
    // A table where a number or a string is expected: the error names the key.
    const std::string text = "[defaults]\n" + std::string(key) + " = [1]\n";
    try {
      (void)config::parse_config(text, "c.toml", no_env);
      FAIL("accepted a list for defaults." << key);
    } catch (const ConfigError& e) {
      CHECK_THAT(e.what(), Catch::Contains("defaults." + std::string(key)));
    }
  }
  // And what is not in the table is not a [defaults] key.
  CHECK_THROWS_WITH(config::parse_config("[defaults]\nretry = 3\n", "c.toml", no_env),
                    Catch::Contains("retry"));
}

TEST_CASE("option table: every environment variable of a [defaults] setting overrides it",
          "[options][config]") {
  const std::map<std::string_view, std::string> good = {{"model", "openai/gpt-4o"},
                                                        {"timeout", "7s"},
                                                        {"deadline", "9m"},
                                                        {"retries", "5"},
                                                        {"state", "memory"}};
  int checked = 0;
  for (const Setting& s : config::settings()) {
    if (s.env.empty() || s.key.empty()) continue;
    INFO(s.env);
    REQUIRE(good.count(s.key) == 1);  // a new variable needs a row here
    const std::string value = good.at(s.key);
    auto env = [&](std::string_view name) -> std::optional<std::string> {
      if (name == s.env) return value;
      return std::nullopt;
    };
    const config::Config c = config::parse_config("", "c.toml", env);
    const config::Defaults& d = c.defaults;
    if (s.key == "model") CHECK(d.model == value);
    if (s.key == "timeout") CHECK(d.timeout == Millis(7'000));
    if (s.key == "deadline") CHECK(d.deadline == Millis(540'000));
    if (s.key == "retries") CHECK(d.retries == 5);
    if (s.key == "state") CHECK(d.state == value);
    ++checked;
  }
  CHECK(checked == 5);
}

TEST_CASE("option table: defaults are stated once and the code uses them", "[options]") {
  CHECK(config::setting(Scope::request, "retries").default_text ==
        std::to_string(config::Defaults{}.retries));
  CHECK(config::setting(Scope::request, "timeout").default_text ==
        format_duration(config::Defaults{}.timeout));
  CHECK(config::setting(Scope::request, "deadline").default_text ==
        format_duration(config::Defaults{}.deadline));
  CHECK(config::setting(Scope::health, "probe").default_text == cli::HealthOptions{}.probe);
  CHECK(config::setting(Scope::health, "fail-on").default_text == cli::HealthOptions{}.fail_on);
  CHECK(config::setting(Scope::batch, "output-format").default_text ==
        cli::BatchOptions{}.output_format);
  CHECK(config::setting(Scope::batch, "progress").default_text == cli::BatchOptions{}.progress);
  CHECK(config::setting(Scope::global, "log-format").default_text ==
        cli::GlobalOptions{}.log_format);
  CHECK(config::setting(Scope::request, "retries").help_text() ==
        "Retries per target for transient errors (default 2; [defaults] retries; "
        "$DETOUR_RETRIES)");
  CHECK_THROWS_AS(config::setting(Scope::ask, "no-such-flag"), std::logic_error);
}

TEST_CASE("option table: the man page names every flag, key and variable", "[options][man]") {
  const std::string man = man_page_text();
  REQUIRE_FALSE(man.empty());
  for (const Setting& s : config::settings()) {
    if (s.positional()) continue;
    std::string_view names = s.names;
    while (!names.empty()) {
      const std::size_t comma = names.find(',');
      const std::string flag(names.substr(0, comma));
      INFO(config::scope_name(s.scope) << " " << flag << " is missing from man/detour.1");
      CHECK(man.find(flag) != std::string::npos);
      names = comma == std::string_view::npos ? "" : names.substr(comma + 1);
    }
    if (!s.env.empty()) {
      INFO(s.env << " is missing from man/detour.1");
      CHECK(man.find(s.env) != std::string::npos);
    }
  }
  for (const std::string& key : config::detail::config_file_keys()) {
    const std::string name = key.substr(key.rfind('.') + 1);
    INFO("config key " << key << " is missing from man/detour.1");
    CHECK(man.find(name) != std::string::npos);
  }
}
