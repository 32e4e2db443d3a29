// What calls cost the shared state, counted in store transactions on a real SQLite file: a
// one-shot call's success and failure paths, and calls waiting for in-flight slots, which are
// woken by settlements (or one re-check timer for the process) instead of each polling the
// store. Also what a call must not leave behind when it ends mid-wait or mid-hedge.
#include "call_fixture.hpp"
#include "counting_store.hpp"
#include "state/view.hpp"
#include "store_fixture.hpp"

using namespace detour;
using namespace detour::testing::call;
using detour::testing::CountingStore;
using detour::testing::FakeClock;
using detour::testing::FakeReply;
using detour::testing::FakeTransport;
using detour::testing::store::TempDir;
using engine::ErrorClass;

namespace {

// The fixture's chain on a counted SQLite state file.
CountingStore& count_on_sqlite(Fixture& f, const TempDir& dir) {
  auto counting = std::make_unique<CountingStore>(state::make_sqlite_store(dir / "state.db"));
  CountingStore& counted = *counting;
  f.state.reset();
  f.store = std::move(counting);
  f.state = std::make_unique<engine::SharedState>(*f.store);
  return counted;
}

struct Reports {
  int count = 0;
  engine::CallResult last;
  std::uint64_t transactions_at_report = 0;
};

// Starts n calls of the fixture's chain at once on one loop, each with a minute to wait;
// `report(i, result)` hears call i.
std::vector<std::unique_ptr<engine::Call>> start_calls(
    Fixture& f, FakeTransport& transport, FakeClock& clock, Recorder& rec, int n,
    std::function<void(int, engine::CallResult)> report) {
  std::vector<std::unique_ptr<engine::Call>> calls;
  for (int i = 0; i < n; ++i) {
    auto spec = f.spec();
    spec.deadline = Millis(60'000);
    calls.push_back(std::make_unique<engine::Call>(
        engine::CallContext{transport, clock, *f.state, f.rng}, spec, rec,
        [report, i](engine::CallResult r) { report(i, std::move(r)); }));
    calls.back()->start();
  }
  return calls;
}

}  // namespace

TEST_CASE("state cost: a one-shot call does one transaction before its attempt, one after",
          "[call][view]") {
  TempDir dir;
  Fixture f({"a", "b"});
  CountingStore& store = count_on_sqlite(f, dir);
  FakeClock clock;
  std::vector<std::uint64_t> at_request;
  FakeTransport transport(clock, [&](const net::HttpRequest&) {
    at_request.push_back(store.transactions());
    return ok_reply("ok");
  });
  Recorder rec;
  Reports reports;
  engine::Call call({transport, clock, *f.state, f.rng}, f.spec(), rec, [&](engine::CallResult r) {
    ++reports.count;
    reports.last = std::move(r);
    reports.transactions_at_report = store.transactions();
  });
  call.start();
  transport.run();
  REQUIRE(reports.last.ok);
  // Planning (the chain's state read in the transaction) and the reservation: one.
  CHECK(at_request == std::vector<std::uint64_t>{1});
  // Nothing between the reply and the report: the outcome waits for the end of the turn
  // (for `ask`, until after the answer is printed: the next test).
  CHECK(reports.transactions_at_report == 1);
  CHECK(store.transactions() == 2);
  CHECK(store.reads == 0);
  // And it did land: the next process sees the success.
  engine::SharedState next(*f.store);
  CHECK(next.load(f.chain.targets[0]).stats.calls == 1);
}

// `ask`'s path: run_call returns with the answer before the outcome's transaction, which the
// caller's flush() makes once it has printed (README, "What a call costs the state"). The
// driver ends the loop at the report, so the state's sync due in the same turn does not run
// first; with retries on, as users run it.
TEST_CASE("state cost: run_call returns before the outcome's transaction; flush() writes it",
          "[call][view][driver]") {
  TempDir dir;
  Fixture f({"a", "b"});
  CountingStore& store = count_on_sqlite(f, dir);
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest&) { return ok_reply("ok"); });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 2;
  engine::CallResult result =
      engine::run_call({transport, clock, *f.state, f.rng}, std::move(spec), rec);
  REQUIRE(result.ok);
  CHECK(store.transactions() == 1);  // the reservation only
  f.state->flush();
  CHECK(store.transactions() == 2);
  CHECK(transport.pending_timers() == 0);
  engine::SharedState next(*f.store);
  CHECK(next.load(f.chain.targets[0]).stats.calls == 1);
}

TEST_CASE("state cost: a failed attempt adds its outcome and the retry's reservation",
          "[call][view]") {
  TempDir dir;
  Fixture f({"a"});
  CountingStore& store = count_on_sqlite(f, dir);
  FakeClock clock;
  std::vector<std::uint64_t> at_request;
  FakeTransport transport(clock, [&](const net::HttpRequest&) {
    at_request.push_back(store.transactions());
    if (at_request.size() == 1) return error_reply(503, "server_error", "", "busy");
    return ok_reply("ok");
  });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 2;
  Reports reports;
  engine::Call call({transport, clock, *f.state, f.rng}, spec, rec, [&](engine::CallResult r) {
    ++reports.count;
    reports.last = std::move(r);
    reports.transactions_at_report = store.transactions();
  });
  call.start();
  transport.run();
  REQUIRE(reports.last.ok);
  // 1: plan and reserve. 2: the 503's outcome, at the end of its turn. 3: the retry's
  // reservation when its backoff ends. 4: the answer's outcome, after the report.
  CHECK(at_request == std::vector<std::uint64_t>{1, 3});
  CHECK(reports.transactions_at_report == 3);
  CHECK(store.transactions() == 4);
}

TEST_CASE("state cost: calls waiting for a slot are woken by settlements, not by polling",
          "[call][view][limits]") {
  TempDir dir;
  Fixture f({"a"});
  f.chain.targets[0].model.concurrency = 1;
  CountingStore& store = count_on_sqlite(f, dir);
  FakeClock clock;
  int in_flight = 0, most = 0;
  FakeTransport transport(clock, [&](const net::HttpRequest&) {
    most = std::max(most, ++in_flight);
    FakeReply r = ok_reply("ok");
    r.latency = Millis(100);
    return r;
  });
  Recorder rec;
  constexpr int kCalls = 20;
  std::vector<Reports> reports(kCalls);
  auto calls = start_calls(f, transport, clock, rec, kCalls, [&](int i, engine::CallResult r) {
    --in_flight;
    ++reports[i].count;
    reports[i].last = std::move(r);
  });
  transport.run();
  for (const auto& r : reports) {
    CHECK(r.count == 1);
    CHECK(r.last.ok);
  }
  CHECK(most == 1);
  // 2 s of waiting for 19 calls: polling every 20 ms would be ~1,900 transactions. Each
  // settlement's sync wakes the waiters and admits the next: about one per call.
  CHECK(store.transactions() <= 2 * kCalls + 2);
  CHECK(transport.pending_timers() == 0);
}

TEST_CASE("state cost: slots other processes hold are re-checked by one timer per process",
          "[call][view][limits]") {
  TempDir dir;
  Fixture f({"a"});
  f.chain.targets[0].model.concurrency = 1;
  CountingStore& store = count_on_sqlite(f, dir);
  FakeClock clock;
  const double now_ms = static_cast<double>(
      std::chrono::duration_cast<Millis>(clock.wall_now().time_since_epoch()).count());
  // Another process holds the one slot; it died, so its count expires in 1 s.
  store.update(engine::limits_key("mock"), [&](nlohmann::json& doc) {
    doc["targets"]["a"]["in_flight"]["other-process"] = {{"n", 1}, {"until", now_ms + 1000}};
  });
  store.reads = store.writes = 0;
  FakeTransport transport(clock, [&](const net::HttpRequest&) { return ok_reply("ok"); });
  Recorder rec;
  constexpr int kCalls = 10;
  int reported = 0;
  auto calls = start_calls(f, transport, clock, rec, kCalls, [&](int, engine::CallResult r) {
    CHECK(r.ok);
    ++reported;
  });
  transport.run();
  CHECK(reported == kCalls);
  // 1 s at one re-check per 20 ms for the whole process is ~50 transactions; ten calls
  // polling on their own would make ~500.
  CHECK(store.transactions() <= 1000 / 20 + 2 * kCalls + 5);
  CHECK(transport.pending_timers() == 0);
}

TEST_CASE("call: the deadline during a capacity wait reports once and leaves nothing",
          "[call][limits]") {
  Fixture f({"a"});
  f.chain.targets[0].model.concurrency = 1;
  FakeClock clock;
  const double now_ms = static_cast<double>(
      std::chrono::duration_cast<Millis>(clock.wall_now().time_since_epoch()).count());
  f.store->update(engine::limits_key("mock"), [&](nlohmann::json& doc) {
    doc["targets"]["a"]["in_flight"]["other-process"] = {{"n", 1}, {"until", now_ms + 600'000}};
  });
  FakeTransport transport(clock, [&](const net::HttpRequest&) { return ok_reply("ok"); });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 2;
  spec.deadline = Millis(3000);
  Reports reports;
  engine::Call call({transport, clock, *f.state, f.rng}, spec, rec, [&](engine::CallResult r) {
    ++reports.count;
    reports.last = std::move(r);
  });
  call.start();
  // The other process lets go after the call gave up: nothing of the call may wake.
  transport.add_timer(Millis(5000), [&] {
    f.store->update(engine::limits_key("mock"), [](nlohmann::json& doc) { doc = nullptr; });
  });
  transport.run();
  CHECK(reports.count == 1);
  CHECK_FALSE(reports.last.ok);
  CHECK(reports.last.error == ErrorClass::rate_limited);
  CHECK_THAT(reports.last.message, Catch::Contains("in flight at mock/a"));
  CHECK(transport.requests.empty());
  CHECK(transport.pending_timers() == 0);
}

TEST_CASE("call: cancelled during a hedge, it reports once and both attempts end", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return stream_reply(model_of(r), Millis(500), Millis(520));
  });
  Recorder rec;
  auto spec = f.spec(true);
  spec.retries = 2;
  spec.hedge = true;
  spec.hedge_after = Millis(100);
  Reports reports;
  engine::Call call({transport, clock, *f.state, f.rng}, spec, rec, [&](engine::CallResult r) {
    ++reports.count;
    reports.last = std::move(r);
  });
  call.start();
  transport.add_timer(Millis(200), [&] { call.cancel(); });  // Ctrl-C with both in flight
  transport.run();
  CHECK(reports.count == 1);
  CHECK(reports.last.error == ErrorClass::cancelled);
  CHECK(transport.requests.size() == 2);
  CHECK(transport.cancelled.size() == 2);
  CHECK(rec.text.empty());
  CHECK(transport.pending_timers() == 0);
}
