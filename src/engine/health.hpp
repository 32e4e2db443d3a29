#pragma once
// `detour health` (docs/architecture.md, "Health probes"): probing targets and providers, what each
// probe's outcome means, and the verdict for CI. The decisions (status, verdict) are pure;
// run_probes sends the probes concurrently on the transport's event loop and records what they
// found in the shared state, like any call.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "core/duration.hpp"
#include "engine/errors.hpp"
#include "engine/shared_state.hpp"
#include "net/transport.hpp"
#include "providers/types.hpp"

namespace detour::engine {

enum class HealthStatus { ok, degraded, rate_limited, quota_exhausted, auth, not_found, down };
std::string_view to_string(HealthStatus s);
// ok and degraded: the target can answer now.
bool usable(HealthStatus s);

// What a probe's outcome means for the target: ErrorClass::none with `slow` is degraded; a 429
// while the headers still report headroom (requests or tokens remaining) is degraded, without
// it rate_limited; quota, auth and not_found are themselves; anything else is down.
HealthStatus health_status(ErrorClass outcome, bool slow, const providers::RateLimitInfo& headers);

enum class ProbeKind { models, chat };

// One thing to probe: a target (provider/model), or a provider on its own (`model` empty,
// models probe only: is the provider reachable and does the key work).
struct ProbeTarget {
  config::ResolvedTarget target;     // target.model empty for a provider probe
  std::optional<std::string> route;  // the route it was named through, if any
  // Set when the probe cannot be sent (the API key variable is not set): reported as `auth`.
  std::string not_sendable;
};

struct ProbeOptions {
  ProbeKind kind = ProbeKind::models;
  Millis timeout{config::kDefaultProbeTimeout};
  Millis slow{config::kDefaultProbeSlow};  // an answer slower than this is `degraded`
};

struct ProbeResult {
  std::string target;  // "provider/model", or "provider" for a provider probe
  std::string provider;
  std::string model;  // empty for a provider probe
  std::optional<std::string> route;
  HealthStatus status = HealthStatus::down;
  std::optional<int> http_status;
  Millis latency{0};
  bool sent = true;  // false: never sent (its API key variable is not set), latency unknown
  ErrorClass error = ErrorClass::none;  // the probe's outcome class
  std::string message;                  // why, for people (redacted); empty when ok
  std::string circuit = "closed";       // from the shared state, after the probe
  providers::RateLimitInfo ratelimit;   // what the reply's headers said
  bool completed = false;               // false: interrupted before its answer came
};

// Sends every probe at once and waits for all. A models probe lists the provider's models once
// for all its targets (no tokens spent) and checks each target's model is listed; a chat probe
// sends each target a one-token request. Results are in the order of `probes`.
std::vector<ProbeResult> run_probes(const std::vector<ProbeTarget>& probes,
                                    const ProbeOptions& options, net::Transport& transport,
                                    const net::Clock& clock, SharedState& state);

enum class FailOn { any, all, none };
std::optional<FailOn> parse_fail_on(std::string_view text);

// What the verdict weighs: a target on its own, or a route (usable when one of its targets is).
struct HealthUnit {
  std::string name;
  bool is_route = false;
  bool usable = false;
};

// The units of a set of results: each named route as one, every other result as one.
std::vector<HealthUnit> health_units(const std::vector<ProbeResult>& results);

// For display when no names were given: each route of the config as a unit, usable when one
// of its targets' results is. (The verdict then still weighs every target on its own.)
std::vector<HealthUnit> route_summaries(const std::map<std::string, config::RouteConfig>& routes,
                                        const std::vector<ProbeResult>& results);

// any: every unit usable; all: fail only when none is; none: always passes.
bool verdict_passes(const std::vector<HealthUnit>& units, FailOn policy);

}  // namespace detour::engine
