// The proactive limiter end to end (issue 4; docs/architecture.md, "The limiter"): real `detour
// ask` processes against detour-mock over loopback, sharing one state file. Configured limits pace
// separate processes, limits learned from the mock's OpenAI and Anthropic headers pace the next
// one, a busy target is passed over, a request too large for a target is never sent to it, a wait
// that does not fit the deadline fails fast, a 429's reset is honoured by the next process, and a
// concurrency limit holds across processes.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using detour::testing::MockServer;
using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::TempDir;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// One provider `m` on the mock, with `extra` appended (its own keys, then any tables).
struct Env {
  MockServer mock;
  TempDir dir;
  std::string config;
  std::string state;  // --state for every run: one shared sqlite file unless changed

  explicit Env(const json& scenario, const std::string& extra = "",
               const std::string& protocol = "openai")
      : mock(scenario) {
    const std::string base = protocol == "openai" ? mock.url() + "/v1" : mock.url();
    config =
        dir.write("config.toml", "[providers.m]\nprotocol = \"" + protocol + "\"\nbase_url = \"" +
                                     base + "\"\napi_key_env = \"K\"\n" + extra);
    state = "sqlite://" + dir.file("s.db");
  }

  RunResult ask(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {
        detour::testing::detour_bin(), "-c", config, "--state", state, "ask"};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions o;
    o.env = {{"K", "test-key"}};
    return detour::testing::run(argv, o);
  }

  // `ask --json ...`, parsed; the exit code must be `exit_code`.
  json ask_json(std::vector<std::string> args, int exit_code = 0) const {
    args.insert(args.begin(), "--json");
    RunResult r = ask(args);
    INFO("stderr: " << r.err << "\nstdout: " << r.out);
    REQUIRE(r.exit_code == exit_code);
    return json::parse(r.out);
  }

  // When each request reached the mock (ms since it started), in order of arrival.
  std::vector<std::int64_t> arrivals() {
    std::vector<std::int64_t> t;
    const json stats = mock.stats();  // kept alive: a range-for over a temporary's [] dangles
    for (const auto& r : stats["received"])
      t.push_back(r["t_ms"].get<std::int64_t>());
    std::sort(t.begin(), t.end());
    return t;
  }
};

std::int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Runs `n` `ask ARGS "prompt I"` processes at once, each from its own thread.
std::vector<RunResult> ask_concurrently(const Env& env, int n, std::vector<std::string> args) {
  std::vector<RunResult> results(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      std::vector<std::string> a = args;
      a.push_back("prompt " + std::to_string(i));
      results[i] = env.ask(a);
    });
  }
  for (auto& t : threads)
    t.join();
  return results;
}

}  // namespace

TEST_CASE("limits e2e: a configured rpm paces separate processes through the shared state",
          "[limits]") {
  const std::string paced = "rpm = 120\nburst = 1\n";  // one request every 500 ms
  SECTION("sharing one sqlite state file") {
    Env env(json::object(), paced);
    std::vector<std::int64_t> waited;
    for (int i = 0; i < 4; ++i) {
      json j = env.ask_json({"-m", "m/x", "hi"});
      REQUIRE(j["attempts"].size() == 1);
      waited.push_back(j["attempts"][0]["waited_ms"].get<std::int64_t>());
    }
    CHECK(waited[0] == 0);
    for (int i = 1; i < 4; ++i) {
      INFO("process " << i + 1);
      CHECK(waited[i] > 0);
      CHECK(waited[i] <= 1000);  // one 500 ms slot at most, and a late timer
    }
    auto t = env.arrivals();
    REQUIRE(t.size() == 4);
    for (std::size_t i = 1; i < t.size(); ++i) {
      INFO("gap before request " << i + 1);
      CHECK(t[i] - t[i - 1] >= 450);
    }
    CHECK(env.mock.stats()["rate_limited"] == 0);
  }
  SECTION("with memory state each process knows nothing of the others: no pacing") {
    Env env(json::object(), "rpm = 20\nburst = 1\n");  // paced: one request every 3 s
    env.state = "memory";
    for (int i = 0; i < 4; ++i) {
      json j = env.ask_json({"-m", "m/x", "hi"});
      CHECK(j["attempts"][0]["waited_ms"] == 0);
    }
    auto t = env.arrivals();
    REQUIRE(t.size() == 4);
    CHECK(t[3] - t[0] < 5000);  // paced, three gaps of 3 s would take 9 s
  }
}

TEST_CASE("limits e2e: limits learned from OpenAI headers pace concurrent processes", "[limits]") {
  // No rpm in the config: detour learns 60/min and a burst of 2 from the first reply.
  Env env(json{{"limits", {{"rpm", 60}, {"burst", 2}}}});
  const auto start = Clock::now();
  auto results = ask_concurrently(env, 6, {"--json", "-m", "m/x"});
  const auto elapsed = ms_since(start);
  for (std::size_t i = 0; i < results.size(); ++i) {
    INFO("process " << i << " stderr: " << results[i].err);
    CHECK(results[i].exit_code == 0);
    // Opening one new state file at once, none may fall back to memory (and so not pace).
    CHECK(results[i].err.find("without shared state") == std::string::npos);
  }
  auto stats = env.mock.stats();
  CHECK(stats["rate_limited"].get<int>() <= 1);
  CHECK(stats["by_status"]["200"] == 6);
  // Two at once, then one a second: the last goes about 4 s after the first.
  CHECK(elapsed >= 3500);
  CHECK(elapsed < 15000);
  auto t = env.arrivals();
  REQUIRE(t.size() >= 6);
  CHECK(t.back() - t.front() >= 3400);
}

TEST_CASE("limits e2e: limits learned from Anthropic headers pace the next process", "[limits]") {
  Env env(json{{"limits", {{"rpm", 60}, {"burst", 1}}}}, "", "anthropic");
  json first = env.ask_json({"-m", "m/claude-x", "hi"});
  CHECK(first["attempts"][0]["waited_ms"] == 0);
  json second = env.ask_json({"-m", "m/claude-x", "hi"});
  REQUIRE(second["attempts"].size() == 1);
  // How long it waits depends on how long it took to start (slower under sanitizers): the
  // gap between the arrivals below is what the limit guarantees.
  CHECK(second["attempts"][0]["waited_ms"].get<std::int64_t>() > 0);
  CHECK(second["attempts"][0]["waited_ms"].get<std::int64_t>() <= 1500);
  auto stats = env.mock.stats();
  CHECK(stats["rate_limited"] == 0);
  CHECK(stats["requests"] == 2);
  auto t = env.arrivals();
  REQUIRE(t.size() == 2);
  CHECK(t[1] - t[0] >= 900);
}

TEST_CASE("limits e2e: a target without capacity is passed over for the next one", "[limits]") {
  Env env(json::object(), "\n[models.\"m/a\"]\nrpm = 60\nburst = 1\n");
  json first = env.ask_json({"-m", "m/a,m/b", "hi"});
  CHECK(first["model"] == "a");
  REQUIRE(first["attempts"].size() == 1);

  json second = env.ask_json({"-m", "m/a,m/b", "hi"});
  CHECK(second["model"] == "b");
  REQUIRE(second["attempts"].size() == 2);
  const json& skipped = second["attempts"][0];
  CHECK(skipped["provider"] == "m");
  CHECK(skipped["model"] == "a");
  CHECK(skipped["status"].is_null());
  CHECK(skipped["error"] == "skipped_budget");
  CHECK(skipped["waited_ms"] == 0);
  CHECK(second["attempts"][1]["model"] == "b");
  CHECK(second["attempts"][1]["status"] == 200);
  CHECK(second["attempts"][1]["waited_ms"] == 0);

  auto stats = env.mock.stats();
  CHECK(stats["requests"] == 2);
  CHECK(stats["by_model"]["a"] == 1);  // no second request for `a`
  CHECK(stats["by_model"]["b"] == 1);
}

TEST_CASE("limits e2e: a request larger than a target's whole tpm is never sent to it",
          "[limits]") {
  Env env(json::object(), "\n[models.\"m/small\"]\ntpm = 100\n");
  json j = env.ask_json({"--max-tokens", "500", "-m", "m/small,m/big", "hi"});
  CHECK(j["model"] == "big");
  REQUIRE(j["attempts"].size() == 2);
  CHECK(j["attempts"][0]["model"] == "small");
  CHECK(j["attempts"][0]["error"] == "skipped_budget");
  CHECK(j["attempts"][0]["status"].is_null());
  CHECK(env.mock.stats()["requests"] == 1);

  env.mock.reset_stats();
  json alone = env.ask_json({"--max-tokens", "500", "-m", "m/small", "hi"}, 4);
  CHECK(alone["ok"] == false);
  CHECK(alone["error"]["class"] == "bad_request");
  CHECK_THAT(alone["error"]["message"].get<std::string>(),
             Catch::Contains("tokens-per-minute limit of m/small (100/min)"));
  REQUIRE(alone["attempts"].size() == 1);
  CHECK(alone["attempts"][0]["error"] == "skipped_budget");
  CHECK(env.mock.stats()["requests"] == 0);  // the mock got nothing at all
}

TEST_CASE("limits e2e: no capacity before the deadline fails fast as rate_limited", "[limits]") {
  Env env(json::object(), "rpm = 6\nburst = 1\n");  // one request every 10 s
  env.ask_json({"-m", "m/x", "hi"});
  const auto start = Clock::now();
  json j = env.ask_json({"--deadline", "8s", "-m", "m/x", "hi"}, 1);
  const auto elapsed = ms_since(start);
  CHECK(j["ok"] == false);
  CHECK(j["error"]["class"] == "rate_limited");
  CHECK(j["latency_ms"].get<std::int64_t>() < 4000);  // it did not sit out the deadline
  CHECK(elapsed < 6000);
  REQUIRE(j["attempts"].size() == 1);
  CHECK(j["attempts"][0]["error"] == "skipped_budget");
  CHECK(env.mock.stats()["requests"] == 1);
}

TEST_CASE("limits e2e: a 429's retry-after teaches the limiter of the next process", "[limits]") {
  const json scenario = {
      {"default", {{"fault", "rate_limit"}, {"retry_after_s", 2}, {"times", 1}}}};
  SECTION("a retry waits out the hint") {
    Env env(scenario);
    json j = env.ask_json({"--retries", "1", "-m", "m/x", "hi"});
    REQUIRE(j["attempts"].size() == 2);
    CHECK(j["attempts"][0]["status"] == 429);
    CHECK(j["attempts"][0]["error"] == "rate_limited");
    CHECK(j["attempts"][1]["status"] == 200);
    CHECK(j["attempts"][1]["waited_ms"].get<std::int64_t>() >= 1900);
    CHECK(j["attempts"][1]["waited_ms"].get<std::int64_t>() < 3500);  // once, not twice
    CHECK(env.mock.stats()["rate_limited"] == 1);
  }
  SECTION("the next process waits until the reset instead of sending at once") {
    Env env(scenario);
    json failed = env.ask_json({"--retries", "0", "-m", "m/x", "hi"}, 1);
    CHECK(failed["error"]["class"] == "rate_limited");
    CHECK(failed["error"]["status"] == 429);
    json next = env.ask_json({"-m", "m/x", "hi"});
    REQUIRE(next["attempts"].size() == 1);
    CHECK(next["attempts"][0]["status"] == 200);
    // Less than the hint by however long the process took to start; the arrivals show the gap.
    CHECK(next["attempts"][0]["waited_ms"].get<std::int64_t>() > 0);
    auto t = env.arrivals();
    REQUIRE(t.size() == 2);
    CHECK(t[1] - t[0] >= 1800);
    CHECK(t[1] - t[0] < 6000);
    CHECK(env.mock.stats()["rate_limited"] == 1);
  }
}

TEST_CASE("limits e2e: a provider's concurrency limit holds across processes", "[limits]") {
  Env env(json{{"default", {{"latency_ms", 400}}}}, "concurrency = 1\n");
  const auto start = Clock::now();
  auto results = ask_concurrently(env, 3, {"-v", "--json", "-m", "m/x"});
  const auto elapsed = ms_since(start);
  int waited = 0;
  for (const auto& r : results) {
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("without shared state") == std::string::npos);
    if (r.err.find("waiting for capacity at m/x: 1 request(s) in flight at m (its concurrency "
                   "limit)") != std::string::npos)
      ++waited;
  }
  CHECK(waited >= 1);  // those started while another held the slot waited for it
  auto stats = env.mock.stats();
  CHECK(stats["max_in_flight"] == 1);
  CHECK(stats["requests"] == 3);
  CHECK(elapsed >= 1200);  // one after the other
  CHECK(elapsed < 10000);
}

TEST_CASE("limits e2e: -v says how long a paced process waits and why", "[limits]") {
  Env env(json::object(), "rpm = 120\nburst = 1\n");
  REQUIRE(env.ask({"-m", "m/x", "hi"}).exit_code == 0);
  RunResult r = env.ask({"-v", "-m", "m/x", "hi"});
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "mock reply to: hi\n");
  const std::regex waiting(
      R"(waiting \d+ms for capacity at m/x: requests per minute of m \(120/min\))");
  CHECK(std::regex_search(r.err, waiting));
  const std::regex attempt(R"(attempt 1: m/x: 200 in \d+ms after waiting \d+ms)");
  CHECK(std::regex_search(r.err, attempt));
}
