#pragma once
// What the engine remembers about each target and provider between calls and processes, and
// how it is kept in a state::Store as JSON documents. Pure: documents in, documents out.
//
//   "target:<provider>/<model>"  circuit breaker, outcome stats, last error
//   "provider:<name>"            retry budget
//   "route:<name>"               round-robin turn
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "core/duration.hpp"
#include "engine/breaker.hpp"
#include "engine/errors.hpp"

namespace detour::engine {

struct LastError {
  std::string error_class;  // to_string(ErrorClass)
  std::optional<int> status;
  std::string message;     // already redacted
  std::int64_t at_ms = 0;  // wall clock, ms since the Unix epoch
};

struct TargetStats {
  // How many health-relevant outcomes (successes and failures; not rate limits, skips or
  // cancellations) the figures rest on.
  std::int64_t calls = 0;
  std::optional<double> success_rate;      // EWMA over those outcomes
  std::optional<double> latency_ms;        // EWMA of successful calls' latency
  std::vector<std::int64_t> latencies_ms;  // the last kRecent successful latencies, oldest first
  std::vector<std::int64_t> ttft_ms;       // the last kRecent times to first token (streams)
  std::optional<LastError> last_error;
  std::optional<std::int64_t> last_success_ms;  // wall clock

  static constexpr std::size_t kRecent = 64;
  static constexpr double kAlpha = 0.2;  // EWMA weight of the newest outcome
};

struct TargetState {
  BreakerSnapshot breaker;
  // A fingerprint of the API key the breaker state was learned with: an auth failure marks
  // the target unusable "until its key changes", so a new key starts with a closed breaker.
  std::string key_id;
  // Steady-clock ms when a half-open probe was claimed; a claim older than the probe timeout
  // belongs to a process that died, and the next caller may probe instead.
  std::optional<std::int64_t> probe_claimed_ms;
  TargetStats stats;
};

std::string target_key(const config::Target& target);
std::string provider_key(const std::string& provider);
std::string route_key(const std::string& route);

// A short non-reversible tag of a key (FNV-1a, 8 hex digits); "" for no key.
std::string key_fingerprint(const std::string& api_key);

// The breaker's times are steady-clock ms in memory. A store on this machine keeps them so
// (clock_shift_ms 0); a store shared by machines, whose steady clocks have nothing in common,
// keeps them as the store's wall-clock ms: clock_shift_ms is then that clock minus this
// machine's steady clock (SharedState::clock_shift_ms).
nlohmann::json to_json(const TargetState& state, std::int64_t clock_shift_ms = 0);
// Lenient: fields that are missing or of the wrong type take their defaults, so a state file
// written by another version never breaks a call.
TargetState target_state_from_json(const nlohmann::json& doc, std::int64_t clock_shift_ms = 0);

// Adds one attempt's outcome to the stats (ErrorClass::none for success). `latency` is the
// attempt's; `ttft` the time to its first token when it streamed.
void record_outcome(TargetStats& stats, ErrorClass outcome, std::optional<int> status,
                    const std::string& message, Millis latency, std::optional<Millis> ttft,
                    std::int64_t wall_ms);

// The p-th percentile (0..100, nearest rank) of values; nullopt when empty.
std::optional<std::int64_t> percentile(std::vector<std::int64_t> values, double p);

}  // namespace detour::engine
