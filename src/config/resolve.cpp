// Turns -m names (routes, provider/model, bare model names, "a,b" lists) into the ordered chain of
// targets the engine walks (docs/architecture.md, "Configuration").
#include <cctype>
#include <set>

#include "config/catalog.hpp"
#include "config/config.hpp"
#include "config/internal.hpp"
#include "core/error.hpp"

namespace detour::config {

std::vector<std::string> known_targets(const Config& config) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& target) {
    if (seen.insert(target).second) out.push_back(target);
  };
  for (const auto& [name, model] : config.models)
    add(name);
  for (const auto& [name, route] : config.routes) {
    for (const auto& target : route.targets)
      add(target);
  }
  return out;
}

namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

// "-m a,b -m c" and "-m a -m b -m c" mean the same chain.
void split_names(std::string_view text, std::vector<std::string>& out) {
  while (true) {
    size_t comma = text.find(',');
    auto piece = trim(text.substr(0, comma));
    if (!piece.empty()) out.emplace_back(piece);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string provider_list(const Config& config) {
  std::vector<std::string> names;
  for (const auto& [name, provider] : config.providers)
    names.push_back(name);
  return names.empty() ? "none (set OPENAI_API_KEY or the like, or write a config file)"
                       : join(names);
}

// A bare model name that exactly one known target serves. Targets whose provider is missing
// (a zero-config name whose key is unset) only count when nothing else matches, so that the
// user then hears which variable to set.
std::optional<Target> find_bare(const Config& config, const std::string& name) {
  std::vector<std::string> present, absent;
  for (const auto& text : known_targets(config)) {
    auto target = split_target(text);
    if (!target || target->model != name) continue;
    (config.providers.count(target->provider) ? present : absent).push_back(text);
  }
  const auto& candidates = present.empty() ? absent : present;
  if (candidates.empty()) return std::nullopt;
  if (candidates.size() > 1) {
    throw ConfigError("ambiguous model '" + name + "': served by " + join(candidates) +
                      "; name one as provider/model");
  }
  return split_target(candidates.front());
}

// Resolves one name (no commas) into its targets.
std::vector<Target> resolve_name(const Config& config, const std::string& name) {
  if (auto route = config.routes.find(name); route != config.routes.end()) {
    std::vector<Target> out;
    for (const auto& text : route->second.targets) {
      if (auto target = split_target(text)) out.push_back(*target);
    }
    return out;
  }

  auto direct = split_target(name);
  if (direct && config.providers.count(direct->provider)) return {*direct};

  // A name with '/' whose first part is no provider may still be a bare model name with a
  // slash in it, such as "meta-llama/llama-3-8b" served by openrouter.
  if (auto bare = find_bare(config, name)) return {*bare};

  if (direct) {
    if (const auto* known = detail::find_known_provider(direct->provider)) {
      throw ConfigError("provider " + direct->provider + ": " +
                        detail::missing_known_key_message(*known));
    }
    throw ConfigError("unknown model or route '" + name + "': no provider named '" +
                      direct->provider + "' (providers: " + provider_list(config) + ")");
  }

  // Well-known model families of the zero-config providers: "gpt-4o-mini" needs no setup
  // beyond OPENAI_API_KEY.
  for (const auto& known : detail::known_providers()) {
    for (auto prefix : known.model_prefixes) {
      if (name.rfind(prefix, 0) != 0) continue;
      if (config.providers.count(std::string(known.name))) {
        return {Target{std::string(known.name), name}};
      }
      throw ConfigError("unknown model or route '" + name + "': it looks like a model of " +
                        std::string(known.name) + ", which is not configured (" +
                        detail::missing_known_key_message(known) + ")");
    }
  }

  std::string routes;
  for (const auto& [route_name, route] : config.routes) {
    routes += (routes.empty() ? "" : ", ") + route_name;
  }
  throw ConfigError("unknown model or route '" + name +
                    "' (routes: " + (routes.empty() ? "none" : routes) +
                    "; providers: " + provider_list(config) + "; or give provider/model)");
}

}  // namespace

ResolvedTarget resolve_target(const Config& config, const Target& target, const EnvLookup& env) {
  ResolvedTarget out;
  out.target = target;
  auto provider = config.providers.find(target.provider);
  if (provider == config.providers.end()) {
    // Only reachable for targets a route or [models] names under a zero-config provider whose
    // key is unset, or for a Config built by hand.
    if (const auto* known = detail::find_known_provider(target.provider)) {
      throw ConfigError("provider " + target.provider + ": " +
                        detail::missing_known_key_message(*known) + " (needed for " +
                        target.name() + ")");
    }
    throw ConfigError("unknown provider '" + target.provider + "' in '" + target.name() + "'");
  }
  out.provider = &provider->second;
  out.model = model_facts(config, target.provider, target.model);
  detail::resolve_extras(provider->second, env, out);
  const std::string& key_env = provider->second.api_key_env;
  if (!key_env.empty()) {
    auto key = detail::env_value(env, key_env);
    // The message names the variable, never a value.
    if (!key) {
      throw ConfigError("provider " + target.provider + ": environment variable " + key_env +
                        " is not set (needed for " + target.name() + ")");
    }
    out.api_key = std::move(*key);
  }
  return out;
}

Chain resolve_chain(const Config& config, const std::vector<std::string>& names,
                    const EnvLookup& env) {
  std::vector<std::string> pieces;
  for (const auto& name : names)
    split_names(name, pieces);
  if (pieces.empty()) {
    split_names(config.defaults.model, pieces);
    if (pieces.empty()) throw ConfigError("no model: give -m or set [defaults] model");
  }

  Chain chain;
  if (pieces.size() == 1) {
    if (auto route = config.routes.find(pieces.front()); route != config.routes.end()) {
      chain.route = route->first;
      chain.strategy = route->second.strategy;
      chain.min_tier = route->second.min_tier;
      chain.next_on_content_filter = route->second.next_on_content_filter;
    }
  }

  std::set<std::string> seen;
  for (const auto& piece : pieces) {
    for (const auto& target : resolve_name(config, piece)) {
      // The first occurrence keeps its place: "-m smart,openai/gpt-4o" must not move gpt-4o.
      if (!seen.insert(target.name()).second) continue;
      chain.targets.push_back(resolve_target(config, target, env));
    }
  }
  if (chain.route) {
    const RouteConfig& route = config.routes.at(*chain.route);
    for (size_t i = 0; i < route.weights.size() && i < route.targets.size(); ++i) {
      for (auto& resolved : chain.targets) {
        if (resolved.target.name() == route.targets[i]) resolved.weight = route.weights[i];
      }
    }
  }
  return chain;
}

}  // namespace detour::config
