// The pure half of `detour health`: what a probe's outcome means, and the verdict.
#include <algorithm>
#include <map>

#include "engine/health.hpp"

namespace detour::engine {

std::string_view to_string(HealthStatus s) {
  switch (s) {
    case HealthStatus::ok:
      return "ok";
    case HealthStatus::degraded:
      return "degraded";
    case HealthStatus::rate_limited:
      return "rate_limited";
    case HealthStatus::quota_exhausted:
      return "quota_exhausted";
    case HealthStatus::auth:
      return "auth";
    case HealthStatus::not_found:
      return "not_found";
    case HealthStatus::down:
      return "down";
  }
  return "down";
}

bool usable(HealthStatus s) {
  return s == HealthStatus::ok || s == HealthStatus::degraded;
}

HealthStatus health_status(ErrorClass outcome, bool slow, const providers::RateLimitInfo& h) {
  switch (outcome) {
    case ErrorClass::none:
      return slow ? HealthStatus::degraded : HealthStatus::ok;
    case ErrorClass::rate_limited: {
      // A 429 for one bucket while the other still has room (tokens spent, requests left, or
      // the reverse) means calls can still get through, more slowly.
      const bool headroom = (h.requests_remaining && *h.requests_remaining > 0) ||
                            (h.tokens_remaining && *h.tokens_remaining > 0);
      return headroom ? HealthStatus::degraded : HealthStatus::rate_limited;
    }
    case ErrorClass::quota_exhausted:
      return HealthStatus::quota_exhausted;
    case ErrorClass::auth:
      return HealthStatus::auth;
    case ErrorClass::not_found:
      return HealthStatus::not_found;
    default:
      return HealthStatus::down;
  }
}

std::optional<FailOn> parse_fail_on(std::string_view text) {
  if (text == "any") return FailOn::any;
  if (text == "all") return FailOn::all;
  if (text == "none") return FailOn::none;
  return std::nullopt;
}

std::vector<HealthUnit> health_units(const std::vector<ProbeResult>& results) {
  std::vector<HealthUnit> units;
  std::map<std::string, std::size_t> route_at;
  for (const auto& r : results) {
    if (!r.route) {
      units.push_back({r.target, false, usable(r.status)});
      continue;
    }
    auto [it, fresh] = route_at.try_emplace(*r.route, units.size());
    if (fresh) units.push_back({*r.route, true, false});
    units[it->second].usable = units[it->second].usable || usable(r.status);
  }
  return units;
}

std::vector<HealthUnit> route_summaries(const std::map<std::string, config::RouteConfig>& routes,
                                        const std::vector<ProbeResult>& results) {
  std::vector<HealthUnit> units;
  for (const auto& [name, route] : routes) {
    HealthUnit unit{name, true, false};
    for (const auto& r : results) {
      if (std::find(route.targets.begin(), route.targets.end(), r.target) != route.targets.end())
        unit.usable = unit.usable || usable(r.status);
    }
    units.push_back(unit);
  }
  return units;
}

bool verdict_passes(const std::vector<HealthUnit>& units, FailOn policy) {
  switch (policy) {
    case FailOn::none:
      return true;
    case FailOn::all:
      for (const auto& u : units)
        if (u.usable) return true;
      return units.empty();
    case FailOn::any:
      for (const auto& u : units)
        if (!u.usable) return false;
      return true;
  }
  return false;
}

}  // namespace detour::engine
