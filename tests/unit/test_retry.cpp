// Retry timing (docs/architecture.md, "Failure policy and retries"), row by row: backoff bounds,
// which server hint wins, wait or move on, the retry budget, and which error classes are transient.
#include <catch2/catch.hpp>

#include <climits>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/retry.hpp"

using namespace detour;
using engine::BackoffConfig;
using engine::ErrorClass;
using engine::WaitDecision;

namespace {
constexpr Millis ms(int64_t n) {
  return Millis{n};
}
constexpr Millis sec(int64_t n) {
  return Millis{n * 1000};
}
}  // namespace

TEST_CASE("backoff_delay draws uniformly in [0, min(cap, base*2^n)]", "[retry]") {
  struct Row {
    int n;
    int64_t ceiling_ms;
  };
  const std::vector<Row> rows = {
      {0, 500},  {1, 1000}, {2, 2000}, {3, 4000}, {4, 8000},  {5, 8000},
      {6, 8000}, {7, 8000}, {8, 8000}, {9, 8000}, {10, 8000},
  };
  const BackoffConfig config;  // 500 ms base, 8 s cap
  std::mt19937_64 rng(42);
  constexpr int kDraws = 2000;
  for (const auto& row : rows) {
    INFO("n = " << row.n);
    int64_t lo = INT64_MAX, hi = -1;
    for (int i = 0; i < kDraws; ++i) {
      const int64_t d = engine::backoff_delay(row.n, config, rng).count();
      REQUIRE(d >= 0);
      REQUIRE(d <= row.ceiling_ms);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    // Full jitter: the draws span the whole range, not just its top quarter (as the SDKs do).
    CHECK(hi >= row.ceiling_ms * 9 / 10);
    CHECK(lo <= row.ceiling_ms / 10);
  }
}

TEST_CASE("backoff_delay guards overflow, odd configs and is deterministic per seed", "[retry]") {
  std::mt19937_64 rng(7);
  struct Row {
    int n;
    BackoffConfig config;
    int64_t ceiling_ms;
  };
  const std::vector<Row> rows = {
      {30, {}, 8000},
      {62, {}, 8000},
      {63, {}, 8000},
      {64, {}, 8000},
      {1000, {}, 8000},
      {INT_MAX, {}, 8000},
      {-1, {}, 500},  // a negative count is the first retry
      {INT_MAX, {ms(500), Millis::max()}, Millis::max().count()},
      {3, {ms(1000), ms(300)}, 300},  // cap below base: the cap wins
      {5, {ms(0), ms(8000)}, 0},
      {5, {ms(500), ms(0)}, 0},
  };
  for (const auto& row : rows) {
    INFO("n = " << row.n << ", base " << row.config.base.count() << ", cap "
                << row.config.cap.count());
    int64_t hi = -1;
    for (int i = 0; i < 500; ++i) {
      const int64_t d = engine::backoff_delay(row.n, row.config, rng).count();
      REQUIRE(d >= 0);
      REQUIRE(d <= row.ceiling_ms);
      hi = std::max(hi, d);
    }
    if (row.ceiling_ms > 0 && row.ceiling_ms < 1'000'000) CHECK(hi >= row.ceiling_ms * 9 / 10);
    if (row.ceiling_ms == Millis::max().count()) CHECK(hi > INT64_MAX / 4);
  }

  std::mt19937_64 a(123), b(123);
  for (int n = 0; n < 20; ++n) {
    CHECK(engine::backoff_delay(n, {}, a) == engine::backoff_delay(n, {}, b));
  }
}

TEST_CASE("server_hint: retry-after, then RetryInfo, then the 429's reset", "[retry]") {
  struct Row {
    const char* name;
    int status;
    std::optional<Millis> retry_after;
    std::optional<Millis> retry_delay;
    std::optional<Millis> requests_reset;
    std::optional<int64_t> requests_remaining;
    std::optional<Millis> tokens_reset;
    std::optional<int64_t> tokens_remaining;
    std::optional<Millis> expected;
  };
  const auto none = std::nullopt;
  const std::vector<Row> rows = {
      {"nothing", 429, none, none, none, none, none, none, none},
      {"retry-after alone", 429, sec(37), none, none, none, none, none, sec(37)},
      {"retry-after beats RetryInfo and resets", 429, ms(1500), sec(20), sec(5), 0, sec(6), 0,
       ms(1500)},
      {"retry-after on a 503", 503, sec(3), none, none, none, none, none, sec(3)},
      {"retry-after 0 means now", 429, ms(0), sec(20), none, none, none, none, ms(0)},
      {"negative retry-after clamps to 0", 429, ms(-5), none, none, none, none, none, ms(0)},
      {"RetryInfo beats resets", 429, none, sec(20), sec(5), 0, none, none, sec(20)},
      {"RetryInfo on a 503", 503, none, ms(800), none, none, none, none, ms(800)},
      {"requests exhausted", 429, none, none, sec(40), 0, ms(300), 5000, sec(40)},
      {"tokens exhausted", 429, none, none, ms(200), 12, sec(6), 0, sec(6)},
      {"both exhausted: the later", 429, none, none, sec(2), 0, sec(9), 0, sec(9)},
      {"neither exhausted: the sooner", 429, none, none, sec(2), 3, sec(9), 100, sec(2)},
      {"remaining unknown: the sooner", 429, none, none, sec(7), none, sec(4), none, sec(4)},
      {"only requests reset", 429, none, none, sec(7), 3, none, none, sec(7)},
      {"only tokens reset", 429, none, none, none, none, ms(6000), 0, sec(6)},
      {"reset on a non-429 is no hint", 503, none, none, sec(2), 0, sec(9), 0, none},
      {"reset on a 200-range status is no hint", 0, none, none, sec(2), 0, none, none, none},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    providers::RateLimitInfo headers;
    headers.retry_after = row.retry_after;
    headers.requests_reset = row.requests_reset;
    headers.requests_remaining = row.requests_remaining;
    headers.tokens_reset = row.tokens_reset;
    headers.tokens_remaining = row.tokens_remaining;
    providers::ProviderError error;
    error.status = row.status;
    error.retry_delay = row.retry_delay;
    const auto got = engine::server_hint(headers, error);
    CHECK(got.has_value() == row.expected.has_value());
    if (got && row.expected) CHECK(got->count() == row.expected->count());
  }
}

TEST_CASE("decide_wait: hint beats backoff; deadline and threshold move on", "[retry]") {
  using K = WaitDecision::Kind;
  struct Row {
    const char* name;
    std::optional<Millis> hint;
    Millis backoff;
    Millis time_left;
    bool other_usable;
    K kind;
    Millis wait;
    const char* reason;
  };
  const auto none = std::nullopt;
  const std::vector<Row> rows = {
      {"backoff, no hint", none, ms(700), sec(60), true, K::retry_after, ms(700),
       "waiting backoff 700ms"},
      {"hint wins over a shorter backoff", sec(3), ms(200), sec(60), true, K::retry_after, sec(3),
       "waiting retry-after 3s"},
      {"hint wins over a longer backoff", ms(100), sec(5), sec(60), false, K::retry_after, ms(100),
       "waiting retry-after 100ms"},
      {"hint longer than the time left", sec(37), ms(500), sec(20), false, K::move_on, sec(37),
       "retry-after 37s >= time left 20s"},
      {"hint equal to the time left", sec(20), ms(500), sec(20), false, K::move_on, sec(20),
       "retry-after 20s >= time left 20s"},
      {"backoff longer than the time left", none, sec(4), sec(1), true, K::move_on, sec(4),
       "backoff 4s >= time left 1s"},
      {"deadline already passed", none, ms(0), ms(-5), false, K::move_on, ms(0),
       "backoff 0ms >= time left 0ms"},
      {"over threshold, another target usable", sec(37), ms(500), sec(120), true, K::move_on,
       sec(37), "retry-after 37s > 10s while another target is usable"},
      {"over threshold, no other target", sec(37), ms(500), sec(120), false, K::retry_after,
       sec(37), "waiting retry-after 37s (no other target is usable)"},
      {"exactly the threshold waits", sec(10), ms(500), sec(120), true, K::retry_after, sec(10),
       "waiting retry-after 10s"},
      {"just over the threshold moves on", ms(10'001), ms(500), sec(120), true, K::move_on,
       ms(10'001), "retry-after 10001ms > 10000ms while another target is usable"},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    const auto d = engine::decide_wait(row.hint, row.backoff, row.time_left,
                                       engine::kDefaultMoveOnThreshold, row.other_usable);
    CHECK(d.kind == row.kind);
    CHECK(d.wait.count() == row.wait.count());
    CHECK(d.reason == row.reason);
  }

  SECTION("a custom threshold") {
    const auto d = engine::decide_wait(sec(3), ms(0), sec(60), sec(2), true);
    CHECK(d.kind == K::move_on);
    CHECK(d.reason == "retry-after 3s > 2s while another target is usable");
  }
}

TEST_CASE("RetryBudget: failures drain it, successes refill it, capped", "[retry]") {
  // ops: f = on_failure, s = on_success, y = allow_retry() must say yes, n = must say no.
  struct Row {
    const char* name;
    double max_tokens;
    double ratio;
    const char* ops;
    double tokens_after;
  };
  const std::vector<Row> rows = {
      {"starts full", 10, 0.1, "", 10},
      {"a retry spends a token", 10, 0.1, "y", 9},
      {"four failures leave retries allowed", 10, 0.1, "ffff", 6},
      {"five failures reach half: refused", 10, 0.1, "fffffn", 5},
      {"a refusal spends nothing", 10, 0.1, "fffffnnn", 5},
      {"retries themselves drain it", 10, 0.1, "yyyyyn", 5},
      {"failed retries cost two", 10, 0.1, "yfyfyn", 5},
      {"one success above half re-allows", 10, 0.1, "fffffnsy", 4.1},
      {"successes refill slowly", 10, 0.1,
       "ffffff"
       "sssssssss"
       "n"
       "ss"
       "y",
       4.1},
      {"capped at max", 10, 0.1, "ssssssssss", 10},
      {"refill caps at max", 10, 0.1,
       "ff"
       "ssssssssssssssssssssssssssssss",
       10},
      {"floored at zero", 10, 0.1, "ffffffffffffffffffffn", 0},
      {"small bucket", 4, 0.5,
       "yfnss"
       "y",
       2},
  };
  for (const auto& row : rows) {
    INFO(row.name << " (" << row.ops << ")");
    engine::RetryBudget budget(row.max_tokens, row.ratio);
    for (const char* op = row.ops; *op != '\0'; ++op) {
      INFO("op " << (op - row.ops) << " '" << *op << "', tokens " << budget.tokens());
      switch (*op) {
        case 'f':
          budget.on_failure();
          break;
        case 's':
          budget.on_success();
          break;
        case 'y':
          CHECK(budget.allow_retry());
          break;
        case 'n':
          CHECK_FALSE(budget.allow_retry());
          break;
        default:
          FAIL("bad op");
      }
    }
    CHECK(budget.tokens() == Approx(row.tokens_after));
  }
}

TEST_CASE("is_transient: the classes worth retrying", "[retry]") {
  struct Row {
    ErrorClass c;
    bool transient;
  };
  const std::vector<Row> rows = {
      {ErrorClass::none, false},
      {ErrorClass::rate_limited, true},
      {ErrorClass::quota_exhausted, false},
      {ErrorClass::overloaded, true},
      {ErrorClass::server_error, true},
      {ErrorClass::timeout, true},
      {ErrorClass::connection, true},
      {ErrorClass::auth, false},
      {ErrorClass::not_found, false},
      {ErrorClass::bad_request, false},
      {ErrorClass::context_length, false},
      {ErrorClass::content_filter, false},
      {ErrorClass::invalid_response, true},
      {ErrorClass::empty_response, false},
      {ErrorClass::refusal, false},
      {ErrorClass::schema_mismatch, false},
      {ErrorClass::truncated, false},
      {ErrorClass::skipped_open, false},
      {ErrorClass::skipped_budget, false},
      {ErrorClass::cancelled, false},
  };
  // Every class, once: the row count follows the enum (cancelled is its last value).
  CHECK(rows.size() == static_cast<size_t>(ErrorClass::cancelled) + 1);
  for (const auto& row : rows) {
    INFO(engine::to_string(row.c));
    CHECK(engine::is_transient(row.c) == row.transient);
  }
}
