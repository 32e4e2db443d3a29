#pragma once
// What `detour limits` reports (README, "detour limits"; docs/architecture.md, "detour limits"):
// per provider and per target, the configured and learned limits, what remains now and when it
// resets, slots in flight, the circuit, success rate, latency percentiles and the last error -- all
// read from the shared state, with no network call. Built as JSON (the --json output); the table is
// drawn from it.
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "engine/breaker.hpp"
#include "state/store.hpp"

namespace detour::engine {

struct ReportTime {
  std::chrono::system_clock::time_point wall;    // on the store's clock (EngineSetup::clock)
  std::chrono::steady_clock::time_point steady;  // the breaker's clock
  std::int64_t clock_shift_ms = 0;               // SharedState::clock_shift_ms
};

// `names` filter the report: a provider, a provider/model target or a route (its targets).
// Empty: every provider the config or the state knows, with every target either names.
// A name that is none of these throws ConfigError.
nlohmann::json limits_report(state::Store& store, const config::Config& config,
                             const std::vector<std::string>& names, const BreakerConfig& breaker,
                             ReportTime now);

// "2026-11-22T10:00:05.250Z" (RFC 3339, UTC, milliseconds).
std::string iso_utc(double wall_ms);

}  // namespace detour::engine
