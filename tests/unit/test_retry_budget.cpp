// The retry budget's figures as the engine uses them: what a success refunds (with the
// defaults the binary runs with), and that a hedge is paid for from the budget like a retry,
// so that hedging cannot double the load on a provider that is already struggling.
#include "call_fixture.hpp"
#include "engine/target_state.hpp"

using namespace detour;
using namespace detour::testing::call;
using detour::testing::FakeClock;
using detour::testing::FakeTransport;
using engine::ErrorClass;

namespace {

// The provider's retry tokens as stored; a provider nothing was written for has a full budget.
double tokens_of(state::Store& store, const std::string& provider) {
  const nlohmann::json doc = store.get(engine::provider_key(provider));
  if (doc.is_object() && doc.contains("retry_tokens")) return doc["retry_tokens"].get<double>();
  return 10.0;
}

}  // namespace

TEST_CASE("retry budget: a success refunds 0.1 of a token by default", "[retry]") {
  SECTION("the shared state, with the defaults detour runs with") {
    auto store = state::make_memory_store();
    engine::SharedState state(*store);
    // What the process wrote reaches the store with its next sync.
    const auto stored = [&] {
      state.flush();
      return tokens_of(*store, "p");
    };
    for (int i = 0; i < 6; ++i)
      state.budget_outcome("p", ErrorClass::server_error);
    CHECK(stored() == Approx(4.0));
    state.budget_outcome("p", ErrorClass::none);
    CHECK(stored() == Approx(4.1));
    for (int i = 0; i < 5; ++i)
      state.budget_outcome("p", ErrorClass::none);
    CHECK(stored() == Approx(4.6));
    // Retries stop at half (5 of 10): nine successes after the drain make 4.9, still too few;
    // a slower refund would keep a recovered provider without retries far longer.
    for (int i = 0; i < 3; ++i)
      state.budget_outcome("p", ErrorClass::none);
    CHECK(stored() == Approx(4.9));
    CHECK_FALSE(state.can_retry("p"));
    for (int i = 0; i < 2; ++i)
      state.budget_outcome("p", ErrorClass::none);
    CHECK(stored() == Approx(5.1));
    CHECK(state.can_retry("p"));
  }
  SECTION("a RetryBudget made with its defaults") {
    engine::RetryBudget budget;
    CHECK(budget.max_tokens() == Approx(10.0));
    for (int i = 0; i < 6; ++i)
      budget.on_failure();
    budget.on_success();
    CHECK(budget.tokens() == Approx(4.1));
  }
}

TEST_CASE("retry budget: a hedge spends from it like a retry", "[retry][call]") {
  Fixture f({"a", "b"});  // one provider: the hedge's target shares the primary's budget
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "a" ? stream_reply("slow", Millis(5000), Millis(5100))
                              : stream_reply("fast", Millis(100), Millis(150));
  });
  Recorder rec;
  auto spec = f.spec(true);
  spec.retries = 2;  // the default: retries are allowed, and a hedge must still pay
  spec.hedge = true;
  spec.hedge_after = Millis(500);
  spec.timeout = Millis(10'000);  // `a` is slow, not failing: it must not time out instead
  spec.deadline = Millis(20'000);

  SECTION("a hedge that goes out costs one token; its success refunds 0.1") {
    auto result = f.run(transport, clock, spec, rec);
    REQUIRE(result.ok);
    REQUIRE(transport.requests.size() == 2);
    CHECK(result.target->target.model == "b");
    // 10 - 1 for the hedge + 0.1 for b's answer; a's cancellation costs nothing.
    CHECK(tokens_of(*f.store, "mock") == Approx(9.1));
  }
  SECTION("repeated hedges drain it, and then no hedge is sent") {
    std::vector<std::size_t> sent;
    for (int i = 0; i < 8; ++i) {
      const std::size_t before = transport.requests.size();
      auto result = f.run(transport, clock, spec, rec);
      REQUIRE(result.ok);
      sent.push_back(transport.requests.size() - before);
    }
    // Each hedge costs 1 and its answer gives back 0.1: 10, 9.1, 8.2, 7.3, 6.4, 5.5, then 4.6
    // after the sixth, which is at or below half: from the seventh call on, a waits alone (and
    // its answers refund 0.1 each).
    CHECK(sent == std::vector<std::size_t>{2, 2, 2, 2, 2, 2, 1, 1});
    CHECK(tokens_of(*f.store, "mock") == Approx(4.8));
    REQUIRE_FALSE(rec.notes.empty());
    CHECK_THAT(rec.notes.back(), Catch::Contains("not hedging with mock/b: the retry budget of "
                                                 "mock is spent"));
  }
}
