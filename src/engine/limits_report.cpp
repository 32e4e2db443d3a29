#include "engine/limits_report.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <set>

#include "config/catalog.hpp"
#include "core/error.hpp"
#include "engine/limiter.hpp"
#include "engine/target_state.hpp"

namespace detour::engine {

using nlohmann::json;

std::string iso_utc(double wall_ms) {
  const auto whole_ms = static_cast<std::int64_t>(std::floor(wall_ms));
  const std::time_t seconds = static_cast<std::time_t>(whole_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>(whole_ms % 1000));
  return text;
}

namespace {

template <typename T>
json or_null(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

json time_or_null(const std::optional<double>& wall_ms) {
  return wall_ms ? json(iso_utc(*wall_ms)) : json(nullptr);
}

json bucket_json(const BucketView& b) {
  return {{"configured", or_null(b.configured)},
          {"learned", or_null(b.learned)},
          {"remaining", or_null(b.remaining)},
          {"reset_at", time_or_null(b.reset_at_ms)}};
}

void add_scope(json& out, const ScopeView& v) {
  out["requests_per_minute"] = bucket_json(v.requests);
  out["tokens_per_minute"] = bucket_json(v.tokens);
  out["concurrency"] = {{"limit", or_null(v.concurrency_limit)}, {"in_flight", v.in_flight}};
  out["blocked_until"] = time_or_null(v.blocked_until_ms);
}

ConfiguredLimits provider_limits(const config::Config& config, const std::string& provider) {
  auto it = config.providers.find(provider);
  if (it == config.providers.end()) return {};
  const auto& p = it->second;
  return {p.rpm, p.tpm, p.burst, p.concurrency};
}

ConfiguredLimits target_limits(const config::Config& config, const std::string& target) {
  auto it = config.models.find(target);
  if (it == config.models.end()) return {};
  const auto& m = it->second;
  return {m.rpm, m.tpm, m.burst, m.concurrency};
}

double ms_of(std::chrono::system_clock::time_point t) {
  return static_cast<double>(std::chrono::duration_cast<Millis>(t.time_since_epoch()).count());
}

// Which providers and targets to show: a provider maps to nullopt for "all its targets".
using Selection = std::map<std::string, std::optional<std::set<std::string>>>;

// Every provider/model the config or the state mentions, by provider.
std::map<std::string, std::set<std::string>> inventory(state::Store& store,
                                                       const config::Config& config) {
  std::map<std::string, std::set<std::string>> known;
  for (const auto& [name, provider] : config.providers)
    known[name];
  auto add_target = [&](const std::string& text) {
    if (auto t = config::split_target(text)) known[t->provider].insert(t->model);
  };
  for (const auto& target : config::known_targets(config))
    add_target(target);
  for (const auto& [key, doc] : store.scan("target:"))
    add_target(key.substr(std::string_view("target:").size()));
  for (const auto& [key, doc] : store.scan("limits:")) {
    const std::string provider = key.substr(std::string_view("limits:").size());
    auto& models = known[provider];
    if (doc.is_object() && doc.contains("targets") && doc["targets"].is_object()) {
      for (const auto& [model, scope] : doc["targets"].items())
        models.insert(model);
    }
  }
  return known;
}

Selection select(const std::map<std::string, std::set<std::string>>& known,
                 const config::Config& config, const std::vector<std::string>& names) {
  Selection chosen;
  if (names.empty()) {
    for (const auto& [provider, models] : known)
      chosen[provider] = std::nullopt;
    return chosen;
  }
  auto add_target = [&](const config::Target& t) {
    auto& slot = chosen[t.provider];
    if (!slot) slot.emplace();  // whole providers are set back to "all" below
    slot->insert(t.model);
  };
  std::set<std::string> whole;
  for (const auto& name : names) {
    if (known.count(name)) {
      whole.insert(name);
      continue;
    }
    if (auto route = config.routes.find(name); route != config.routes.end()) {
      for (const auto& text : route->second.targets) {
        if (auto t = config::split_target(text)) add_target(*t);
      }
      continue;
    }
    auto t = config::split_target(name);
    if (!t || !known.count(t->provider)) {
      throw ConfigError("limits: no provider, target or route named \"" + name +
                        "\" in the config or the state");
    }
    add_target(*t);
  }
  for (const auto& provider : whole)
    chosen[provider] = std::nullopt;
  return chosen;
}

// What detour knows of the model itself: the config's [models] entry, completed from the
// built-in catalog, and where each came from.
json model_json(const config::Config& config, const std::string& provider,
                const std::string& model) {
  std::string source;
  const config::ModelConfig known = config::model_facts(config, provider, model, &source);
  return {{"context_window", or_null(known.context_window)},
          {"max_output_tokens", or_null(known.max_output_tokens)},
          {"input_cost", or_null(known.input_cost)},
          {"output_cost", or_null(known.output_cost)},
          {"cached_input_cost", or_null(known.cached_input_cost)},
          {"source", source.empty() ? json(nullptr) : json(source)}};
}

json target_json(state::Store& store, const json& limits_doc, const config::Config& config,
                 const std::string& provider, const std::string& model,
                 const BreakerConfig& breaker_config, ReportTime now) {
  const std::string name = provider + "/" + model;
  json out = {{"target", name}};
  add_scope(out, target_view(limits_doc, model, target_limits(config, name),
                             provider_limits(config, provider), ms_of(now.wall)));

  const TargetState state = target_state_from_json(store.get("target:" + name), now.clock_shift_ms);
  const auto breaker = CircuitBreaker::restore(state.breaker, breaker_config, now.steady);
  json circuit = {{"state", std::string(to_string(breaker.state(now.steady)))}, {"until", nullptr}};
  if (auto until = breaker.open_until();
      until && breaker.state(now.steady) != CircuitBreaker::State::closed) {
    circuit["until"] = iso_utc(
        ms_of(now.wall) +
        static_cast<double>(std::chrono::duration_cast<Millis>(*until - now.steady).count()));
  }
  out["circuit"] = circuit;
  const TargetStats& stats = state.stats;
  out["calls"] = stats.calls;
  out["success_rate"] = or_null(stats.success_rate);
  out["latency_p50_ms"] = or_null(percentile(stats.latencies_ms, 50));
  out["latency_p95_ms"] = or_null(percentile(stats.latencies_ms, 95));
  if (stats.last_error) {
    out["last_error"] = {{"class", stats.last_error->error_class},
                         {"status", or_null(stats.last_error->status)},
                         {"message", stats.last_error->message},
                         {"at", iso_utc(static_cast<double>(stats.last_error->at_ms))}};
  } else {
    out["last_error"] = nullptr;
  }
  out["model"] = model_json(config, provider, model);
  return out;
}

}  // namespace

json limits_report(state::Store& store, const config::Config& config,
                   const std::vector<std::string>& names, const BreakerConfig& breaker,
                   ReportTime now) {
  const auto known = inventory(store, config);
  const Selection chosen = select(known, config, names);
  json providers = json::array();
  for (const auto& [provider, only] : chosen) {
    const json doc = store.get(limits_key(provider));
    json entry = {{"provider", provider}};
    add_scope(entry, provider_view(doc, provider_limits(config, provider), ms_of(now.wall)));
    const json budget = store.get("provider:" + provider);
    // A success refunds a tenth of a token (BudgetConfig): shown as 8.3, not 8.299999999999999.
    entry["retry_budget"] =
        budget.is_object() && budget.contains("retry_tokens") && budget["retry_tokens"].is_number()
            ? json(std::round(budget["retry_tokens"].get<double>() * 1000) / 1000)
            : json(nullptr);
    json targets = json::array();
    auto it = known.find(provider);
    const std::set<std::string> models =
        only ? *only : (it != known.end() ? it->second : std::set<std::string>{});
    for (const auto& model : models)
      targets.push_back(target_json(store, doc, config, provider, model, breaker, now));
    entry["targets"] = std::move(targets);
    providers.push_back(std::move(entry));
  }
  return {{"providers", providers}};
}

}  // namespace detour::engine
