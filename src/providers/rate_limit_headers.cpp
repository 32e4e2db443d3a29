// Rate-limit and retry headers of every provider family, in one pure function. Dates are
// parsed by hand (no strptime, no locale, no TZ) so the result never depends on the machine.
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

#include "providers/types.hpp"

namespace detour::providers {

namespace {

using Clock = std::chrono::system_clock;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// A non-negative integer and nothing else. Negative values (Azure's "-1" for "unknown") are
// read as absent rather than as a limit.
std::optional<int64_t> parse_count(std::string_view text) {
  text = trim(text);
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text.front()))) return std::nullopt;
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

// A non-negative finite decimal ("1", "0.5", "1500.0") and nothing else.
std::optional<double> parse_number(std::string_view text) {
  text = trim(text);
  if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text.front())) || text[0] == '.'))
    return std::nullopt;
  double value = 0;
  auto [ptr, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  if (!std::isfinite(value) || value < 0 || value > 1e12) return std::nullopt;
  return value;
}

// Reads exactly `n` digits at the front of `text`.
std::optional<int> take_digits(std::string_view& text, size_t n) {
  if (text.size() < n) return std::nullopt;
  int value = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  text.remove_prefix(n);
  return value;
}

bool take_char(std::string_view& text, char c) {
  if (text.empty() || std::tolower(static_cast<unsigned char>(text.front())) !=
                          std::tolower(static_cast<unsigned char>(c))) {
    return false;
  }
  text.remove_prefix(1);
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool valid_time(int month, int day, int hour, int minute, int second) {
  // 60 allows a leap second, as RFC 3339 does.
  return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 &&
         second <= 60;
}

// Milliseconds since the epoch. Kept as a plain integer: a year-9999 date converted to
// system_clock's nanoseconds would overflow.
int64_t make_time(int64_t year, int month, int day, int hour, int minute, int second,
                  int64_t millis, int64_t offset_seconds) {
  int64_t seconds =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
      hour * 3600 + minute * 60 + second - offset_seconds;
  return seconds * 1000 + millis;
}

// RFC 3339: 2025-08-21T12:40:59Z, 2025-08-21T12:40:59.123456Z, 2025-08-21T14:40:59+02:00.
std::optional<int64_t> parse_rfc3339(std::string_view text) {
  text = trim(text);
  auto year = take_digits(text, 4);
  if (!year || !take_char(text, '-')) return std::nullopt;
  auto month = take_digits(text, 2);
  if (!month || !take_char(text, '-')) return std::nullopt;
  auto day = take_digits(text, 2);
  if (!day || !(take_char(text, 'T') || take_char(text, ' '))) return std::nullopt;
  auto hour = take_digits(text, 2);
  if (!hour || !take_char(text, ':')) return std::nullopt;
  auto minute = take_digits(text, 2);
  if (!minute || !take_char(text, ':')) return std::nullopt;
  auto second = take_digits(text, 2);
  if (!second) return std::nullopt;
  int64_t millis = 0;
  if (take_char(text, '.')) {
    // Any number of fraction digits; milliseconds are all detour keeps.
    size_t n = 0, scale = 100;
    while (n < text.size() && std::isdigit(static_cast<unsigned char>(text[n]))) {
      millis += (text[n] - '0') * static_cast<int64_t>(scale);
      scale /= 10;
      ++n;
    }
    if (n == 0) return std::nullopt;
    text.remove_prefix(n);
  }
  int64_t offset = 0;
  if (!take_char(text, 'Z')) {
    if (text.empty() || (text.front() != '+' && text.front() != '-')) return std::nullopt;
    int sign = text.front() == '-' ? -1 : 1;
    text.remove_prefix(1);
    auto oh = take_digits(text, 2);
    if (!oh || !take_char(text, ':')) return std::nullopt;
    auto om = take_digits(text, 2);
    if (!om || *oh > 23 || *om > 59) return std::nullopt;
    offset = sign * (*oh * 3600 + *om * 60);
  }
  if (!text.empty() || !valid_time(*month, *day, *hour, *minute, *second)) return std::nullopt;
  return make_time(*year, *month, *day, *hour, *minute, *second, millis, offset);
}

std::optional<int> month_number(std::string_view name) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  for (size_t i = 0; i < kMonths.size(); ++i) {
    if (iequals(name, kMonths[i])) return static_cast<int>(i) + 1;
  }
  return std::nullopt;
}

// The HTTP-date of Retry-After: IMF-fixdate "Wed, 21 Oct 2015 07:28:00 GMT", and the obsolete
// RFC 850 form "Wednesday, 21-Oct-15 07:28:00 GMT" that HTTP still asks recipients to accept.
std::optional<int64_t> parse_http_date(std::string_view text) {
  text = trim(text);
  size_t comma = text.find(',');
  if (comma != std::string_view::npos) text = trim(text.substr(comma + 1));  // the day name

  auto day = take_digits(text, 2);
  if (!day) day = take_digits(text, 1);
  if (!day || text.empty() || (text.front() != ' ' && text.front() != '-')) return std::nullopt;
  text.remove_prefix(1);
  auto month = text.size() >= 3 ? month_number(text.substr(0, 3)) : std::nullopt;
  if (!month) return std::nullopt;
  text.remove_prefix(3);
  if (text.empty() || (text.front() != ' ' && text.front() != '-')) return std::nullopt;
  text.remove_prefix(1);
  int64_t year;
  if (auto y4 = take_digits(text, 4)) {
    year = *y4;
  } else if (auto y2 = take_digits(text, 2)) {
    year = *y2 < 70 ? 2000 + *y2 : 1900 + *y2;
  } else {
    return std::nullopt;
  }
  if (!take_char(text, ' ')) return std::nullopt;
  auto hour = take_digits(text, 2);
  if (!hour || !take_char(text, ':')) return std::nullopt;
  auto minute = take_digits(text, 2);
  if (!minute || !take_char(text, ':')) return std::nullopt;
  auto second = take_digits(text, 2);
  if (!second) return std::nullopt;
  std::string_view zone = trim(text);
  if (!(zone.empty() || iequals(zone, "GMT") || iequals(zone, "UTC") || zone == "+0000")) {
    return std::nullopt;
  }
  if (!valid_time(*month, *day, *hour, *minute, *second)) return std::nullopt;
  return make_time(year, *month, *day, *hour, *minute, *second, 0, 0);
}

// Time from `now` until `when_ms` (since the epoch), never negative. `now` is floored to the
// millisecond, which rounds the wait up so that it never ends early.
Millis until(int64_t when_ms, Clock::time_point now) {
  int64_t now_ms = std::chrono::floor<Millis>(now.time_since_epoch()).count();
  return Millis(when_ms > now_ms ? when_ms - now_ms : 0);
}

// A reset: a duration ("6m0s", "120ms", bare seconds "20" as Azure and Mistral send) or an
// RFC 3339 instant (Anthropic).
std::optional<Millis> parse_reset(std::string_view text, Clock::time_point now) {
  if (auto d = parse_duration(text)) return d;
  if (auto when = parse_rfc3339(text)) return until(*when, now);
  return std::nullopt;
}

std::optional<Millis> parse_retry_after(std::string_view text, Clock::time_point now) {
  if (auto seconds = parse_number(text)) return Millis(std::llround(*seconds * 1000.0));
  if (auto when = parse_http_date(text)) return until(*when, now);
  return std::nullopt;
}

}  // namespace

RateLimitInfo parse_rate_limit_headers(const net::Headers& headers, Clock::time_point now) {
  RateLimitInfo info;
  auto header = [&](std::string_view name) { return net::find_header(headers, name); };

  const struct {
    std::string_view name;
    std::optional<int64_t> RateLimitInfo::*field;
  } kCounts[] = {
      {"x-ratelimit-limit-requests", &RateLimitInfo::requests_limit},
      {"x-ratelimit-remaining-requests", &RateLimitInfo::requests_remaining},
      {"x-ratelimit-limit-tokens", &RateLimitInfo::tokens_limit},
      {"x-ratelimit-remaining-tokens", &RateLimitInfo::tokens_remaining},
      {"anthropic-ratelimit-requests-limit", &RateLimitInfo::requests_limit},
      {"anthropic-ratelimit-requests-remaining", &RateLimitInfo::requests_remaining},
      {"anthropic-ratelimit-tokens-limit", &RateLimitInfo::tokens_limit},
      {"anthropic-ratelimit-tokens-remaining", &RateLimitInfo::tokens_remaining},
      {"anthropic-ratelimit-input-tokens-limit", &RateLimitInfo::input_tokens_limit},
      {"anthropic-ratelimit-input-tokens-remaining", &RateLimitInfo::input_tokens_remaining},
      {"anthropic-ratelimit-output-tokens-limit", &RateLimitInfo::output_tokens_limit},
      {"anthropic-ratelimit-output-tokens-remaining", &RateLimitInfo::output_tokens_remaining},
  };
  for (const auto& c : kCounts) {
    if (auto value = header(c.name)) {
      if (auto n = parse_count(*value)) info.*c.field = n;
    }
  }

  const struct {
    std::string_view name;
    std::optional<Millis> RateLimitInfo::*field;
  } kResets[] = {
      {"x-ratelimit-reset-requests", &RateLimitInfo::requests_reset},
      {"x-ratelimit-reset-tokens", &RateLimitInfo::tokens_reset},
      {"anthropic-ratelimit-requests-reset", &RateLimitInfo::requests_reset},
      {"anthropic-ratelimit-tokens-reset", &RateLimitInfo::tokens_reset},
  };
  for (const auto& r : kResets) {
    if (auto value = header(r.name)) {
      if (auto d = parse_reset(*value, now)) info.*r.field = d;
    }
  }

  // The official SDKs' order: retry-after-ms (float milliseconds) first, then retry-after as
  // float seconds, then retry-after as an HTTP date.
  if (auto value = header("retry-after-ms")) {
    if (auto ms = parse_number(*value)) info.retry_after = Millis(std::llround(*ms));
  }
  if (!info.retry_after) {
    if (auto value = header("retry-after")) info.retry_after = parse_retry_after(*value, now);
  }

  if (auto value = header("x-should-retry")) {
    std::string_view v = trim(*value);
    if (iequals(v, "true")) info.should_retry = true;
    if (iequals(v, "false")) info.should_retry = false;
  }

  if (auto value = header("x-request-id")) {
    info.request_id = std::string(trim(*value));
  } else if (auto value2 = header("request-id")) {
    info.request_id = std::string(trim(*value2));
  }
  return info;
}

}  // namespace detour::providers
