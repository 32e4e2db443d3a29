// Routing strategies (docs/architecture.md, "Routing"): the order each strategy tries a chain's
// targets in, row by row, then health-aware demotion under every strategy, the weighted draw's
// statistics and the round-robin rotation.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/router.hpp"

using namespace detour;
using engine::order_targets;
using engine::RouteCandidate;
using engine::RouteContext;
using engine::Strategy;
using Order = std::vector<std::size_t>;

namespace {

const std::vector<Strategy> kAllStrategies = {Strategy::fallback, Strategy::fastest,
                                              Strategy::cheapest, Strategy::weighted,
                                              Strategy::round_robin};

RouteCandidate latency(std::optional<double> ms) {
  RouteCandidate c;
  c.latency_ms = ms;
  return c;
}

RouteCandidate price(std::optional<double> in, std::optional<double> out) {
  RouteCandidate c;
  c.input_cost = in;
  c.output_cost = out;
  return c;
}

RouteCandidate weight(double w) {
  RouteCandidate c;
  c.weight = w;
  return c;
}

RouteCandidate health(std::optional<double> rate, std::int64_t calls) {
  RouteCandidate c;
  c.success_rate = rate;
  c.observed_calls = calls;
  return c;
}

Order order(Strategy s, const std::vector<RouteCandidate>& candidates,
            const RouteContext& context = {}) {
  std::mt19937_64 rng(1);
  return order_targets(s, candidates, context, rng);
}

bool is_permutation_of_indices(const Order& o, std::size_t n) {
  std::vector<bool> seen(n, false);
  if (o.size() != n) return false;
  for (std::size_t i : o) {
    if (i >= n || seen[i]) return false;
    seen[i] = true;
  }
  return true;
}

}  // namespace

TEST_CASE("router: parse_strategy round trips and rejects unknown names", "[router]") {
  for (Strategy s : kAllStrategies) {
    const auto name = engine::to_string(s);
    INFO(std::string(name));
    REQUIRE(engine::parse_strategy(name) == s);
  }
  CHECK(engine::to_string(Strategy::round_robin) == "round-robin");
  for (const char* bad : {"", "round_robin", "roundrobin", "Fallback", "FASTEST", " cheapest",
                          "weighted ", "random", "fallback\n"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(engine::parse_strategy(bad).has_value());
  }
}

TEST_CASE("router: empty and single candidate under every strategy", "[router]") {
  for (Strategy s : kAllStrategies) {
    INFO(std::string(engine::to_string(s)));
    CHECK(order(s, {}).empty());
    CHECK(order(s, {RouteCandidate{}}) == Order{0});
    // A lone target is tried even when it is failing: there is nothing to demote it behind.
    CHECK(order(s, {health(0.0, 100)}) == Order{0});
    CHECK(order(s, {weight(0)}) == Order{0});
    CHECK(order(s, {RouteCandidate{}}, RouteContext{0, 0, 12345}) == Order{0});
  }
}

TEST_CASE("router: fallback keeps the configured order", "[router]") {
  // Whatever is known of the targets, fallback does not reorder healthy ones.
  const std::vector<RouteCandidate> candidates = {latency(900), price(30, 60), weight(0),
                                                  latency(1)};
  CHECK(order(Strategy::fallback, candidates) == Order{0, 1, 2, 3});
  CHECK(order(Strategy::fallback, candidates, RouteContext{1000, 1000, 7}) == Order{0, 1, 2, 3});
}

TEST_CASE("router: fastest sorts by latency, unknown first to explore", "[router]") {
  struct Row {
    const char* name;
    std::vector<std::optional<double>> latencies;
    Order expected;
  };
  const std::vector<Row> rows = {
      {"all known", {300, 100, 200}, {1, 2, 0}},
      {"ties keep configured order", {200, 100, 200, 100}, {1, 3, 0, 2}},
      {"unknown first, as configured", {100, std::nullopt, 50, std::nullopt}, {1, 3, 2, 0}},
      {"all unknown", {std::nullopt, std::nullopt, std::nullopt}, {0, 1, 2}},
      {"zero latency is known", {0, std::nullopt, 10}, {1, 0, 2}},
      {"NaN counts as unknown", {100, std::numeric_limits<double>::quiet_NaN(), 50}, {1, 2, 0}},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    std::vector<RouteCandidate> candidates;
    for (const auto& l : row.latencies)
      candidates.push_back(latency(l));
    CHECK(order(Strategy::fastest, candidates) == row.expected);
  }
}

TEST_CASE("router: cheapest sorts by this request's estimated cost, unknown prices last",
          "[router]") {
  struct Row {
    const char* name;
    std::vector<RouteCandidate> candidates;
    RouteContext context;
    Order expected;
  };
  const std::optional<double> none;
  const std::vector<Row> rows = {
      {"input-heavy request favours a cheap input price",
       {price(3, 15), price(10, 1), price(0.5, 20)},
       {100000, 100, 0},
       {2, 0, 1}},
      // Same prices, output-heavy: 10*100 + 1*100000 is now the cheapest.
      {"output-heavy request favours a cheap output price",
       {price(3, 15), price(10, 1), price(0.5, 20)},
       {100, 100000, 0},
       {1, 0, 2}},
      {"unknown prices last, as configured",
       {price(none, none), price(5, 5), price(1, none), price(1, 1), price(none, 1)},
       {1000, 1000, 0},
       {3, 1, 0, 2, 4}},
      {"equal costs keep configured order",
       {price(2, 2), price(1, 3), price(3, 1), price(1, 1)},
       {1000, 1000, 0},
       {3, 0, 1, 2}},
      {"free is cheapest", {price(1, 1), price(0, 0)}, {10, 10, 0}, {1, 0}},
      {"no tokens: every known price costs nothing, so configured order",
       {price(9, 9), price(1, 1), price(none, none)},
       {0, 0, 0},
       {0, 1, 2}},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    CHECK(order(Strategy::cheapest, row.candidates, row.context) == row.expected);
  }
}

TEST_CASE("router: round-robin rotates the configured order by turn", "[router]") {
  const std::vector<RouteCandidate> candidates(4);
  const std::vector<Order> expected = {
      {0, 1, 2, 3}, {1, 2, 3, 0}, {2, 3, 0, 1}, {3, 0, 1, 2}, {0, 1, 2, 3}, {1, 2, 3, 0},
  };
  for (std::uint64_t turn = 0; turn < expected.size(); ++turn) {
    INFO("turn " << turn);
    CHECK(order(Strategy::round_robin, candidates, RouteContext{0, 0, turn}) == expected[turn]);
  }
  // Large turn counts wrap without trouble.
  CHECK(order(Strategy::round_robin, candidates, RouteContext{0, 0, UINT64_MAX}) ==
        Order{3, 0, 1, 2});  // 2^64 - 1 = 3 (mod 4)

  // Over any n consecutive turns each target is first exactly once.
  const std::vector<RouteCandidate> three(3);
  std::vector<int> firsts(3, 0);
  for (std::uint64_t turn = 10; turn < 13; ++turn) {
    ++firsts[order(Strategy::round_robin, three, RouteContext{0, 0, turn}).front()];
  }
  CHECK(firsts == std::vector<int>{1, 1, 1});
}

TEST_CASE("router: weighted first pick follows weight share", "[router]") {
  const std::vector<RouteCandidate> candidates = {weight(1), weight(2), weight(7), weight(0)};
  const std::vector<double> share = {0.1, 0.2, 0.7, 0.0};
  std::mt19937_64 rng(20240611);
  constexpr int kDraws = 10000;
  std::vector<int> first(candidates.size(), 0);
  std::vector<int> second_after_2(candidates.size(), 0);
  int after_2 = 0;
  for (int i = 0; i < kDraws; ++i) {
    const Order o = order_targets(Strategy::weighted, candidates, {}, rng);
    REQUIRE(is_permutation_of_indices(o, candidates.size()));
    REQUIRE(o.back() == 3);  // the zero weight is always last
    ++first[o[0]];
    if (o[0] == 2) {
      ++after_2;
      ++second_after_2[o[1]];
    }
  }
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    INFO("target " << i);
    CHECK(static_cast<double>(first[i]) / kDraws == Approx(share[i]).margin(0.02));
  }
  // Without replacement: once target 2 is drawn, 0 and 1 share the rest 1:2.
  REQUIRE(after_2 > 0);
  CHECK(static_cast<double>(second_after_2[0]) / after_2 == Approx(1.0 / 3).margin(0.03));
  CHECK(static_cast<double>(second_after_2[1]) / after_2 == Approx(2.0 / 3).margin(0.03));
}

TEST_CASE("router: weighted never puts a zero weight first while a positive one exists",
          "[router]") {
  const std::vector<RouteCandidate> candidates = {weight(0), weight(-1), weight(0.001), weight(0),
                                                  weight(std::numeric_limits<double>::quiet_NaN())};
  std::mt19937_64 rng(99);
  for (int i = 0; i < 1000; ++i) {
    // The non-positive (and meaningless) weights follow, in configured order.
    REQUIRE(order_targets(Strategy::weighted, candidates, {}, rng) == Order{2, 0, 1, 3, 4});
  }
  // All zero: configured order.
  CHECK(order(Strategy::weighted, {weight(0), weight(0), weight(0)}) == Order{0, 1, 2});
}

TEST_CASE("router: weighted is reproducible from the seed", "[router]") {
  const std::vector<RouteCandidate> candidates = {weight(1), weight(1), weight(1), weight(1),
                                                  weight(1)};
  std::mt19937_64 a(5), b(5);
  for (int i = 0; i < 100; ++i) {
    REQUIRE(order_targets(Strategy::weighted, candidates, {}, a) ==
            order_targets(Strategy::weighted, candidates, {}, b));
  }
  // Pinned: mt19937_64's output is fixed by the standard and the draw uses no library
  // distribution, so this holds with every standard library.
  std::mt19937_64 rng(42);
  CHECK(order_targets(Strategy::weighted, candidates, {}, rng) == Order{3, 2, 4, 0, 1});
}

TEST_CASE("router: unhealthy targets are demoted behind healthy ones under every strategy",
          "[router]") {
  // 0 and 2 are failing (rate < 0.5 over >= 5 calls); the others are healthy or unproven.
  auto make = [](std::optional<double> rate, std::int64_t calls, double lat, double cost) {
    RouteCandidate c = health(rate, calls);
    c.latency_ms = lat;
    c.input_cost = cost;
    c.output_cost = cost;
    return c;
  };
  const std::vector<RouteCandidate> candidates = {
      make(0.2, 10, 10, 1),          // failing, fastest, cheapest
      make(0.9, 50, 40, 4),          // healthy
      make(0.49, 5, 20, 2),          // failing, just over the thresholds
      make(0.0, 4, 30, 3),           // too few calls to judge
      make(std::nullopt, 0, 50, 5),  // never observed
      make(0.5, 100, 60, 6),         // exactly 0.5 is healthy
  };
  struct Row {
    Strategy strategy;
    RouteContext context;
    Order expected;
  };
  const std::vector<Row> rows = {
      {Strategy::fallback, {}, {1, 3, 4, 5, 0, 2}},
      {Strategy::fastest, {}, {3, 1, 4, 5, 0, 2}},
      {Strategy::cheapest, {100, 100, 0}, {3, 1, 4, 5, 0, 2}},
      {Strategy::round_robin, {0, 0, 2}, {3, 4, 5, 1, 2, 0}},
  };
  for (const auto& row : rows) {
    INFO(std::string(engine::to_string(row.strategy)));
    CHECK(order(row.strategy, candidates, row.context) == row.expected);
  }

  // Weighted: whatever the draw, the failing ones come last, and in drawn order among
  // themselves, so over many draws both orders of {0, 2} appear at the end.
  std::mt19937_64 rng(3);
  bool seen_02 = false, seen_20 = false;
  for (int i = 0; i < 500; ++i) {
    const Order o = order_targets(Strategy::weighted, candidates, {}, rng);
    REQUIRE(is_permutation_of_indices(o, candidates.size()));
    const Order tail(o.end() - 2, o.end());
    REQUIRE((tail == Order{0, 2} || tail == Order{2, 0}));
    seen_02 = seen_02 || tail == Order{0, 2};
    seen_20 = seen_20 || tail == Order{2, 0};
  }
  CHECK(seen_02);
  CHECK(seen_20);
}

TEST_CASE("router: all targets failing keeps the strategy's order", "[router]") {
  std::vector<RouteCandidate> candidates;
  for (double lat : {30.0, 10.0, 20.0}) {
    RouteCandidate c = health(0.1, 20);
    c.latency_ms = lat;
    candidates.push_back(c);
  }
  CHECK(order(Strategy::fastest, candidates) == Order{1, 2, 0});
  CHECK(order(Strategy::fallback, candidates) == Order{0, 1, 2});
}
