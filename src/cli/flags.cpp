#include "cli/flags.hpp"

#include "core/error.hpp"

namespace detour::cli {

Millis duration_flag(const std::string& flag, const std::string& value, Millis fallback) {
  if (value.empty()) return fallback;
  auto parsed = parse_duration(value);
  if (!parsed || parsed->count() <= 0) {
    throw UsageError(flag + ": not a duration: \"" + value + "\" (use e.g. 250ms, 30s, 5m, 1h)");
  }
  return *parsed;
}

}  // namespace detour::cli
