// A bare --hedge end to end: with no history of the first target, detour waits its default
// delay (2 s) for a first token before asking the next target too, and takes whichever answers
// first. The first target here would take 10 s; the time bounds are seconds wide.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness.hpp"
#include "resilience_util.hpp"

using detour::testing::resilience::attempts_of;
using detour::testing::resilience::count_lines;
using detour::testing::resilience::Env;
using detour::testing::resilience::parse_json;
using nlohmann::json;

TEST_CASE("hedge e2e: a bare --hedge asks the next target after 2 s without a first token",
          "[hedge]") {
  // ttft_ms: the slow target's headers come at once, its first token after 10 s.
  Env env(json{{"models", {{"slow", {{"ttft_ms", 10000}}}}}});
  // --state memory: no observed p95 of `slow` to wait instead of the default.
  auto t = env.timed_ask({"-v", "--json", "--state", "memory", "--hedge", "-m", "oa/slow", "-m",
                          "an/fast", "why is the sky blue?"});
  INFO(t.r.err);
  REQUIRE(t.r.exit_code == 0);
  auto j = parse_json(t.r);
  CHECK(j["model"] == "fast");
  CHECK(j["content"] == "mock reply to: why is the sky blue?");
  CHECK(count_lines(t.r.err, "no first token from oa/slow after 2s: hedging with an/fast") == 1);

  // Timed by the mock: the hedge arrived about 2 s after the first request.
  const json stats = env.mock.stats();
  std::int64_t slow_at = -1, fast_at = -1;
  for (const auto& r : stats["received"]) {
    if (r["model"] == "slow") slow_at = r["t_ms"].get<std::int64_t>();
    if (r["model"] == "fast") fast_at = r["t_ms"].get<std::int64_t>();
  }
  REQUIRE(slow_at >= 0);
  REQUIRE(fast_at >= 0);
  CHECK(fast_at - slow_at >= 1500);
  CHECK(fast_at - slow_at <= 5000);
  // Timed by detour: the slow attempt lost the race once the hedge answered, long before its
  // own first token.
  auto slow = attempts_of(j, "slow");
  REQUIRE(slow.size() == 1);
  CHECK(slow[0]["error"] == "cancelled");
  CHECK(slow[0]["latency_ms"] >= 1500);
  CHECK(slow[0]["latency_ms"] <= 5000);
  CHECK(attempts_of(j, "fast").size() == 1);
  CHECK(count_lines(t.r.err, "attempt 2: an/fast: 200 in ") == 1);
  CHECK(j["latency_ms"] >= 1500);
  CHECK(t.ms < 8000);  // and the whole process, well before the 10 s first token
}
