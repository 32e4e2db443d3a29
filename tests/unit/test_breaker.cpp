// The circuit breaker (docs/architecture.md, "Circuit breakers"), scenario by scenario: each row is
// a sequence of recorded outcomes, allow() calls and expectations at given times (seconds after an
// arbitrary start). Every row runs twice: on one breaker, and through a snapshot/restore round trip
// before every step, which must not change any answer.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "engine/breaker.hpp"

using namespace detour;
using engine::BreakerConfig;
using engine::BreakerSnapshot;
using engine::CircuitBreaker;
using engine::ErrorClass;
using State = CircuitBreaker::State;

namespace {

const CircuitBreaker::time_point kStart = CircuitBreaker::time_point{} + std::chrono::hours(1000);

CircuitBreaker::time_point at(double seconds) {
  return kStart + Millis(static_cast<std::int64_t>(seconds * 1000.0));
}

enum class Op { record, allow, expect };

struct Step {
  Op op = Op::expect;
  double t = 0;
  ErrorClass outcome = ErrorClass::none;
  bool allowed = false;
  State state = State::closed;
  std::optional<double> open_until = std::nullopt;  // expect: nullopt means "closed, no cooldown"
  int trips = -1;                                   // expect: -1 means "not checked"
};

Step rec(double t, ErrorClass c) {
  Step s;
  s.op = Op::record;
  s.t = t;
  s.outcome = c;
  return s;
}
Step allow(double t, bool allowed) {
  Step s;
  s.op = Op::allow;
  s.t = t;
  s.allowed = allowed;
  return s;
}
Step expect(double t, State state, std::optional<double> open_until = std::nullopt,
            int trips = -1) {
  Step s;
  s.op = Op::expect;
  s.t = t;
  s.state = state;
  s.open_until = open_until;
  s.trips = trips;
  return s;
}

constexpr auto ok = ErrorClass::none;
constexpr auto fail = ErrorClass::server_error;

struct Row {
  const char* name;
  std::vector<Step> steps;
  BreakerConfig config = {};
};

std::vector<Row> rows() {
  BreakerConfig custom;
  custom.consecutive_failures = 5;
  custom.failure_rate = 0.75;
  custom.min_calls = 4;

  return {
      {"3 consecutive failures open it for 30 s",
       {rec(0, fail), rec(1, ErrorClass::timeout), expect(1, State::closed), allow(1, true),
        rec(2, ErrorClass::connection), expect(2, State::open, 32, 1), allow(2, false),
        allow(31.999, false), expect(31.999, State::open, 32), expect(32, State::half_open, 32)}},
      {"a success in between resets the consecutive count",
       {rec(0, fail), rec(1, fail), rec(2, ok), rec(3, fail), rec(4, fail),
        expect(4, State::closed), rec(5, fail), expect(5, State::open, 35)}},
      {"rate rule: 4 fail + 4 ok stays closed (min_calls), 5 fail + 5 ok opens",
       {rec(0, fail), rec(1, ok), rec(2, fail), rec(3, ok), rec(4, fail), rec(5, ok), rec(6, fail),
        rec(7, ok), expect(7, State::closed), rec(8, ok), expect(8, State::closed), rec(9, fail),
        expect(9, State::open, 39, 1)}},
      {"rate rule: 4 fail + 6 ok (40%) stays closed",
       {rec(0, fail), rec(1, ok), rec(2, fail), rec(3, ok), rec(4, fail), rec(5, ok), rec(6, ok),
        rec(7, ok), rec(8, ok), rec(9, fail), expect(9, State::closed), allow(9, true)}},
      {"rate rule: calls older than the window are ignored",
       {rec(0, fail), rec(1, ok), rec(2, fail), rec(3, ok), rec(4, fail), rec(5, ok), rec(6, fail),
        rec(7, ok), rec(8, ok), rec(66.5, fail), expect(66.5, State::closed)}},
      {"rate rule: a call exactly one window old has left it",
       {rec(0, fail), rec(1, ok), rec(2, fail), rec(3, ok), rec(4, fail), rec(5, ok), rec(6, fail),
        rec(7, ok), rec(8, ok), rec(60, fail), expect(60, State::closed)}},
      {"rate rule: a call just inside the window still counts",
       {rec(0, fail), rec(1, ok), rec(2, fail), rec(3, ok), rec(4, fail), rec(5, ok), rec(6, fail),
        rec(7, ok), rec(8, ok), rec(59.999, fail), expect(59.999, State::open, 89.999)}},
      {"rate rule with configured thresholds: 3 of 4 failed at 75% opens",
       {rec(0, fail), rec(1, ok), rec(2, fail), expect(2, State::closed), rec(3, fail),
        expect(3, State::open, 33)},
       custom},
      {"rate_limited never opens it",
       {rec(0, ErrorClass::rate_limited), rec(1, ErrorClass::rate_limited),
        rec(2, ErrorClass::rate_limited), rec(3, ErrorClass::rate_limited),
        rec(4, ErrorClass::rate_limited), rec(5, ErrorClass::rate_limited),
        rec(6, ErrorClass::rate_limited), rec(7, ErrorClass::rate_limited),
        rec(8, ErrorClass::rate_limited), rec(9, ErrorClass::rate_limited),
        rec(10, ErrorClass::rate_limited), expect(10, State::closed, std::nullopt, 0),
        allow(10, true)}},
      {"rate_limited between failures neither counts nor resets the run",
       {rec(0, fail), rec(1, ErrorClass::rate_limited), rec(2, fail),
        rec(3, ErrorClass::rate_limited), expect(3, State::closed), rec(4, fail),
        expect(4, State::open, 34)}},
      {"request rejections, cancellation and not_found are not health failures",
       {rec(0, ErrorClass::bad_request), rec(1, ErrorClass::context_length),
        rec(2, ErrorClass::content_filter), rec(3, ErrorClass::cancelled),
        rec(4, ErrorClass::not_found), rec(5, ErrorClass::bad_request),
        rec(6, ErrorClass::bad_request), rec(7, ErrorClass::cancelled),
        rec(8, ErrorClass::not_found), rec(9, ErrorClass::content_filter),
        rec(10, ErrorClass::context_length), expect(10, State::closed), allow(10, true)}},
      {"validation failures count as health failures",
       {rec(0, ErrorClass::empty_response), rec(1, ErrorClass::refusal),
        rec(2, ErrorClass::schema_mismatch), expect(2, State::open, 32)}},
      {"truncated, invalid_response and overloaded count as health failures",
       {rec(0, ErrorClass::truncated), rec(1, ErrorClass::invalid_response),
        rec(2, ErrorClass::overloaded), expect(2, State::open, 32)}},
      {"quota_exhausted opens it at once for the long cooldown",
       {rec(0, ok), rec(5, ErrorClass::quota_exhausted), expect(5, State::open, 3605, 1),
        allow(3604.999, false), expect(3605, State::half_open, 3605), allow(3605, true)}},
      {"auth opens it at once for the long cooldown",
       {rec(5, ErrorClass::auth), expect(5, State::open, 3605), allow(100, false)}},
      {"auth while open extends a short cooldown to the long one",
       {rec(0, fail), rec(0, fail), rec(0, fail), expect(0, State::open, 30),
        rec(10, ErrorClass::auth), expect(10, State::open, 3610)}},
      {"quota_exhausted as the probe's outcome re-opens for the long cooldown",
       {rec(0, fail), rec(0, fail), rec(0, fail), allow(30, true),
        rec(31, ErrorClass::quota_exhausted), expect(31, State::open, 3631)}},
      {"cooldown doubles on each consecutive trip, capped at 10 min",
       {rec(0, fail),
        rec(0, fail),
        rec(0, fail),
        expect(0, State::open, 30, 1),
        allow(30, true),
        rec(30, fail),
        expect(30, State::open, 90, 2),
        allow(90, true),
        rec(90, ErrorClass::timeout),
        expect(90, State::open, 210, 3),
        allow(210, true),
        rec(210, fail),
        expect(210, State::open, 450, 4),
        allow(450, true),
        rec(450, fail),
        expect(450, State::open, 930, 5),
        allow(930, true),
        rec(930, fail),
        expect(930, State::open, 1530, 6),
        allow(1530, true),
        rec(1530, fail),
        expect(1530, State::open, 2130, 7)}},
      {"half-open lets exactly one probe through",
       {rec(0, fail), rec(0, fail), rec(0, fail), allow(29, false), allow(30, true),
        allow(30, false), allow(40, false), expect(40, State::half_open, 30), rec(45, ok),
        expect(45, State::closed, std::nullopt, 0), allow(45, true), allow(45, true)}},
      {"probe success closes and resets the cooldown to 30 s",
       {rec(0, fail), rec(0, fail), rec(0, fail), allow(30, true), rec(30, fail),
        expect(30, State::open, 90), allow(90, true), rec(91, ok),
        expect(91, State::closed, std::nullopt, 0), rec(100, fail), rec(101, fail),
        expect(101, State::closed), rec(102, fail), expect(102, State::open, 132, 1)}},
      {"an inconclusive probe (rate_limited) frees the slot for another",
       {rec(0, fail), rec(0, fail), rec(0, fail), allow(30, true), allow(30, false),
        rec(31, ErrorClass::rate_limited), expect(31, State::half_open, 30), allow(31, true),
        allow(31, false)}},
      {"late outcomes while open change nothing",
       {rec(0, fail), rec(0, fail), rec(0, fail), rec(10, fail), rec(11, ok),
        expect(11, State::open, 30, 1), allow(30, true)}},
  };
}

void check(const Step& s, CircuitBreaker& b, std::size_t i) {
  INFO("step " << i << " at t=" << s.t);
  switch (s.op) {
    case Op::record:
      b.record(s.outcome, at(s.t));
      break;
    case Op::allow:
      CHECK(b.allow(at(s.t)) == s.allowed);
      break;
    case Op::expect:
      CHECK(engine::to_string(b.state(at(s.t))) == engine::to_string(s.state));
      if (s.open_until) {
        REQUIRE(b.open_until().has_value());
        CHECK(*b.open_until() == at(*s.open_until));
      } else {
        CHECK_FALSE(b.open_until().has_value());
      }
      if (s.trips >= 0) CHECK(b.trips() == s.trips);
      break;
  }
}

}  // namespace

TEST_CASE("circuit breaker scenarios", "[breaker]") {
  for (const Row& row : rows()) {
    SECTION(row.name) {
      CircuitBreaker b(row.config);
      for (std::size_t i = 0; i < row.steps.size(); ++i)
        check(row.steps[i], b, i);
    }
  }
}

TEST_CASE("circuit breaker scenarios survive a snapshot/restore before every step", "[breaker]") {
  for (const Row& row : rows()) {
    SECTION(row.name) {
      CircuitBreaker b(row.config);
      for (std::size_t i = 0; i < row.steps.size(); ++i) {
        const BreakerSnapshot snap = b.snapshot();
        b = CircuitBreaker::restore(snap, row.config, at(row.steps[i].t));
        check(row.steps[i], b, i);
      }
    }
  }
}

TEST_CASE("snapshot holds plain values and restores to an equal snapshot", "[breaker]") {
  CircuitBreaker b;
  b.record(ErrorClass::server_error, at(0));
  b.record(ErrorClass::none, at(1));
  b.record(ErrorClass::timeout, at(2));

  BreakerSnapshot s = b.snapshot();
  CHECK(s.state == BreakerSnapshot::Stored::closed);
  CHECK_FALSE(s.open_until_ms.has_value());
  CHECK(s.consecutive_failures == 1);
  CHECK(s.trips == 0);
  const std::int64_t base = std::chrono::duration_cast<Millis>(kStart.time_since_epoch()).count();
  const std::vector<std::pair<std::int64_t, bool>> window = {
      {base, true}, {base + 1000, false}, {base + 2000, true}};
  CHECK(s.window == window);
  CHECK(CircuitBreaker::restore(s, {}, at(2)).snapshot() == s);

  // Trip it, take a probe: the probe in flight is part of the state.
  b.record(ErrorClass::server_error, at(3));
  b.record(ErrorClass::server_error, at(4));
  REQUIRE(b.allow(at(34)));
  s = b.snapshot();
  CHECK(s.state == BreakerSnapshot::Stored::half_open);
  REQUIRE(s.open_until_ms.has_value());
  CHECK(*s.open_until_ms == base + 34'000);
  CHECK(s.trips == 1);
  CHECK(s.window.empty());
  CircuitBreaker r = CircuitBreaker::restore(s, {}, at(35));
  CHECK(r.snapshot() == s);
  CHECK_FALSE(r.allow(at(35)));
}

TEST_CASE("restore guards against a snapshot from before a reboot", "[breaker]") {
  // steady_clock restarts at boot: times from the old boot can lie far in the future.
  BreakerSnapshot s;
  s.state = BreakerSnapshot::Stored::open;
  const std::int64_t now_ms = std::chrono::duration_cast<Millis>(kStart.time_since_epoch()).count();
  s.open_until_ms = now_ms + 100LL * 24 * 3600 * 1000;  // 100 days ahead
  s.trips = 2;
  s.window = {{now_ms - 1000, true}, {now_ms + 50'000'000, true}};
  CircuitBreaker b = CircuitBreaker::restore(s, {}, kStart);
  REQUIRE(b.open_until().has_value());
  CHECK(*b.open_until() == kStart + BreakerConfig{}.long_cooldown);
  CHECK(b.trips() == 2);
  CHECK(b.window_calls() == 1);
}

TEST_CASE("the window stays bounded", "[breaker]") {
  BreakerConfig c;
  c.consecutive_failures = 1'000'000;
  c.min_calls = 1'000'000;
  CircuitBreaker b(c);
  for (int i = 0; i < 5000; ++i)
    b.record(ErrorClass::none, at(i * 0.001));
  CHECK(b.window_calls() == CircuitBreaker::kMaxWindowCalls);
  b.record(ErrorClass::server_error, at(200));  // everything before 140 s has left the window
  CHECK(b.window_calls() == 1);
}

TEST_CASE("breaker states have names", "[breaker]") {
  CHECK(engine::to_string(State::closed) == "closed");
  CHECK(engine::to_string(State::open) == "open");
  CHECK(engine::to_string(State::half_open) == "half_open");
}
