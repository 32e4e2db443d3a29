#pragma once
// `detour limits`: what the engine knows right now, from the shared state (README, "detour
// limits"). No network call.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/global_options.hpp"

namespace CLI {
class App;
}

namespace detour::cli {

struct LimitsOptions {
  std::vector<std::string> names;  // PROVIDER|TARGET|ROUTE...
  bool json = false;
};

// The options of `detour limits` on its subcommand (named and described in app.cpp).
void add_limits_options(CLI::App& command, LimitsOptions& options);
int run_limits(const GlobalOptions& global, const LimitsOptions& options);

// The report (engine::limits_report) as a table for people; times relative to now_wall_ms.
std::string limits_table(const nlohmann::json& report, double now_wall_ms);

}  // namespace detour::cli
