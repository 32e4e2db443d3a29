#include "engine/bucket.hpp"

#include <algorithm>

namespace detour::engine {

double burst_for(double per_minute, double configured, double learned) {
  if (configured > 0) return std::max(1.0, configured);
  if (learned > 0) return std::max(1.0, std::min(learned, per_minute));
  return std::max(1.0, per_minute / 60.0);
}

double bucket_level(double tat, const Rate& rate, double now) {
  if (!rate.limited()) return 0;
  return rate.burst - std::max(0.0, tat - now) / rate.interval_ms();
}

double allow_at(double tat, const Rate& rate, double cost, double now) {
  if (!rate.limited()) return now;
  const double interval = rate.interval_ms();
  const double start = std::max(tat, now);  // the bucket is full at `tat`
  // cost <= burst: the moment enough has refilled; cost > burst: the moment it is full.
  const double at = std::min(start + (cost - rate.burst) * interval, start);
  return std::max(now, at);
}

double take(double tat, const Rate& rate, double cost, double at) {
  if (!rate.limited()) return tat;
  return std::max(tat, at) + cost * rate.interval_ms();
}

double adjust(double tat, const Rate& rate, double delta) {
  if (!rate.limited()) return tat;
  return tat + delta * rate.interval_ms();
}

double resync(double tat, const Rate& rate, double remaining, double now) {
  if (!rate.limited()) return tat;
  return std::max(tat, now + (rate.burst - remaining) * rate.interval_ms());
}

double empty_until(double tat, const Rate& rate, double until) {
  if (!rate.limited()) return tat;
  return std::max(tat, until + (rate.burst - 1) * rate.interval_ms());
}

}  // namespace detour::engine
