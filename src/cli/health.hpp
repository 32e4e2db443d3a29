#pragma once
// `detour health`: probe providers and targets, for people and CI (README, "detour health").
#include <chrono>
#include <string>
#include <vector>

#include "cli/global_options.hpp"
#include "config/config.hpp"
#include "engine/health.hpp"

namespace CLI {
class App;
}

namespace detour::cli {

struct HealthOptions {
  std::vector<std::string> names;  // TARGET|PROVIDER|ROUTE...
  std::string probe = "models";    // --probe models|chat
  std::string format;              // --format table|json|prometheus|junit; empty: by TTY
  std::string fail_on = "any";     // --fail-on any|all|none
  std::string timeout;             // --timeout DUR (default 10s)
  std::string slow;                // --slow DUR (default 5s)
};

// The options of `detour health` on its subcommand (named and described in app.cpp).
void add_health_options(CLI::App& command, HealthOptions& options);
int run_health(const GlobalOptions& global, const HealthOptions& options);

// What to probe: with no names, every target a route or [models] names, and every provider
// that none names (a provider probe); else the named targets, providers (their targets) and
// routes (their targets, weighed as one). A target whose API key variable is not set is
// reported as `auth` without a request; a name nothing knows throws ConfigError.
std::vector<engine::ProbeTarget> select_probes(const config::Config& config,
                                               const std::vector<std::string>& names,
                                               const config::EnvLookup& env);

// The four formats (health_format.cpp).
std::string health_json(const std::vector<engine::ProbeResult>& results);
std::string health_table(const std::vector<engine::ProbeResult>& results,
                         const std::vector<engine::HealthUnit>& units, bool color);
std::string health_prometheus(const std::vector<engine::ProbeResult>& results,
                              const std::vector<engine::HealthUnit>& units,
                              std::chrono::system_clock::time_point when);
std::string health_junit(const std::vector<engine::ProbeResult>& results, double seconds,
                         std::chrono::system_clock::time_point started);

}  // namespace detour::cli
