// Route strategies in real calls: the real detour binary against detour-mock, with the state
// shared through one SQLite file as separate processes share it. `weighted` splits the calls
// by weight, `fastest` learns which target answers sooner, `cheapest` goes by the prices in
// [models].
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness.hpp"
#include "resilience_util.hpp"

using detour::testing::resilience::Env;
using detour::testing::resilience::parse_json;
using nlohmann::json;

TEST_CASE("routing e2e: a weighted route sends each target its share of the calls", "[routing]") {
  // Weights 1:19, the heavy target listed second so that neither the configured order nor an
  // even split passes. With a 0.95 share, at least 36 of 48 calls go to `heavy` except with
  // probability 5e-7; an even split (weights ignored) reaches 36 with probability 4e-4.
  Env env(json::object(),
          "[routes.w]\nstrategy = \"weighted\"\ntargets = [\"oa/light\", \"oa/heavy\"]\n"
          "weights = [1, 19]\n");
  constexpr int kCalls = 48;
  const std::string state = env.state_url();
  for (int i = 0; i < kCalls; ++i) {
    auto r = env.ask({"--state", state, "-m", "w", "hi"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  }
  const int heavy = env.requests("heavy");
  const int light = env.requests("light");
  INFO("heavy " << heavy << ", light " << light);
  CHECK(heavy + light == kCalls);  // both healthy: one request per call
  CHECK(heavy >= 36);
}

TEST_CASE("routing e2e: a fastest route learns which target answers sooner", "[routing]") {
  Env env(json{{"models", {{"slow", {{"latency_ms", 300}}}}}},
          "[routes.f]\nstrategy = \"fastest\"\ntargets = [\"oa/slow\", \"oa/quick\"]\n");
  const std::string state = env.state_url();
  auto model_of_call = [&](const std::string& state_url) {
    auto r = env.ask({"--json", "--state", state_url, "-m", "f", "hi"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(r);
    REQUIRE(j["attempts"].size() == 1);
    return j["model"].get<std::string>();
  };
  // Nothing known: the configured order. Then the target with no history goes first, so the
  // route measures it; from then on the faster one leads.
  CHECK(model_of_call(state) == "slow");
  CHECK(model_of_call(state) == "quick");
  for (int i = 0; i < 3; ++i)
    CHECK(model_of_call(state) == "quick");
  // What was learned lives in the state: a process that knows nothing starts over.
  CHECK(model_of_call("memory") == "slow");
}

TEST_CASE("routing e2e: a cheapest route tries the lowest estimated cost first", "[routing]") {
  // Listed dearest first; the unpriced target has no estimate and goes last. The two priced
  // ones answer not_found, which moves on without a retry, so the attempts show the order.
  Env env(
      json{{"models", {{"dear", {{"fault", "not_found"}}}, {"cheap", {{"fault", "not_found"}}}}}},
      "[models.\"oa/dear\"]\ninput_cost = 15.0\noutput_cost = 60.0\n\n"
      "[models.\"oa/cheap\"]\ninput_cost = 0.15\noutput_cost = 0.6\n\n"
      "[routes.c]\nstrategy = \"cheapest\"\n"
      "targets = [\"oa/unpriced\", \"oa/dear\", \"oa/cheap\"]\n");
  for (int i = 0; i < 2; ++i) {
    auto r = env.ask({"--json", "--state", env.state_url(), "-m", "c", "hi"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(r);
    REQUIRE(j["attempts"].size() == 3);
    CHECK(j["attempts"][0]["model"] == "cheap");
    CHECK(j["attempts"][1]["model"] == "dear");
    CHECK(j["attempts"][2]["model"] == "unpriced");
    CHECK(j["model"] == "unpriced");
  }
  // With the cheap one healthy, it answers and nothing else is asked.
  env.mock.set_scenario(json{{"models", {{"dear", {{"fault", "not_found"}}}}}});
  env.mock.reset_stats();
  auto j = parse_json(env.ask({"--json", "-m", "c", "hi"}));
  CHECK(j["model"] == "cheap");
  CHECK(j["cost_usd"].is_number());
  CHECK(env.mock.stats()["requests"] == 1);
}
