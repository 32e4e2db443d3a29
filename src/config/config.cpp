// The TOML config file (docs/architecture.md, "Configuration"): parsing and validation with
// positions. Typos must never be silent, so every table has a closed set of keys and every error
// names source:line:column and the dotted key path.
#include "config/config.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <span>
#include <sstream>

#include <toml++/toml.h>

#include "config/internal.hpp"
#include "config/parser.hpp"
#include "core/error.hpp"

namespace detour::config {

namespace detail {

namespace {

constexpr std::string_view kTopLevel[] = {"defaults", "providers", "models", "routes", "breaker"};
constexpr std::string_view kModelKeys[] = {"context_window",
                                           "max_output_tokens",
                                           "input_cost",
                                           "output_cost",
                                           "cached_input_cost",
                                           "tier",
                                           "rpm",
                                           "tpm",
                                           "burst",
                                           "concurrency"};
constexpr std::string_view kRouteKeys[] = {"strategy", "targets", "weights", "min_tier",
                                           "on_content_filter"};
constexpr std::string_view kContentFilterChoices[] = {"stop", "next"};
constexpr std::string_view kBreakerKeys[] = {
    "consecutive_failures", "failure_rate", "min_calls", "window", "cooldown",
    "max_cooldown",         "long_cooldown"};
constexpr std::string_view kStrategies[] = {"fallback", "fastest", "cheapest", "weighted",
                                            "round-robin"};

}  // namespace

std::vector<std::string> config_file_keys() {
  std::vector<std::string> keys;
  auto add = [&](std::string_view prefix, auto&& names) {
    for (std::string_view name : names)
      keys.push_back(std::string(prefix) + std::string(name));
  };
  add("defaults.", defaults_keys());
  add("providers.NAME.", provider_keys());
  add("models.\"PROVIDER/MODEL\".", kModelKeys);
  add("routes.NAME.", kRouteKeys);
  add("breaker.", kBreakerKeys);
  return keys;
}

bool contains(Keys keys, std::string_view key) {
  for (auto k : keys) {
    if (k == key) return true;
  }
  return false;
}

std::string join(Keys keys, std::string_view sep) {
  std::string out;
  for (auto k : keys) {
    if (!out.empty()) out += sep;
    out += k;
  }
  return out;
}

namespace {

// Levenshtein distance, for "did you mean" on unknown keys.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

// Keys are printed the way TOML would need them written: bare when they can be, quoted
// otherwise, so the path can be pasted back into the file (models."openai/gpt-4o".tier).
std::string quote_key(std::string_view key) {
  bool bare = !key.empty();
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') bare = false;
  }
  if (bare) return std::string(key);
  std::string out = "\"";
  for (char c : key) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string join_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? quote_key(key) : parent + "." + quote_key(key);
}

// What a node holds, for "expected X, got Y". Strings are shown (truncated) because a wrong
// string is the usual mistake. Keys live in the environment, not in the file; the one value
// that may hold a pasted key, api_key_env, is checked without describe().
std::string describe(const toml::node& node) {
  if (auto s = node.as_string()) {
    std::string text = s->get();
    if (text.size() > 40) text = text.substr(0, 40) + "...";
    return "string \"" + text + "\"";
  }
  if (auto i = node.as_integer()) return "integer " + std::to_string(i->get());
  if (auto f = node.as_floating_point()) {
    std::ostringstream out;
    out << f->get();
    return "float " + out.str();
  }
  if (auto b = node.as_boolean()) return std::string("boolean ") + (b->get() ? "true" : "false");
  if (node.is_array()) return "an array";
  if (node.is_table()) return "a table";
  return "a date/time";
}

void Parser::check_keys(const toml::table& table, const std::string& path, Keys allowed) const {
  for (auto&& [key, value] : table) {
    if (contains(allowed, key.str())) continue;
    std::string what = "unknown key";
    std::string_view best;
    size_t best_distance = 3;  // more than two edits away is not a typo of that key
    for (auto candidate : allowed) {
      size_t d = edit_distance(key.str(), candidate);
      // "tier" for "min_tier", "context" for "context_window": a part of the right name.
      if (key.str().size() >= 3 && candidate.find(key.str()) != std::string_view::npos) d = 1;
      if (d < best_distance) {
        best = candidate;
        best_distance = d;
      }
    }
    if (!best.empty()) {
      what += " (did you mean '" + std::string(best) + "'?)";
    } else {
      what += " (expected one of: " + join(allowed, ", ") + ")";
    }
    fail(key.source(), join_path(path, key.str()), what);
  }
}

const toml::table& Parser::get_table(const toml::node& node, const std::string& path) const {
  if (auto table = node.as_table()) return *table;
  wrong_type(node, path, "a table");
}

std::string Parser::get_string(const toml::node& node, const std::string& path) const {
  if (auto s = node.as_string()) return s->get();
  wrong_type(node, path, "a string");
}

std::string Parser::get_choice(const toml::node& node, const std::string& path,
                               Keys choices) const {
  std::string value = get_string(node, path);
  if (!contains(choices, value)) wrong_type(node, path, "one of " + join(choices, ", "));
  return value;
}

int64_t Parser::get_int(const toml::node& node, const std::string& path, int64_t min,
                        int64_t max) const {
  auto i = node.as_integer();
  if (!i) wrong_type(node, path, min >= 1 ? "a positive integer" : "an integer");
  int64_t value = i->get();
  if (value < min) {
    fail(node.source(), path,
         "must be " + std::string(min == 0 ? "0 or more" : "at least " + std::to_string(min)) +
             ", got " + std::to_string(value));
  }
  if (value > max) {
    fail(node.source(), path,
         "must be at most " + std::to_string(max) + ", got " + std::to_string(value));
  }
  return value;
}

double Parser::get_number(const toml::node& node, const std::string& path, double min,
                          double max) const {
  double value = 0;
  if (auto i = node.as_integer()) {
    value = static_cast<double>(i->get());
  } else if (auto f = node.as_floating_point()) {
    value = f->get();
  } else {
    wrong_type(node, path, "a number");
  }
  // TOML allows inf and nan; neither is a price or a temperature.
  if (!std::isfinite(value) || value < min || value > max) {
    std::ostringstream range;
    if (max < std::numeric_limits<double>::max()) {
      range << "must be from " << min << " to " << max;
    } else {
      range << "must be " << min << " or more";
    }
    fail(node.source(), path, range.str() + ", got " + describe(node));
  }
  return value;
}

Millis Parser::get_duration(const toml::node& node, const std::string& path) const {
  std::optional<Millis> value;
  if (auto s = node.as_string()) {
    value = parse_duration(s->get());
  } else if (node.is_integer() || node.is_floating_point()) {
    // A TOML number is seconds, like a bare number on the command line.
    double seconds =
        node.is_integer() ? static_cast<double>(*node.value<int64_t>()) : *node.value<double>();
    if (std::isfinite(seconds) && seconds >= 0 && seconds < 1e12) {
      value = Millis(static_cast<int64_t>(std::llround(seconds * 1000.0)));
    }
  }
  if (!value) wrong_type(node, path, "a duration like \"30s\", \"5m\" or a number of seconds");
  // A zero timeout or deadline would fail every call before it starts.
  if (value->count() <= 0) fail(node.source(), path, "must be longer than zero");
  return *value;
}

// Validates "provider/model" text found at `where`; the provider must be configured, or be
// a zero-config name whose key is merely not set here (resolve_chain then names the missing
// variable, which says more than "unknown provider" on a machine without that key).
std::string Parser::get_target(const toml::source_region& where, std::string_view text,
                               const std::string& path) const {
  auto target = split_target(text);
  if (!target) {
    fail(where, path, "expected \"provider/model\", got \"" + std::string(text) + "\"");
  }
  if (config_.providers.count(target->provider) == 0 &&
      detail::find_known_provider(target->provider) == nullptr) {
    std::string configured;
    for (const auto& [name, provider] : config_.providers) {
      configured += (configured.empty() ? "" : ", ") + name;
    }
    fail(where, path,
         "unknown provider '" + target->provider + "' in \"" + std::string(text) +
             "\" (configured: " + (configured.empty() ? "none" : configured) + ")");
  }
  return std::string(text);
}

// Provider and route names are used in "provider/model" and "a,b" lists, so they cannot
// contain those separators.
void Parser::check_name(const toml::key& key, const std::string& path,
                        std::string_view what) const {
  bool ok = !key.str().empty();
  for (char c : key.str()) {
    if (c == '/' || c == ',' || std::isspace(static_cast<unsigned char>(c))) ok = false;
  }
  if (!ok) fail(key.source(), path, std::string(what) + " names cannot contain '/', ',' or spaces");
}

void Parser::parse_defaults(const toml::table& table, Defaults& defaults) const {
  const std::string path = "defaults";
  check_keys(table, path, defaults_keys());  // the option table's
  if (auto n = table.get("model")) defaults.model = get_string(*n, path + ".model");
  if (auto n = table.get("timeout")) defaults.timeout = get_duration(*n, path + ".timeout");
  if (auto n = table.get("deadline")) defaults.deadline = get_duration(*n, path + ".deadline");
  if (auto n = table.get("retries")) {
    defaults.retries = static_cast<int>(get_int(*n, path + ".retries", 0, detail::kMaxRetries));
  }
  if (auto n = table.get("max_tokens")) defaults.max_tokens = get_int(*n, path + ".max_tokens", 1);
  if (auto n = table.get("temperature")) {
    // 2 is the highest any supported API accepts (OpenAI, Gemini); Anthropic stops at 1 and
    // says so itself.
    defaults.temperature = get_number(*n, path + ".temperature", 0.0, 2.0);
  }
  if (auto n = table.get("state")) defaults.state = get_string(*n, path + ".state");
}

ModelConfig Parser::parse_model(const toml::key& name, const toml::node& node) const {
  const std::string path = join_path("models", name.str());
  get_target(name.source(), name.str(), path);
  const auto& table = get_table(node, path);
  check_keys(table, path, kModelKeys);

  ModelConfig model;
  if (auto n = table.get("context_window")) {
    model.context_window = get_int(*n, path + ".context_window", 0);
  }
  if (auto n = table.get("input_cost")) model.input_cost = get_number(*n, path + ".input_cost", 0);
  if (auto n = table.get("output_cost")) {
    model.output_cost = get_number(*n, path + ".output_cost", 0);
  }
  if (auto n = table.get("max_output_tokens")) {
    model.max_output_tokens = get_int(*n, path + ".max_output_tokens", 1);
  }
  if (auto n = table.get("cached_input_cost")) {
    model.cached_input_cost = get_number(*n, path + ".cached_input_cost", 0);
  }
  parse_limits(table, path, model.rpm, model.tpm, model.burst, model.concurrency);
  if (auto n = table.get("tier")) {
    model.tier = static_cast<int>(get_int(*n, path + ".tier", 0, std::numeric_limits<int>::max()));
  }
  return model;
}

void Parser::parse_limits(const toml::table& table, const std::string& path,
                          std::optional<int64_t>& rpm, std::optional<int64_t>& tpm,
                          std::optional<int64_t>& burst,
                          std::optional<int64_t>& concurrency) const {
  if (auto n = table.get("rpm")) rpm = get_int(*n, path + ".rpm", 1);
  if (auto n = table.get("tpm")) tpm = get_int(*n, path + ".tpm", 1);
  if (auto n = table.get("burst")) burst = get_int(*n, path + ".burst", 1);
  if (auto n = table.get("concurrency")) concurrency = get_int(*n, path + ".concurrency", 1);
}

RouteConfig Parser::parse_route(const toml::key& name, const toml::node& node) const {
  const std::string path = join_path("routes", name.str());
  check_name(name, path, "route");
  const auto& table = get_table(node, path);
  check_keys(table, path, kRouteKeys);

  RouteConfig route;
  route.name = name.str();
  if (auto n = table.get("strategy")) {
    route.strategy = get_choice(*n, path + ".strategy", kStrategies);
  }

  const toml::node* targets = table.get("targets");
  if (!targets) fail(table.source(), path, "missing key 'targets' (a list of \"provider/model\")");
  const auto* list = targets->as_array();
  if (!list) wrong_type(*targets, path + ".targets", "an array of \"provider/model\" strings");
  if (list->empty()) fail(list->source(), path + ".targets", "must name at least one target");
  for (size_t i = 0; i < list->size(); ++i) {
    const toml::node& item = *list->get(i);
    std::string item_path = path + ".targets[" + std::to_string(i) + "]";
    std::string target = get_target(item.source(), get_string(item, item_path), item_path);
    // A repeat would shift the weights against their targets once the chain is deduplicated.
    for (const auto& earlier : route.targets) {
      if (earlier == target) fail(item.source(), item_path, "duplicate target \"" + target + "\"");
    }
    route.targets.push_back(std::move(target));
  }

  if (auto n = table.get("weights")) {
    const auto* weights = n->as_array();
    if (!weights) wrong_type(*n, path + ".weights", "an array of numbers");
    bool any_positive = false;
    for (size_t i = 0; i < weights->size(); ++i) {
      double w = get_number(*weights->get(i), path + ".weights[" + std::to_string(i) + "]", 0);
      any_positive = any_positive || w > 0;
      route.weights.push_back(w);
    }
    if (route.weights.size() != route.targets.size()) {
      fail(n->source(), path + ".weights",
           "has " + std::to_string(route.weights.size()) + " weights for " +
               std::to_string(route.targets.size()) + " targets");
    }
    if (!any_positive) fail(n->source(), path + ".weights", "at least one weight must be above 0");
  }

  if (auto n = table.get("min_tier")) {
    route.min_tier =
        static_cast<int>(get_int(*n, path + ".min_tier", 0, std::numeric_limits<int>::max()));
  }
  if (auto n = table.get("on_content_filter")) {
    route.next_on_content_filter =
        get_choice(*n, path + ".on_content_filter", kContentFilterChoices) == "next";
  }
  return route;
}

void Parser::parse_breaker(const toml::table& table, BreakerSettings& b) const {
  const std::string path = "breaker";
  check_keys(table, path, kBreakerKeys);
  if (auto n = table.get("consecutive_failures")) {
    b.consecutive_failures = static_cast<int>(get_int(*n, path + ".consecutive_failures", 1, 1000));
  }
  if (auto n = table.get("failure_rate")) {
    b.failure_rate = get_number(*n, path + ".failure_rate", 0.01, 1.0);
  }
  if (auto n = table.get("min_calls")) {
    b.min_calls = static_cast<int>(get_int(*n, path + ".min_calls", 1, 100000));
  }
  if (auto n = table.get("window")) b.window = get_duration(*n, path + ".window");
  if (auto n = table.get("cooldown")) b.cooldown = get_duration(*n, path + ".cooldown");
  if (auto n = table.get("max_cooldown")) b.max_cooldown = get_duration(*n, path + ".max_cooldown");
  if (auto n = table.get("long_cooldown")) {
    b.long_cooldown = get_duration(*n, path + ".long_cooldown");
  }
  if (b.max_cooldown < b.cooldown) {
    fail(table.source(), path + ".max_cooldown", "must not be shorter than cooldown");
  }
}

Config Parser::parse(std::string_view text) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(source_));
  } catch (const toml::parse_error& e) {
    fail(e.source(), "", "invalid TOML: " + std::string(e.description()));
  }

  for (auto&& [key, value] : root) {
    if (contains(kTopLevel, key.str())) continue;
    // A [defaults] key written above the first table header lands at the top level.
    std::string hint = contains(defaults_keys(), key.str())
                           ? " (did you mean to put it under [defaults]?)"
                           : " (expected one of: [" + join(kTopLevel, "], [") + "])";
    fail(key.source(), quote_key(key.str()),
         std::string(value.is_table() ? "unknown table" : "unknown key") + hint);
  }

  if (auto n = root.get("defaults")) parse_defaults(get_table(*n, "defaults"), config_.defaults);
  if (auto n = root.get("breaker")) parse_breaker(get_table(*n, "breaker"), config_.breaker);
  if (auto n = root.get("providers")) {
    for (auto&& [name, node] : get_table(*n, "providers")) {
      config_.providers.emplace(std::string(name.str()), parse_provider(name, node));
    }
  }
  // Models and routes may name zero-config providers, so those must exist first.
  detail::apply_zero_config(config_, env_);
  if (auto n = root.get("models")) {
    for (auto&& [name, node] : get_table(*n, "models")) {
      config_.models.emplace(std::string(name.str()), parse_model(name, node));
    }
  }
  if (auto n = root.get("routes")) {
    for (auto&& [name, node] : get_table(*n, "routes")) {
      config_.routes.emplace(std::string(name.str()), parse_route(name, node));
    }
  }
  detail::apply_env_overrides(config_.defaults, env_);
  return std::move(config_);
}

}  // namespace detail

std::optional<Target> split_target(std::string_view text) {
  // The provider is before the FIRST '/': OpenRouter model names contain '/' themselves.
  size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size()) {
    return std::nullopt;
  }
  return Target{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
}

Config parse_config(std::string_view toml_text, std::string_view source_name,
                    const EnvLookup& env) {
  detail::Parser parser(source_name, env);
  Config config = parser.parse(toml_text);
  config.path = source_name;
  return config;
}

}  // namespace detour::config
