#include "cli/engine_setup.hpp"

namespace detour::cli {

engine::BreakerConfig breaker_config(const config::BreakerSettings& s) {
  engine::BreakerConfig b;
  b.consecutive_failures = s.consecutive_failures;
  b.failure_rate = s.failure_rate;
  b.min_calls = s.min_calls;
  b.window = s.window;
  b.cooldown = s.cooldown;
  b.max_cooldown = s.max_cooldown;
  b.long_cooldown = s.long_cooldown;
  return b;
}

EngineSetup setup_engine(const GlobalOptions& global, const config::Config& config,
                         const config::EnvLookup& env, io::Logger& log) {
  EngineSetup setup;
  const std::string url = global.state.value_or(config.defaults.state);
  setup.store = state::open_store(url, env, [&log](const std::string& why) { log.warning(why); });
  // describe() never holds a password (redis://user:***@host:port).
  if (log.verbosity() >= 3) log.verbose(3, "state: " + setup.store->describe());
  setup.clock = std::make_unique<net::OffsetClock>(
      [store = setup.store.get()] { return store->clock_offset().value_or(Millis(0)); });
  setup.state = std::make_unique<engine::SharedState>(*setup.store, breaker_config(config.breaker));
  setup.rng.seed(std::random_device{}());
  return setup;
}

}  // namespace detour::cli
