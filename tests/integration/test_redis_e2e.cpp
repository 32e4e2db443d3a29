// The real detour binary with --state redis:// against a real redis-server on loopback: what one
// machine learns another knows (each run below has its own HOME, so no SQLite file is shared),
// one half-open probe for the whole fleet, and the faults a fleet meets -- a server killed and
// restarted or flushed in the middle of a batch, and a wrong password.
#include <atomic>
#include <future>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"
#include "redis_server.hpp"
#include "resilience_util.hpp"

using detour::testing::RedisServer;
using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::resilience::count_lines;
using detour::testing::resilience::dead_provider_toml;
using detour::testing::resilience::Env;
using detour::testing::resilience::parse_json;
using nlohmann::json;

namespace {

RunResult batch(Env& env, const std::string& state, std::vector<std::string> args) {
  std::vector<std::string> argv = {
      detour::testing::detour_bin(), "-c", env.config, "--state", state, "batch"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  options.env["TEST_KEY"] = detour::testing::resilience::kKey;
  options.timeout = std::chrono::seconds(60);
  return detour::testing::run(argv, options);
}

std::string questions(int n) {
  std::string text;
  for (int i = 0; i < n; ++i)
    text +=
        json{{"id", "q" + std::to_string(i)}, {"prompt", "q " + std::to_string(i)}}.dump() + "\n";
  return text;
}

int ok_lines(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.value("ok", false)) ++n;
  }
  return n;
}

// Waits until the mock has seen `n` chat requests (or 30 s went by).
void wait_for_requests(Env& env, int n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && env.mock.stats()["requests"].get<int>() < n)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

}  // namespace

TEST_CASE("redis: a circuit opened on three machines is skipped on a fourth", "[redis]") {
  RedisServer redis;
  Env env(json::object(), dead_provider_toml());
  const std::vector<std::string> chain = {"--json", "-m", "dead/primary", "-m", "oa/ok", "hi"};
  const auto ask = [&](const std::string& state) {
    std::vector<std::string> args = {"--state", state};
    args.insert(args.end(), chain.begin(), chain.end());
    return parse_json(env.ask(args));  // a fresh HOME each: no state file in common
  };
  for (int i = 0; i < 3; ++i)
    CHECK(ask(redis.url())["attempts"][0]["error"] == "connection");
  CHECK(ask(redis.url())["attempts"][0]["error"] == "skipped_open");
  // Without the shared store, a machine of its own learns nothing from the others.
  CHECK(ask("sqlite")["attempts"][0]["error"] == "connection");
  CHECK(env.requests("ok") == 5);
}

TEST_CASE("redis: after the cooldown exactly one process of the fleet probes", "[redis]") {
  RedisServer redis;
  Env env(json{{"models", {{"flaky", {{"fault", "close"}}}}}}, "[breaker]\ncooldown = \"400ms\"\n");
  const std::vector<std::string> args = {"--state", redis.url(), "--json", "--retries", "0",
                                         "-m",      "oa/flaky",  "-m",     "an/ok",     "hi"};
  for (int i = 0; i < 3; ++i)
    CHECK(parse_json(env.ask(args))["model"] == "ok");
  REQUIRE(env.requests("flaky") == 3);
  // flaky recovers, slowly: every process racing after the cooldown would probe it if it could.
  env.mock.set_scenario(json{{"models", {{"flaky", {{"latency_ms", 600}}}}}});
  env.mock.reset_stats();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::vector<std::future<RunResult>> racers;
  for (int i = 0; i < 4; ++i)
    racers.push_back(std::async(std::launch::async, [&] { return env.ask(args); }));
  int by_flaky = 0, by_ok = 0;
  for (auto& racer : racers) {
    const RunResult r = racer.get();
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const json j = parse_json(r);
    (j["model"] == "flaky" ? by_flaky : by_ok) += 1;
  }
  CHECK(by_flaky == 1);
  CHECK(by_ok == 3);
  CHECK(env.requests("flaky") == 1);
}

TEST_CASE("redis: a wrong password is exit 3 and never printed; -vv shows the store masked",
          "[redis]") {
  RedisServer redis("fl33t-s3cret");
  Env env;
  const std::string wrong = "redis://:n0t-th3-s3cret@127.0.0.1:" + std::to_string(redis.port());
  RunResult r = env.ask({"--state", wrong, "-m", "oa/ok", "hi"});
  CHECK(r.exit_code == 3);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Catch::Contains("refused the user name or password"));
  CHECK_THAT(r.err, !Catch::Contains("n0t-th3-s3cret"));
  CHECK(env.requests("ok") == 0);

  RunOptions options;
  options.env["DETOUR_STATE"] = redis.url();
  r = env.ask({"-vvv", "-m", "oa/ok", "hi"}, options);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err,
             Catch::Contains("state: redis://:***@127.0.0.1:" + std::to_string(redis.port())));
  CHECK_THAT(r.err, !Catch::Contains("fl33t-s3cret"));
  CHECK(redis.cli({"EXISTS", "detour:{state}:target:oa/ok"}).out == "1\n");
}

TEST_CASE("redis: killed and restarted mid-batch, every line is answered with one warning",
          "[redis]") {
  RedisServer redis;
  Env env(json{{"default", {{"latency_ms", 10}}}});
  const std::string input = env.dir.write("in.jsonl", questions(300));
  std::thread outage([&] {
    wait_for_requests(env, 60);
    redis.stop();
    wait_for_requests(env, 120);
    redis.start();  // empty: the server keeps nothing on disk
  });
  RunResult r = batch(env, redis.url(), {input, "-m", "oa/m", "-j", "4"});
  outage.join();
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(ok_lines(r.out) == 300);
  CHECK(count_lines(r.err, "detour: warning: ") == 1);
  CHECK(count_lines(r.err, "continuing without shared state (memory)") == 1);
  // Back on the server once it answered again: the batch wrote its documents there.
  CHECK(redis.cli({"EXISTS", "detour:{state}:target:oa/m"}).out == "1\n");
}

TEST_CASE("redis: FLUSHALL during a batch forgets what was learned, not the lines", "[redis]") {
  RedisServer redis;
  Env env(json{{"default", {{"latency_ms", 10}}}});
  const std::string input = env.dir.write("in.jsonl", questions(200));
  std::thread flush([&] {
    wait_for_requests(env, 80);
    redis.cli({"FLUSHALL"});
  });
  RunResult r = batch(env, redis.url(), {input, "-m", "oa/m", "-j", "4"});
  flush.join();
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(ok_lines(r.out) == 200);
  CHECK(count_lines(r.err, "warning") == 0);
  CHECK(redis.cli({"EXISTS", "detour:{state}:target:oa/m"}).out == "1\n");
}
