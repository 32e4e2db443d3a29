#include "cli/health.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <set>

#include "cli/complete.hpp"
#include "cli/engine_setup.hpp"
#include "cli/flags.hpp"
#include "cli/options.hpp"
#include "core/error.hpp"
#include "io/interrupt.hpp"

namespace detour::cli {

void add_health_options(CLI::App& command, HealthOptions& o) {
  command.fallthrough();
  using config::Scope;
  add_setting(command, Scope::health, "names", o.names);
  add_setting(command, Scope::health, "probe", o.probe)->check(CLI::IsMember({"models", "chat"}));
  add_setting(command, Scope::health, "format", o.format)
      ->check(CLI::IsMember({"table", "json", "prometheus", "junit"}));
  add_setting(command, Scope::health, "fail-on", o.fail_on)
      ->check(CLI::IsMember({"any", "all", "none"}));
  add_setting(command, Scope::health, "timeout", o.timeout);
  add_setting(command, Scope::health, "slow", o.slow);
}

namespace {

engine::ProbeTarget probe_of(const config::Config& config, const config::Target& target,
                             const config::EnvLookup& env, std::optional<std::string> route) {
  engine::ProbeTarget probe;
  probe.route = std::move(route);
  probe.target.target = target;
  try {
    probe.target = config::resolve_target(config, target, env);
  } catch (const ConfigError& e) {
    // The config parser accepts only known providers, so what is left is a missing API key
    // variable (of a configured provider, or of a zero-config one a route names): a health
    // problem to report, not a reason to stop probing the rest. The message names the
    // variable, never a value.
    probe.not_sendable = e.what();
    if (target.model.empty()) {  // a provider probe: "(needed for nokey/)" reads oddly
      const std::string odd = " (needed for " + target.provider + "/)";
      if (auto at = probe.not_sendable.find(odd); at != std::string::npos)
        probe.not_sendable.erase(at, odd.size());
    }
  }
  return probe;
}

}  // namespace

namespace {

// The same target named twice through the same route (or twice directly) is probed once.
std::vector<engine::ProbeTarget> without_repeats(std::vector<engine::ProbeTarget> probes) {
  std::vector<engine::ProbeTarget> out;
  std::set<std::pair<std::string, std::string>> seen;
  for (auto& p : probes) {
    const auto& t = p.target.target;
    if (seen.insert({t.model.empty() ? t.provider : t.name(), p.route.value_or("")}).second)
      out.push_back(std::move(p));
  }
  return out;
}

std::vector<engine::ProbeTarget> probes_named(const config::Config& config,
                                              const std::vector<std::string>& names,
                                              const config::EnvLookup& env);

}  // namespace

std::vector<engine::ProbeTarget> select_probes(const config::Config& config,
                                               const std::vector<std::string>& names,
                                               const config::EnvLookup& env) {
  return without_repeats(probes_named(config, names, env));
}

namespace {

std::vector<engine::ProbeTarget> probes_named(const config::Config& config,
                                              const std::vector<std::string>& names,
                                              const config::EnvLookup& env) {
  std::vector<engine::ProbeTarget> probes;
  const std::vector<std::string> listed = config::known_targets(config);
  auto provider_targets = [&](const std::string& provider) {
    std::vector<config::Target> out;
    for (const auto& text : listed) {
      auto t = config::split_target(text);
      if (t && t->provider == provider) out.push_back(*t);
    }
    return out;
  };
  auto add_provider = [&](const std::string& provider) {
    auto targets = provider_targets(provider);
    if (targets.empty()) targets.push_back({provider, ""});
    for (const auto& t : targets)
      probes.push_back(probe_of(config, t, env, std::nullopt));
  };

  if (names.empty()) {
    std::set<std::string> named_providers;
    for (const auto& text : listed) {
      auto t = config::split_target(text);
      if (!t) continue;
      named_providers.insert(t->provider);
      probes.push_back(probe_of(config, *t, env, std::nullopt));
    }
    for (const auto& [name, provider] : config.providers) {
      if (!named_providers.count(name)) probes.push_back(probe_of(config, {name, ""}, env, {}));
    }
    if (probes.empty()) {
      throw ConfigError(
          "health: nothing to probe: no provider is configured (write a config, or set an "
          "*_API_KEY variable such as OPENAI_API_KEY)");
    }
    return probes;
  }

  for (const auto& name : names) {
    if (auto route = config.routes.find(name); route != config.routes.end()) {
      for (const auto& text : route->second.targets) {
        if (auto t = config::split_target(text)) probes.push_back(probe_of(config, *t, env, name));
      }
      continue;
    }
    if (config.providers.count(name)) {
      add_provider(name);
      continue;
    }
    auto direct = config::split_target(name);
    if (direct && config.providers.count(direct->provider)) {
      probes.push_back(probe_of(config, *direct, env, std::nullopt));
      continue;
    }
    // A bare model name, or an error naming what is wrong with the name.
    for (const auto& target : config::resolve_chain(config, {name}, env).targets)
      probes.push_back(probe_of(config, target.target, env, std::nullopt));
  }
  return probes;
}

}  // namespace

int run_health(const GlobalOptions& global, const HealthOptions& o) {
  io::Logger log(global.log_settings());
  const auto env = config::process_env();
  engine::ProbeOptions options;
  options.kind = o.probe == "chat" ? engine::ProbeKind::chat : engine::ProbeKind::models;
  options.timeout = duration_flag("--timeout", o.timeout, config::kDefaultProbeTimeout);
  options.slow = duration_flag("--slow", o.slow, config::kDefaultProbeSlow);
  const engine::FailOn fail_on = engine::parse_fail_on(o.fail_on).value_or(engine::FailOn::any);
  const bool stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  const std::string format = !o.format.empty() ? o.format : stdout_is_tty ? "table" : "json";

  const config::Config config = config::load_config(global.config_path, env);
  const auto probes = select_probes(config, o.names, env);
  EngineSetup engine = setup_engine(global, config, env, log);
  auto transport = net::make_curl_transport(global.transport_options());
  const net::Clock& clock = *engine.clock;
  const auto started_wall = clock.wall_now();
  const auto started = clock.now();
  std::vector<engine::ProbeResult> results;
  {
    io::StopLoopOnInterrupt stop_on_interrupt(*transport);
    results = engine::run_probes(probes, options, *transport, clock, *engine.state);
  }
  if (io::StopLoopOnInterrupt::interrupted()) {
    log.error("interrupted");
    return static_cast<int>(ExitCode::interrupted);
  }
  const double seconds = std::chrono::duration<double>(clock.now() - started).count();
  const auto units = engine::health_units(results);
  // Shown, not weighed: with no names every target counts on its own, but a dashboard still
  // wants to know whether each route can answer.
  std::vector<engine::HealthUnit> shown = units;
  if (o.names.empty()) {
    for (const auto& u : engine::route_summaries(config.routes, results))
      shown.push_back(u);
  }

  for (const auto& r : results) {
    log.verbose(1, r.target + ": " + std::string(engine::to_string(r.status)) +
                       (r.message.empty() ? "" : " (" + r.message + ")"));
  }
  std::string out;
  if (format == "json") {
    out = health_json(results);
  } else if (format == "prometheus") {
    out = health_prometheus(results, shown, started_wall);
  } else if (format == "junit") {
    out = health_junit(results, seconds, started_wall);
  } else {
    out = health_table(results, shown,
                       stdout_is_tty && io::wants_color(STDOUT_FILENO, global.no_color));
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);

  if (engine::verdict_passes(units, fail_on)) return 0;
  std::size_t bad = 0;
  for (const auto& u : units)
    bad += u.usable ? 0 : 1;
  log.error("health: " + std::to_string(bad) + " of " + std::to_string(units.size()) +
            " probed target(s) or route(s) not usable (--fail-on " + o.fail_on + ")");
  return static_cast<int>(ExitCode::failed);
}

}  // namespace detour::cli
