#pragma once
// Durations as users and providers write them: "250ms", "30s", "5m", "1h", "6m0s",
// "1.5s", "2m59.56s", or a bare number of seconds ("90", "0.5").
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace detour {

using Millis = std::chrono::milliseconds;

// Parses a duration; nullopt when the text is not one (empty, negative, unknown unit).
std::optional<Millis> parse_duration(std::string_view text);

// Formats for people: "250ms", "30s", "5m", "1h30m", "1m5s".
std::string format_duration(Millis d);

}  // namespace detour
