#pragma once
// What every subcommand that makes calls sets up the same way: the shared state store (with
// its one warning when it cannot be used) and the engine's view of it.
#include <memory>
#include <random>

#include "cli/global_options.hpp"
#include "config/config.hpp"
#include "engine/shared_state.hpp"
#include "io/log.hpp"
#include "state/store.hpp"

namespace detour::cli {

struct EngineSetup {
  std::unique_ptr<state::Store> store;
  // The engine's clock: wall-clock time on the store's clock (a Redis server's, when machines
  // share one; this machine's otherwise).
  std::unique_ptr<net::Clock> clock;
  std::unique_ptr<engine::SharedState> state;
  std::mt19937_64 rng;
};

// --state, else DETOUR_STATE / [defaults] state (already merged into config), else sqlite.
EngineSetup setup_engine(const GlobalOptions& global, const config::Config& config,
                         const config::EnvLookup& env, io::Logger& log);

engine::BreakerConfig breaker_config(const config::BreakerSettings& settings);

}  // namespace detour::cli
