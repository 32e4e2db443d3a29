#pragma once
// Flag values every subcommand reads the same way.
#include <string>

#include "core/duration.hpp"

namespace detour::cli {

// A positive duration flag ("250ms", "30s", "5m", "1h", or bare seconds); `fallback` when the
// flag was not given. Anything else is a UsageError naming the flag and the value.
Millis duration_flag(const std::string& flag, const std::string& value, Millis fallback);

}  // namespace detour::cli
