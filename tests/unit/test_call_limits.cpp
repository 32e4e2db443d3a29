// The limiter inside a Call, on the fake transport and clock: pacing across calls, passing a
// busy target over for one with capacity, waiting when none has, requests too large for a
// target, limits learned from headers, and a 429's reset honoured once.
#include "call_fixture.hpp"
#include "engine/driver.hpp"

using namespace detour;
using namespace detour::testing::call;
using detour::testing::FakeClock;
using detour::testing::FakeReply;
using detour::testing::FakeTransport;
using engine::ErrorClass;

namespace {

// Runs the calls on one driver, at most `in_flight` at a time in order (as batch does).
std::vector<engine::CallResult> run_together(Fixture& f, FakeTransport& transport, FakeClock& clock,
                                             std::vector<engine::CallSpec> specs,
                                             engine::CallObserver& observer,
                                             std::size_t in_flight) {
  std::vector<engine::CallResult> results(specs.size());
  std::size_t next = 0;
  const engine::CallContext context{transport, clock, *f.state, f.rng};
  engine::Driver driver(transport, in_flight, [&]() -> std::unique_ptr<engine::Job> {
    if (next == specs.size()) return nullptr;
    const std::size_t id = next++;
    return std::make_unique<engine::CallJob>(
        context, specs[id], observer, [&results, id](engine::CallResult r) { results[id] = r; });
  });
  driver.run();
  return results;
}

}  // namespace

TEST_CASE("call limits: a configured rpm paces consecutive calls", "[call][limits]") {
  Fixture f({"a"});
  f.provider.rpm = 60;
  f.provider.burst = 1;
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest&) { return ok_reply("ok"); });
  Recorder rec;
  auto first = f.run(transport, clock, f.spec(), rec);
  REQUIRE(first.ok);
  CHECK(first.attempts[0].waited == Millis(0));
  // 20 ms later: 980 ms to go, and the margin that keeps a paced request off its slot's edge.
  auto second = f.run(transport, clock, f.spec(), rec);
  REQUIRE(second.ok);
  CHECK(second.attempts[0].waited == Millis(980) + engine::kSlotMargin);
  CHECK_THAT(rec.notes.back(),
             Catch::Equals("waiting 990ms for capacity at mock/a: requests per minute of mock "
                           "(60/min)"));
}

TEST_CASE("call limits: a target without capacity is passed over for one with some",
          "[call][limits]") {
  Fixture f({"a", "b"});
  f.chain.targets[0].model.rpm = 60;
  f.chain.targets[0].model.burst = 1;
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) { return ok_reply(model_of(r)); });
  Recorder rec;
  REQUIRE(f.run(transport, clock, f.spec(), rec).target->target.model == "a");
  auto busy = f.run(transport, clock, f.spec(), rec);
  REQUIRE(busy.ok);
  CHECK(busy.target->target.model == "b");
  REQUIRE(busy.attempts.size() == 2);
  CHECK(busy.attempts[0].error == ErrorClass::skipped_budget);
  CHECK_FALSE(busy.attempts[0].status);
  CHECK_THAT(busy.attempts[0].message,
             Catch::StartsWith("no capacity for 980ms: requests per minute of mock/a"));
  CHECK(rec.decisions[rec.decisions.size() - 2] == "next target mock/b");
  CHECK(transport.requests.size() == 2);  // nothing was sent to `a` the second time
}

TEST_CASE("call limits: with no capacity anywhere the call waits if the deadline allows",
          "[call][limits]") {
  Fixture f({"a"});
  f.provider.rpm = 6;  // one every 10 s
  f.provider.burst = 1;
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest&) { return ok_reply("ok"); });
  Recorder rec;
  REQUIRE(f.run(transport, clock, f.spec(), rec).ok);
  auto spec = f.spec();
  spec.deadline = Millis(60'000);
  auto waited = f.run(transport, clock, spec, rec);
  REQUIRE(waited.ok);
  CHECK(waited.attempts[0].waited == Millis(9980) + engine::kSlotMargin);

  auto short_deadline = f.spec();  // 5 s: the next slot is 10 s away
  auto result = f.run(transport, clock, short_deadline, rec);
  CHECK_FALSE(result.ok);
  CHECK(result.error == ErrorClass::rate_limited);
  REQUIRE(result.attempts.size() == 1);
  CHECK(result.attempts[0].error == ErrorClass::skipped_budget);
  CHECK(engine::exit_code_for_failure(result) == 1);
  CHECK(transport.requests.size() == 2);
}

TEST_CASE("call limits: with no capacity anywhere the call goes where a slot comes sooner",
          "[call][limits]") {
  // Two targets of one route, one slow and one fast: once both are busy, a call waits for
  // the fast one's next slot rather than queueing at the first (what lets two targets of R
  // a minute carry about 2R, tests/bench/run P4).
  Fixture f({"a", "b"});
  f.chain.targets[0].model.rpm = 6;  // one every 10 s
  f.chain.targets[0].model.burst = 1;
  f.chain.targets[1].model.rpm = 60;  // one a second
  f.chain.targets[1].model.burst = 1;
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) { return ok_reply(model_of(r)); });
  Recorder rec;
  auto spec = [&] {
    auto s = f.spec();
    s.deadline = Millis(60'000);
    return s;
  };
  REQUIRE(f.run(transport, clock, spec(), rec).target->target.model == "a");
  REQUIRE(f.run(transport, clock, spec(), rec).target->target.model == "b");  // `a` is busy
  auto third = f.run(transport, clock, spec(), rec);  // `a` in 9.96 s, `b` in 0.98 s
  REQUIRE(third.ok);
  CHECK(third.target->target.model == "b");
  REQUIRE(third.attempts.size() == 2);
  CHECK(third.attempts[0].error == ErrorClass::skipped_budget);
  CHECK(third.attempts[1].waited == Millis(980) + engine::kSlotMargin);
  CHECK(transport.requests.size() == 3);
}

TEST_CASE("call limits: a call that reserves only a little ahead leaves the next slot to others",
          "[call][limits]") {
  // A batch line (reserve_ahead) and a one-off call started with it: the one-off gets the next
  // slot, the batch line the one after (tests/bench/run P8). Without reserve_ahead the batch
  // line, started first, would take the next slot and the one-off would wait two intervals.
  Fixture f({"a"});
  f.provider.rpm = 60;
  f.provider.burst = 1;
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest&) { return ok_reply("ok"); });
  Recorder rec;
  for (const bool batch_line_reserves_ahead : {false, true}) {
    CAPTURE(batch_line_reserves_ahead);
    clock.advance(Millis(5000));  // a full bucket, which one call empties for 980 ms
    REQUIRE(f.run(transport, clock, f.spec(), rec).ok);
    std::vector<engine::CallSpec> specs(2, f.spec());
    if (batch_line_reserves_ahead) specs[0].reserve_ahead = Millis(200);
    const auto results = run_together(f, transport, clock, specs, rec, 2);
    REQUIRE(results[0].ok);
    REQUIRE(results[1].ok);
    const Millis first_slot = Millis(980) + engine::kSlotMargin;
    if (batch_line_reserves_ahead) {
      CHECK(results[1].attempts[0].waited == first_slot);
      CHECK(results[0].attempts[0].waited > Millis(1900));
    } else {
      CHECK(results[0].attempts[0].waited == first_slot);
      CHECK(results[1].attempts[0].waited > Millis(1900));
    }
  }
}

TEST_CASE("call limits: calls waiting unreserved go to whichever target's slot is next",
          "[call][limits]") {
  // Forty batch-like calls (reserve_ahead), eight in flight, on a route of two targets of 60 a
  // minute: the waiting calls keep choosing between both, so each carries half and the run
  // takes the time of 2R. (That a call holding off at the second target looks back at the
  // first is P4's to catch: on this fake clock the calls never drift apart.)
  Fixture f({"a", "b"});
  for (auto& t : f.chain.targets) {
    t.model.rpm = 60;
    t.model.burst = 1;
  }
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) { return ok_reply(model_of(r)); });
  Recorder rec;
  const auto began = clock.now();
  engine::CallSpec spec = f.spec();
  spec.deadline = Millis(60'000);
  spec.reserve_ahead = Millis(200);
  const auto results = run_together(f, transport, clock, std::vector(40, spec), rec, 8);
  std::map<std::string, int> by_target;
  for (const auto& r : results) {
    REQUIRE(r.ok);
    ++by_target[r.target->target.model];
  }
  CHECK(by_target["a"] == 20);
  CHECK(by_target["b"] == 20);
  CHECK(clock.now() - began < Millis(20'500));
}

TEST_CASE("call limits: a request larger than a target's whole minute goes elsewhere",
          "[call][limits]") {
  Fixture f({"small", "big"});
  f.chain.targets[0].model.tpm = 100;
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) { return ok_reply(model_of(r)); });
  Recorder rec;
  auto spec = f.spec();
  spec.request.max_tokens = 500;
  auto result = f.run(transport, clock, spec, rec);
  REQUIRE(result.ok);
  CHECK(result.target->target.model == "big");
  CHECK(result.attempts[0].error == ErrorClass::skipped_budget);
  CHECK_THAT(result.attempts[0].message, Catch::Contains("tokens-per-minute limit of mock/small"));

  Fixture alone({"small"});
  alone.chain.targets[0].model.tpm = 100;
  auto only = alone.spec();
  only.request.max_tokens = 500;
  auto failed = alone.run(transport, clock, only, rec);
  CHECK_FALSE(failed.ok);
  CHECK(failed.error == ErrorClass::bad_request);  // it must change before any retry helps
  CHECK(engine::exit_code_for_failure(failed) == 4);
}

TEST_CASE("call limits: limits learned from one reply pace the next call", "[call][limits]") {
  Fixture f({"a"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest&) {
    FakeReply r = ok_reply("ok");
    r.headers = {{"x-ratelimit-limit-requests", "60"},
                 {"x-ratelimit-remaining-requests", "0"},
                 {"x-ratelimit-reset-requests", "1s"}};
    return r;
  });
  Recorder rec;
  REQUIRE(f.run(transport, clock, f.spec(), rec).ok);
  auto next = f.run(transport, clock, f.spec(), rec);
  REQUIRE(next.ok);
  CHECK(next.attempts[0].waited == Millis(1000) + engine::kSlotMargin);
}

TEST_CASE("call limits: a 429's retry-after is waited once, not twice", "[call][limits]") {
  Fixture f({"a"});
  FakeClock clock;
  int calls = 0;
  FakeTransport transport(clock, [&](const net::HttpRequest&) {
    return ++calls == 1 ? error_reply(429, "requests", "rate_limit_exceeded", "slow down",
                                      {{"retry-after", "3"}})
                        : ok_reply("ok");
  });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 1;
  auto result = f.run(transport, clock, spec, rec);
  REQUIRE(result.ok);
  REQUIRE(result.attempts.size() == 2);
  CHECK(result.attempts[1].waited == Millis(3000));
  CHECK(result.latency < Millis(3100));
}

TEST_CASE("call limits: a refused connection gives its reservation back", "[call][limits]") {
  Fixture f({"dead", "live"});
  f.provider.rpm = 60;
  f.provider.burst = 2;
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "dead" ? refused() : ok_reply("ok");
  });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  REQUIRE(result.ok);  // dead (given back), then live: one request of the burst spent
  auto again = f.run(transport, clock, f.spec(), rec);
  REQUIRE(again.ok);
  CHECK(again.attempts.back().waited == Millis(0));
}
