#pragma once
// Internal to src/config: the TOML parser, shared by config.cpp (the file's layout, defaults,
// models, routes, breaker) and parse_provider.cpp ([providers.NAME]). Every error names
// source:line:column and the dotted key path.
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "config/config.hpp"
#include "core/error.hpp"

namespace detour::config::detail {

using Keys = std::span<const std::string_view>;

bool contains(Keys keys, std::string_view key);
std::string join(Keys keys, std::string_view sep);
// A key as TOML needs it written (bare or quoted), joined to its parent path with '.'.
std::string join_path(const std::string& parent, std::string_view key);
// What a node holds, for "expected X, got Y".
std::string describe(const toml::node& node);

class Parser {
 public:
  Parser(std::string_view source, const EnvLookup& env)
      : source_(source.empty() ? "config" : source), env_(env) {}

  Config parse(std::string_view text);

 private:
  [[noreturn]] void fail(const toml::source_region& where, const std::string& path,
                         const std::string& what) const {
    std::string message = source_ + ":" + std::to_string(where.begin.line) + ":" +
                          std::to_string(where.begin.column) + ": ";
    if (!path.empty()) message += path + ": ";
    throw ConfigError(message + what);
  }
  [[noreturn]] void wrong_type(const toml::node& node, const std::string& path,
                               std::string_view expected) const {
    fail(node.source(), path, "expected " + std::string(expected) + ", got " + describe(node));
  }

  void check_keys(const toml::table& table, const std::string& path, Keys allowed) const;
  const toml::table& get_table(const toml::node& node, const std::string& path) const;
  std::string get_string(const toml::node& node, const std::string& path) const;
  std::string get_choice(const toml::node& node, const std::string& path, Keys choices) const;
  int64_t get_int(const toml::node& node, const std::string& path, int64_t min,
                  int64_t max = std::numeric_limits<int64_t>::max()) const;
  double get_number(const toml::node& node, const std::string& path, double min,
                    double max = std::numeric_limits<double>::max()) const;
  Millis get_duration(const toml::node& node, const std::string& path) const;
  std::string get_target(const toml::source_region& where, std::string_view text,
                         const std::string& path) const;
  void check_name(const toml::key& key, const std::string& path, std::string_view what) const;

  void parse_defaults(const toml::table& table, Defaults& defaults) const;
  ProviderConfig parse_provider(const toml::key& name, const toml::node& node) const;
  // parse_provider.cpp: the pieces of a provider table beyond its URL and protocol.
  void parse_key(const toml::table& table, const std::string& path, ProviderConfig& p) const;
  NameValues parse_name_values(const toml::node& node, const std::string& path,
                               std::string_view what) const;
  void parse_network(const toml::table& table, const std::string& path, ProviderConfig& p) const;
  // rpm, tpm, burst, concurrency: the same keys for a provider and a model.
  void parse_limits(const toml::table& table, const std::string& path, std::optional<int64_t>& rpm,
                    std::optional<int64_t>& tpm, std::optional<int64_t>& burst,
                    std::optional<int64_t>& concurrency) const;
  ModelConfig parse_model(const toml::key& name, const toml::node& node) const;
  RouteConfig parse_route(const toml::key& name, const toml::node& node) const;
  void parse_breaker(const toml::table& table, BreakerSettings& breaker) const;

  std::string source_;
  const EnvLookup& env_;
  Config config_;
};

}  // namespace detour::config::detail
