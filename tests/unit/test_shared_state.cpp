// What the engine keeps in the shared state: documents that survive a round trip, stats,
// the half-open probe claimed by exactly one caller, and state tied to the key it was
// learned with.
#include <catch2/catch.hpp>

#include "engine/shared_state.hpp"
#include "engine/target_state.hpp"

using namespace detour;
using engine::ErrorClass;

namespace {

config::ResolvedTarget target(std::string key = "sk-key-one-123456") {
  config::ResolvedTarget t;
  t.target = {"p", "m"};
  t.api_key = std::move(key);
  return t;
}

const std::chrono::steady_clock::time_point t0{std::chrono::hours(1000)};

}  // namespace

TEST_CASE("state: a target's document survives a round trip", "[state]") {
  engine::TargetState s;
  s.breaker.state = engine::BreakerSnapshot::Stored::open;
  s.breaker.open_until_ms = 123456;
  s.breaker.trips = 2;
  s.breaker.window = {{100, true}, {200, false}};
  s.key_id = "abcd0123";
  s.probe_claimed_ms = 99;
  engine::record_outcome(s.stats, ErrorClass::none, 200, "", Millis(640), Millis(120), 1000);
  engine::record_outcome(s.stats, ErrorClass::overloaded, 503, "busy", Millis(20), {}, 2000);
  auto back = engine::target_state_from_json(engine::to_json(s));
  CHECK(back.breaker == s.breaker);
  CHECK(back.key_id == s.key_id);
  CHECK(back.probe_claimed_ms == s.probe_claimed_ms);
  CHECK(back.stats.calls == 2);
  CHECK(back.stats.success_rate == Approx(0.8));
  CHECK(back.stats.latency_ms == Approx(640));
  CHECK(back.stats.latencies_ms == std::vector<std::int64_t>{640});
  CHECK(back.stats.ttft_ms == std::vector<std::int64_t>{120});
  REQUIRE(back.stats.last_error);
  CHECK(back.stats.last_error->error_class == "overloaded");
  CHECK(back.stats.last_error->status == 503);
  CHECK(back.stats.last_error->at_ms == 2000);
}

// A store shared by machines (Redis) keeps the breaker's times on the store's wall clock: each
// machine's steady clock starts at its own boot, so its raw values mean nothing elsewhere.
TEST_CASE("state: breaker times are shifted onto a shared store's clock and back", "[state]") {
  engine::TargetState s;
  s.breaker.state = engine::BreakerSnapshot::Stored::half_open;
  s.breaker.open_until_ms = 5'000;
  s.breaker.window = {{1'000, true}, {1'200, false}};
  s.probe_claimed_ms = 4'000;
  // Machine A: steady 0 is wall 1,700,000,000,000 ms. Machine B booted 9 s later than A.
  const std::int64_t shift_a = 1'700'000'000'000, shift_b = shift_a + 9'000;
  const nlohmann::json doc = engine::to_json(s, shift_a);
  CHECK(doc["breaker"]["open_until_ms"] == shift_a + 5'000);
  CHECK(doc["breaker"]["window"]["from_ms"] == shift_a + 1'000);
  CHECK(doc["probe_claimed_ms"] == shift_a + 4'000);
  CHECK(engine::target_state_from_json(doc, shift_a).breaker == s.breaker);
  // Read on B: the same moments, on B's steady clock.
  const auto on_b = engine::target_state_from_json(doc, shift_b);
  CHECK(on_b.breaker.open_until_ms == 5'000 - 9'000);
  CHECK(on_b.breaker.window.front().first == 1'000 - 9'000);
  CHECK(on_b.probe_claimed_ms == 4'000 - 9'000);
  // A store on this machine (shift 0) stores steady-clock ms as they are.
  CHECK(engine::to_json(s)["breaker"]["open_until_ms"] == 5'000);
}

// The engine's clock when machines share a store: slots and expiries on the store's clock.
TEST_CASE("state: the engine's wall clock follows a shared store's clock", "[state]") {
  Millis offset{0};
  const net::OffsetClock clock([&offset] { return offset; });
  const auto ms = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
  };
  const auto here = ms(std::chrono::system_clock::now());
  CHECK(std::abs(ms(clock.wall_now()) - here) < 1000);
  offset = Millis(-90'000);  // the server is 90 s behind this machine
  CHECK(std::abs(ms(clock.wall_now()) - (here - 90'000)) < 1000);
}

TEST_CASE("state: documents from elsewhere never break a call", "[state]") {
  for (const char* text : {"null", "[]", "42", R"({"breaker":"x","stats":{"calls":"many"}})",
                           R"({"breaker":{"state":"open","window":[[1],"x",[2,true]]}})",
                           R"({"breaker":{"window":{"from_ms":1,"after_ms":"0 x","failed":"02"}}})",
                           R"({"breaker":{"window":{"from_ms":"1","after_ms":"0","failed":"0"}}})",
                           R"({"breaker":{"window":{"from_ms":1,"after_ms":[0,1],"failed":7}}})"}) {
    INFO(text);
    auto s = engine::target_state_from_json(nlohmann::json::parse(text));
    CHECK(s.stats.calls == 0);
    CHECK(s.breaker.window.size() <= 1);
  }
}

TEST_CASE("state: the breaker window and latencies are stored packed, and older forms still read",
          "[state]") {
  engine::TargetState s;
  s.breaker.window = {{1000, false}, {1010, true}, {1020, false}};
  const nlohmann::json doc = engine::to_json(s);
  // Offsets from the oldest call in one string, outcomes in another: no JSON number per call.
  CHECK(doc["breaker"]["window"] ==
        nlohmann::json::parse(R"({"from_ms":1000,"after_ms":"0 10 20","failed":"010"})"));
  CHECK(engine::target_state_from_json(doc).breaker.window == s.breaker.window);

  // What a state file written before this format holds.
  const auto old = engine::target_state_from_json(
      nlohmann::json::parse(R"({"breaker":{"window":[[1000,false],[1010,true],[1020,false]]}})"));
  CHECK(old.breaker.window == s.breaker.window);

  // Lists of different lengths: only the calls both describe.
  const auto uneven = engine::target_state_from_json(nlohmann::json::parse(
      R"({"breaker":{"window":{"from_ms":1000,"after_ms":"0 10 20","failed":"01"}}})"));
  CHECK(uneven.breaker.window.size() == 2);

  // Latencies: packed now, a JSON array before.
  engine::TargetState timed;
  timed.stats.latencies_ms = {640, 12, 0};
  timed.stats.ttft_ms = {};
  const nlohmann::json stats = engine::to_json(timed)["stats"];
  CHECK(stats["latencies_ms"] == "640 12 0");
  CHECK(stats["ttft_ms"] == "");
  CHECK(engine::target_state_from_json(engine::to_json(timed)).stats.latencies_ms ==
        timed.stats.latencies_ms);
  CHECK(engine::target_state_from_json(
            nlohmann::json::parse(R"({"stats":{"latencies_ms":[5,6],"ttft_ms":"7 x"}})"))
            .stats.latencies_ms == std::vector<std::int64_t>{5, 6});
  CHECK(engine::target_state_from_json(nlohmann::json::parse(R"({"stats":{"ttft_ms":"7 x 9"}})"))
            .stats.ttft_ms == std::vector<std::int64_t>{7});
}

TEST_CASE("state: rate limits and rejections do not lower the success rate", "[state]") {
  engine::TargetStats stats;
  engine::record_outcome(stats, ErrorClass::rate_limited, 429, "slow", Millis(5), {}, 1);
  engine::record_outcome(stats, ErrorClass::bad_request, 400, "bad", Millis(5), {}, 2);
  engine::record_outcome(stats, ErrorClass::cancelled, {}, "", Millis(5), {}, 3);
  CHECK(stats.calls == 0);
  CHECK_FALSE(stats.success_rate);
  REQUIRE(stats.last_error);
  CHECK(stats.last_error->error_class == "bad_request");
}

TEST_CASE("state: percentiles by nearest rank, recent values only", "[state]") {
  CHECK_FALSE(engine::percentile({}, 50));
  CHECK(engine::percentile({5}, 95) == 5);
  std::vector<std::int64_t> v;
  for (int i = 1; i <= 100; ++i)
    v.push_back(i);
  CHECK(engine::percentile(v, 50) == 50);
  CHECK(engine::percentile(v, 95) == 95);
  engine::TargetStats stats;
  for (int i = 0; i < 100; ++i)
    engine::record_outcome(stats, ErrorClass::none, 200, "", Millis(i), {}, i);
  CHECK(stats.latencies_ms.size() == engine::TargetStats::kRecent);
  CHECK(stats.latencies_ms.front() == 100 - static_cast<int>(engine::TargetStats::kRecent));
}

TEST_CASE("state: key fingerprints are short, stable and never the key", "[state]") {
  const std::string key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
  const std::string id = engine::key_fingerprint(key);
  CHECK(id.size() == 8);
  CHECK(id == engine::key_fingerprint(key));
  CHECK(id != engine::key_fingerprint(key + "x"));
  CHECK(key.find(id) == std::string::npos);
  CHECK(engine::key_fingerprint("").empty());
}

// A gate decision as a call makes it: inside a sync of its process, against the store as it is.
engine::Gate synced_gate(engine::SharedState& state, const config::ResolvedTarget& t,
                         std::chrono::steady_clock::time_point now) {
  engine::Gate gate;
  state.in_sync([&] { gate = state.gate(t, now, Millis(60'000)); });
  return gate;
}

TEST_CASE("state: of two processes, exactly one gets the half-open probe", "[state]") {
  auto store = state::make_memory_store();
  engine::SharedState one(*store), two(*store);
  const auto t = target();
  for (int i = 0; i < 3; ++i)
    one.record(t, ErrorClass::connection, {}, "refused", Millis(1), {}, t0, 0);
  one.flush();                                   // the end of one's turn
  CHECK_FALSE(synced_gate(two, t, t0).allowed);  // open, seen by the other process

  const auto later = t0 + Millis(30'000);
  auto first = synced_gate(one, t, later);
  auto second = synced_gate(two, t, later);
  CHECK(first.allowed);
  CHECK(first.probe);
  CHECK_FALSE(second.allowed);
  REQUIRE(second.cause);
  CHECK(second.cause->error_class == "connection");

  SECTION("a probe claim whose process died is taken over after the probe timeout") {
    auto much_later = later + Millis(60'001);
    CHECK(synced_gate(two, t, much_later).probe);
  }
  SECTION("the probe's success closes the circuit for everyone") {
    one.record(t, ErrorClass::none, 200, "", Millis(10), {}, later, 0);
    one.flush();
    CHECK(synced_gate(two, t, later).allowed);
    CHECK_FALSE(synced_gate(two, t, later).probe);
  }
}

TEST_CASE("state: a new API key starts with a closed circuit", "[state]") {
  auto store = state::make_memory_store();
  engine::SharedState state(*store);
  state.record(target(), ErrorClass::auth, 401, "bad key", Millis(1), {}, t0, 0);
  state.flush();  // an outcome is seen once the turn it came in has synced
  CHECK_FALSE(state.gate(target(), t0 + Millis(1000), Millis(60'000)).allowed);
  CHECK(state.gate(target("sk-key-two-654321"), t0 + Millis(1000), Millis(60'000)).allowed);
  // The stats describe the target, not the key: they stay.
  CHECK(state.load(target("sk-key-two-654321")).stats.last_error);
}

TEST_CASE("state: the retry budget is shared, spent by retries, refilled by successes", "[state]") {
  auto store = state::make_memory_store();
  engine::SharedState one(*store), two(*store);
  CHECK(one.can_retry("p"));
  for (int i = 0; i < 5; ++i)
    one.budget_outcome("p", ErrorClass::server_error);
  one.flush();
  CHECK_FALSE(two.can_retry("p"));  // 5 of 10 left: retries stop at half
  CHECK_FALSE(two.spend_retry("p"));
  one.budget_outcome("p", ErrorClass::bad_request);  // not transient: costs nothing
  for (int i = 0; i < 10; ++i)
    two.budget_outcome("p", ErrorClass::none);
  two.flush();
  // One's view is as of its last sync; a call reads the budget after one.
  bool can = false, spent = false;
  one.in_sync([&] {
    can = one.can_retry("p");
    spent = one.spend_retry("p");
  });
  CHECK(can);
  CHECK(spent);
}

TEST_CASE("state: round-robin turns count up across processes", "[state]") {
  auto store = state::make_memory_store();
  engine::SharedState one(*store), two(*store);
  CHECK(one.take_turn("r") == 0);
  CHECK(two.take_turn("r") == 1);
  CHECK(one.take_turn("r") == 2);
  CHECK(one.take_turn("other") == 0);
}
