// SIGTERM (what `kill`, timeout(1), systemd and CI runners send) ends a running `detour ask`
// as Ctrl-C does: the request in flight is cancelled, exit 130, and --json still prints its
// object. The signal is sent once the mock has the request, not after a guessed delay.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "harness.hpp"
#include "resilience_util.hpp"

using detour::testing::RunOptions;
using detour::testing::resilience::count_lines;
using detour::testing::resilience::Env;
using detour::testing::resilience::parse_json;
using nlohmann::json;

namespace {

// SIGTERM once the mock is working on a request.
RunOptions sigterm_once_received(Env& env) {
  RunOptions o;
  o.send_signal = SIGTERM;
  o.signal_when = [&env] { return env.mock.stats()["in_flight"].get<int>() >= 1; };
  o.timeout = std::chrono::milliseconds(15000);
  return o;
}

}  // namespace

TEST_CASE("signals: SIGTERM cancels the request in flight and exits 130", "[signals]") {
  Env env(json{{"models", {{"slow", {{"latency_ms", 20000}}}}}});
  SECTION("--json prints the cancelled call") {
    auto t = env.timed_ask({"--json", "-m", "oa/slow", "-m", "an/next", "hi"},
                           sigterm_once_received(env));
    INFO(t.r.err);
    CHECK(t.r.exit_code == 130);
    auto j = parse_json(t.r);
    CHECK(j["ok"] == false);
    CHECK(j["error"]["class"] == "cancelled");
    REQUIRE(j["attempts"].size() == 1);  // the next target is not tried
    CHECK(j["attempts"][0]["error"] == "cancelled");
    CHECK(t.ms < 10000);  // not the 20 s the answer would take
    CHECK(env.requests("next") == 0);
  }
  SECTION("plain output: nothing on stdout, the error on stderr") {
    auto t = env.timed_ask({"-m", "oa/slow", "hi"}, sigterm_once_received(env));
    CHECK(t.r.exit_code == 130);
    CHECK(t.r.out.empty());
    CHECK(count_lines(t.r.err, "detour: error: cancelled") == 1);
    CHECK(t.ms < 10000);
  }
}
