#include "core/duration.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

namespace detour {

namespace {

// Reads a non-negative decimal number ("12", "0.5", "34.074824224") at the front of text.
std::optional<double> take_number(std::string_view& text) {
  size_t n = 0;
  bool seen_digit = false, seen_dot = false;
  while (n < text.size()) {
    char c = text[n];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      seen_digit = true;
    } else if (c == '.' && !seen_dot) {
      seen_dot = true;
    } else {
      break;
    }
    ++n;
  }
  if (!seen_digit) return std::nullopt;
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + n, value);
  if (ec != std::errc() || ptr != text.data() + n) return std::nullopt;
  text.remove_prefix(n);
  return value;
}

std::optional<double> take_unit_ms(std::string_view& text) {
  // Longest unit first so "ms" is not read as "m" followed by garbage.
  static constexpr struct {
    std::string_view unit;
    double ms;
  } kUnits[] = {{"ms", 1.0},      {"us", 0.001},  {"µs", 0.001}, {"ns", 0.000001},
                {"h", 3600000.0}, {"m", 60000.0}, {"s", 1000.0}};
  for (const auto& u : kUnits) {
    if (text.substr(0, u.unit.size()) == u.unit) {
      text.remove_prefix(u.unit.size());
      return u.ms;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<Millis> parse_duration(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.empty()) return std::nullopt;

  double total_ms = 0;
  bool first = true;
  while (!text.empty()) {
    auto number = take_number(text);
    if (!number) return std::nullopt;
    if (text.empty()) {
      // A bare number is seconds, but only on its own: "1m30" is a mistake, not 1m30s.
      if (!first) return std::nullopt;
      total_ms = *number * 1000.0;
      break;
    }
    auto unit = take_unit_ms(text);
    if (!unit) return std::nullopt;
    total_ms += *number * *unit;
    first = false;
  }
  if (!std::isfinite(total_ms) || total_ms > 1e15) return std::nullopt;
  return Millis(static_cast<int64_t>(std::llround(total_ms)));
}

std::string format_duration(Millis d) {
  int64_t ms = d.count();
  if (ms < 0) {
    // Negating the smallest int64 overflows; a millisecond off there does not matter.
    if (ms == std::numeric_limits<int64_t>::min()) ++ms;
    return "-" + format_duration(Millis(-ms));
  }
  if (ms < 1000) return std::to_string(ms) + "ms";
  // Under a minute: tenths of a second, rounded in integers so that 59999ms does not come out
  // as "60.0s" and 2000ms as "2.0s".
  int64_t tenths = ms / 100 + (ms % 100 >= 50 ? 1 : 0);
  if (tenths < 600) {
    std::string out = std::to_string(tenths / 10);
    if (tenths % 10 != 0) out += "." + std::to_string(tenths % 10);
    return out + "s";
  }
  // A minute or more: whole seconds, rounded (written so that it cannot overflow).
  int64_t s = ms / 1000 + (ms % 1000 >= 500 ? 1 : 0);
  int64_t h = s / 3600, m = (s % 3600) / 60, sec = s % 60;
  std::string out;
  if (h) out += std::to_string(h) + "h";
  if (m) out += std::to_string(m) + "m";
  if (sec || out.empty()) out += std::to_string(sec) + "s";
  return out;
}

}  // namespace detour
