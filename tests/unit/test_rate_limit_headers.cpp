// parse_rate_limit_headers: every provider family's header format, against a fixed `now`.
#include <catch2/catch.hpp>

#include <chrono>

#include "providers/types.hpp"

using detour::Millis;
using detour::net::Headers;
using detour::providers::parse_rate_limit_headers;
using detour::providers::RateLimitInfo;
using namespace std::chrono_literals;

namespace {

// 2025-08-21T12:40:00Z, built with the standard calendar so the parser's own date arithmetic
// is checked against something independent.
std::chrono::system_clock::time_point fixed_now() {
  using namespace std::chrono;
  return sys_days{year{2025} / August / 21} + 12h + 40min;
}

RateLimitInfo parse(Headers headers) {
  return parse_rate_limit_headers(headers, fixed_now());
}

}  // namespace

TEST_CASE("headers: OpenAI x-ratelimit-* counters and Go-duration resets", "[headers]") {
  // As sent by api.openai.com on a chat completion (rate-limits guide).
  auto info = parse({{"x-ratelimit-limit-requests", "60"},
                     {"x-ratelimit-limit-tokens", "150000"},
                     {"x-ratelimit-remaining-requests", "59"},
                     {"x-ratelimit-remaining-tokens", "149984"},
                     {"x-ratelimit-reset-requests", "1s"},
                     {"x-ratelimit-reset-tokens", "6m0s"},
                     {"x-request-id", "req_d4c5e0c7a1f34c6ab7d0c3b1"}});
  CHECK(info.requests_limit == 60);
  CHECK(info.tokens_limit == 150000);
  CHECK(info.requests_remaining == 59);
  CHECK(info.tokens_remaining == 149984);
  CHECK(info.requests_reset == Millis(1000));
  CHECK(info.tokens_reset == Millis(360000));
  CHECK(info.request_id == "req_d4c5e0c7a1f34c6ab7d0c3b1");
  CHECK_FALSE(info.retry_after.has_value());
  CHECK_FALSE(info.should_retry.has_value());
  CHECK_FALSE(info.input_tokens_limit.has_value());
}

TEST_CASE("headers: reset durations in every form providers send", "[headers]") {
  struct Row {
    const char* value;
    std::optional<Millis> expected;
  };
  const Row rows[] = {
      {"120ms", Millis(120)},      {"12ms", Millis(12)},         {"1s", Millis(1000)},
      {"6m0s", Millis(360000)},    {"2m59.56s", Millis(179560)}, {"7.66s", Millis(7660)},
      {"1h2m3s", Millis(3723000)}, {"20", Millis(20000)},  // Azure: integer seconds
      {"0.5", Millis(500)},        {"soon", std::nullopt},       {"", std::nullopt},
      {"-1s", std::nullopt},       {"5x", std::nullopt},
  };
  for (const auto& row : rows) {
    INFO("x-ratelimit-reset-tokens: " << row.value);
    auto info = parse({{"x-ratelimit-reset-tokens", row.value}});
    CHECK(info.tokens_reset == row.expected);
  }
}

TEST_CASE("headers: Anthropic anthropic-ratelimit-* with RFC 3339 resets", "[headers]") {
  // The response-headers table of docs.anthropic.com/en/api/rate-limits.
  auto info = parse({{"anthropic-ratelimit-requests-limit", "50"},
                     {"anthropic-ratelimit-requests-remaining", "49"},
                     {"anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"},
                     {"anthropic-ratelimit-tokens-limit", "90000"},
                     {"anthropic-ratelimit-tokens-remaining", "89000"},
                     {"anthropic-ratelimit-tokens-reset", "2025-08-21T12:41:30.250Z"},
                     {"anthropic-ratelimit-input-tokens-limit", "80000"},
                     {"anthropic-ratelimit-input-tokens-remaining", "79000"},
                     {"anthropic-ratelimit-input-tokens-reset", "2025-08-21T12:40:01Z"},
                     {"anthropic-ratelimit-output-tokens-limit", "16000"},
                     {"anthropic-ratelimit-output-tokens-remaining", "15000"},
                     {"request-id", "req_018EeWyXxfu5pfWkrYcMdjWG"},
                     {"retry-after", "59"}});
  CHECK(info.requests_limit == 50);
  CHECK(info.requests_remaining == 49);
  CHECK(info.requests_reset == Millis(59000));
  CHECK(info.tokens_limit == 90000);
  CHECK(info.tokens_remaining == 89000);
  CHECK(info.tokens_reset == Millis(90250));
  CHECK(info.input_tokens_limit == 80000);
  CHECK(info.input_tokens_remaining == 79000);
  CHECK(info.output_tokens_limit == 16000);
  CHECK(info.output_tokens_remaining == 15000);
  CHECK(info.request_id == "req_018EeWyXxfu5pfWkrYcMdjWG");
  CHECK(info.retry_after == Millis(59000));
}

TEST_CASE("headers: RFC 3339 variants, offsets, past instants and garbage", "[headers]") {
  struct Row {
    const char* value;
    std::optional<Millis> expected;
  };
  const Row rows[] = {
      {"2025-08-21T12:40:59Z", Millis(59000)},
      {"2025-08-21t12:40:59z", Millis(59000)},
      {"2025-08-21T12:40:00.123456789Z", Millis(123)},
      {"2025-08-21T14:41:00+02:00", Millis(60000)},       // 12:41:00Z
      {"2025-08-21T07:41:00-05:00", Millis(60000)},       // 12:41:00Z
      {"2025-08-22T00:00:00Z", Millis(40800000)},         // across midnight: 11h20m
      {"2026-01-01T00:00:00Z", Millis(11445600000)},      // across months and a year
      {"9999-12-31T23:59:59Z", Millis(251646520799000)},  // no overflow
      {"0000-01-01T00:00:00Z", Millis(0)},
      {"2025-08-21T12:39:00Z", Millis(0)},  // already past: clamped
      {"2025-08-21T12:40:00Z", Millis(0)},
      {"2025-13-21T12:40:59Z", std::nullopt},
      {"2025-08-21T25:40:59Z", std::nullopt},
      {"2025-08-21T12:40:59", std::nullopt},  // no zone
      {"2025-08-21", std::nullopt},
      {"tomorrow", std::nullopt},
  };
  for (const auto& row : rows) {
    INFO("anthropic-ratelimit-requests-reset: " << row.value);
    auto info = parse({{"anthropic-ratelimit-requests-reset", row.value}});
    CHECK(info.requests_reset == row.expected);
  }
}

TEST_CASE("headers: retry-after as seconds, HTTP date, and retry-after-ms", "[headers]") {
  struct Row {
    Headers headers;
    std::optional<Millis> expected;
  };
  const Row rows[] = {
      {{{"retry-after", "20"}}, Millis(20000)},
      {{{"retry-after", "1.5"}}, Millis(1500)},
      {{{"retry-after", " 7 "}}, Millis(7000)},
      {{{"retry-after", "0"}}, Millis(0)},
      // HTTP dates relative to 2025-08-21T12:40:00Z.
      {{{"retry-after", "Thu, 21 Aug 2025 12:40:37 GMT"}}, Millis(37000)},
      {{{"retry-after", "Thu, 21 Aug 2025 13:00:00 GMT"}}, Millis(1200000)},
      {{{"retry-after", "Thursday, 21-Aug-25 12:41:00 GMT"}}, Millis(60000)},
      {{{"retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"}}, Millis(0)},  // the past: now
      {{{"retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"}}, Millis(251646520799000)},
      {{{"retry-after", "Thu, 21 Foo 2025 12:40:37 GMT"}}, std::nullopt},
      {{{"retry-after", "later"}}, std::nullopt},
      {{{"retry-after", "-5"}}, std::nullopt},
      {{{"retry-after", "1e3"}}, std::nullopt},
      // retry-after-ms wins, as in the official SDKs.
      {{{"retry-after", "20"}, {"retry-after-ms", "1500"}}, Millis(1500)},
      {{{"retry-after-ms", "644.4"}}, Millis(644)},
      // A garbage retry-after-ms falls back to retry-after.
      {{{"retry-after-ms", "soon"}, {"retry-after", "3"}}, Millis(3000)},
  };
  for (const auto& row : rows) {
    INFO("first header: " << row.headers.front().first << ": " << row.headers.front().second);
    CHECK(parse(row.headers).retry_after == row.expected);
  }
}

TEST_CASE("headers: x-should-retry both ways, and nonsense ignored", "[headers]") {
  CHECK(parse({{"x-should-retry", "true"}}).should_retry == true);
  CHECK(parse({{"x-should-retry", "false"}}).should_retry == false);
  CHECK(parse({{"x-should-retry", "False"}}).should_retry == false);
  CHECK_FALSE(parse({{"x-should-retry", "maybe"}}).should_retry.has_value());
  CHECK_FALSE(parse({}).should_retry.has_value());
}

TEST_CASE("headers: garbage values and unknown suffixes are ignored", "[headers]") {
  auto info = parse({{"x-ratelimit-limit-requests", "lots"},
                     {"x-ratelimit-remaining-requests", "-1"},  // Azure Responses API
                     {"x-ratelimit-limit-tokens", "12.5"},
                     {"x-ratelimit-remaining-tokens", "99999999999999999999999"},
                     {"x-ratelimit-limit-tokens_usage_based", "1000"},
                     {"x-ratelimit-remaining-tokens_usage_based", "999"},
                     {"x-ratelimit-reset-requests", "whenever"},
                     {"anthropic-ratelimit-requests-limit", ""},
                     {"anthropic-ratelimit-tokens-remaining", "1,000"},
                     {"anthropic-ratelimit-widgets-limit", "5"}});
  CHECK_FALSE(info.requests_limit.has_value());
  CHECK_FALSE(info.requests_remaining.has_value());
  CHECK_FALSE(info.tokens_limit.has_value());
  CHECK_FALSE(info.tokens_remaining.has_value());
  CHECK_FALSE(info.requests_reset.has_value());
  CHECK(info.request_id.empty());
}

TEST_CASE("headers: Groq-style values and request-id fallback", "[headers]") {
  // Groq: OpenAI names, RPD in limit-requests, fractional Go durations.
  auto info = parse({{"x-ratelimit-limit-requests", "14400"},
                     {"x-ratelimit-remaining-requests", "14370"},
                     {"x-ratelimit-reset-requests", "2m59.56s"},
                     {"x-ratelimit-reset-tokens", "7.66s"},
                     {"request-id", "req_abc"}});
  CHECK(info.requests_limit == 14400);
  CHECK(info.requests_remaining == 14370);
  CHECK(info.requests_reset == Millis(179560));
  CHECK(info.tokens_reset == Millis(7660));
  CHECK(info.request_id == "req_abc");
}
