// The resilience engine end to end (issue 3): the real detour binary against detour-mock.
// One test per row of the class -> action table (src/engine/policy.cpp), the deadline,
// response validation, streams and hedging. Shared state, breakers and routes are in
// test_resilience_state.cpp.
#include <catch2/catch.hpp>
#include <csignal>

#include "harness.hpp"
#include "resilience_util.hpp"

using detour::testing::RunOptions;
using detour::testing::resilience::attempts_of;
using detour::testing::resilience::count_lines;
using detour::testing::resilience::Env;
using detour::testing::resilience::parse_json;
using nlohmann::json;

namespace {

json models(json per_model) {
  return json{{"models", std::move(per_model)}};
}

}  // namespace

// ---- error classes and their actions ----------------------------------------------------

TEST_CASE("rate_limited with a short hint waits it and retries the same target", "[resilience]") {
  Env env(models({{"rl", {{"fault", "rate_limit"}, {"times", 1}, {"retry_after_s", 1}}}}));
  auto t = env.timed_ask({"-v", "--json", "-m", "oa/rl", "-m", "an/other", "hi"});
  REQUIRE(t.r.exit_code == 0);
  auto j = parse_json(t.r);
  CHECK(j["model"] == "rl");
  REQUIRE(j["attempts"].size() == 2);
  CHECK(j["attempts"][0]["status"] == 429);
  CHECK(j["attempts"][0]["error"] == "rate_limited");
  CHECK(j["attempts"][1]["model"] == "rl");
  CHECK(j["attempts"][1]["status"] == 200);
  CHECK(j["attempts"][1]["waited_ms"] >= 900);
  CHECK(t.ms >= 900);
  CHECK_THAT(t.r.err, Catch::Contains("waiting retry-after 1s: retrying oa/rl"));
  CHECK(env.requests("rl") == 2);
  CHECK(env.requests("other") == 0);
}

TEST_CASE("rate_limited with a long hint moves on at once", "[resilience]") {
  Env env(models({{"rl", {{"fault", "rate_limit"}, {"retry_after_s", 37}}}}));
  auto t = env.timed_ask({"-v", "--json", "-m", "oa/rl", "-m", "an/other", "hi"});
  REQUIRE(t.r.exit_code == 0);
  auto j = parse_json(t.r);
  CHECK(j["model"] == "other");
  REQUIRE(j["attempts"].size() == 2);
  CHECK(j["attempts"][0]["error"] == "rate_limited");
  CHECK(j["attempts"][1]["waited_ms"] == 0);
  CHECK(t.ms < 10000);  // not the 37 s of the hint
  CHECK_THAT(t.r.err, Catch::Contains("oa/rl: 429 rate_limited"));
  CHECK_THAT(t.r.err, Catch::Contains("retry-after 37s > 10s while another target is usable: "
                                      "next target an/other"));
  CHECK(env.requests("rl") == 1);
  CHECK(env.requests("other") == 1);
}

TEST_CASE("insufficient_quota is never retried, whatever --retries says", "[resilience]") {
  Env env(models({{"broke", {{"fault", "insufficient_quota"}}}}));
  auto r = env.ask({"--json", "--retries", "3", "-m", "oa/broke", "-m", "an/other", "hi"});
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r);
  CHECK(j["model"] == "other");
  CHECK(j["attempts"][0]["status"] == 429);
  CHECK(j["attempts"][0]["error"] == "quota_exhausted");
  CHECK(env.requests("broke") == 1);
}

TEST_CASE("Anthropic 529 overloaded_error is retried, then the chain moves on", "[resilience]") {
  Env env(models({{"busy", {{"fault", "overloaded"}}}}));
  auto r = env.ask({"--json", "--retries", "1", "-m", "an/busy", "-m", "oa/other", "hi"});
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r);
  CHECK(j["model"] == "other");
  auto busy = attempts_of(j, "busy");
  REQUIRE(busy.size() == 2);
  for (const auto& a : busy) {
    CHECK(a["status"] == 529);
    CHECK(a["error"] == "overloaded");
  }
  CHECK(busy[1]["waited_ms"].is_number());
  CHECK(env.requests("busy") == 2);
}

TEST_CASE("--retries N bounds the retries of a 503 to exactly N", "[resilience]") {
  Env env(models({{"down", {{"fault", "unavailable"}}}}));
  for (int n : {0, 1, 2}) {
    INFO("--retries " << n);
    env.mock.reset_stats();
    auto r = env.ask(
        {"--json", "--retries", std::to_string(n), "-m", "oa/down", "-m", "an/other", "hi"});
    REQUIRE(r.exit_code == 0);
    CHECK(parse_json(r)["model"] == "other");
    CHECK(env.requests("down") == n + 1);
    CHECK(env.requests("other") == 1);
  }
  // A 500 is server_error, retried the same way.
  env.mock.set_scenario(models({{"down", {{"fault", "server_error"}}}}));
  auto r = env.ask({"--json", "--retries", "1", "-m", "oa/down", "-m", "an/other", "hi"});
  REQUIRE(r.exit_code == 0);
  auto down = attempts_of(parse_json(r), "down");
  REQUIRE(down.size() == 2);
  CHECK(down[0]["error"] == "server_error");
}

TEST_CASE("x-should-retry overrides the status either way", "[resilience]") {
  Env env(models({{"no", {{"fault", "unavailable"}, {"headers", {{"x-should-retry", "false"}}}}},
                  {"yes", {{"fault", "not_found"}, {"headers", {{"x-should-retry", "true"}}}}}}));
  auto r = env.ask({"-v", "--retries", "2", "-m", "oa/no", "-m", "an/other", "hi"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("x-should-retry: false"));
  CHECK(env.requests("no") == 1);

  // not_found is never retried on its own; "true" makes it worth one.
  r = env.ask({"-v", "--retries", "1", "-m", "oa/yes", "-m", "an/other2", "hi"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("x-should-retry: true"));
  CHECK(env.requests("yes") == 2);
}

TEST_CASE("not_found moves on without a retry", "[resilience]") {
  Env env(models({{"gone", {{"fault", "not_found"}}}}));
  auto r = env.ask({"--json", "--retries", "2", "-m", "oa/gone", "-m", "an/other", "hi"});
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r);
  CHECK(j["model"] == "other");
  CHECK(j["attempts"][0]["status"] == 404);
  CHECK(j["attempts"][0]["error"] == "not_found");
  CHECK(env.requests("gone") == 1);
}

TEST_CASE("bad_request stops the chain with exit 4", "[resilience]") {
  Env env(models({{"bad", {{"fault", "bad_request"}}}}));
  auto r = env.ask({"--json", "-m", "oa/bad", "-m", "an/other", "hi"});
  CHECK(r.exit_code == 4);
  auto j = parse_json(r);
  CHECK(j["ok"] == false);
  CHECK(j["error"]["class"] == "bad_request");
  CHECK(j["error"]["status"] == 400);
  CHECK(j["attempts"].size() == 1);
  CHECK(env.requests("bad") == 1);
  CHECK(env.requests("other") == 0);
}

TEST_CASE("auth refused on every target exits 5", "[resilience]") {
  Env env(models({{"k1", {{"fault", "auth"}}}, {"k2", {{"fault", "auth"}}}}));
  auto r = env.ask({"--json", "--retries", "2", "-m", "oa/k1", "-m", "an/k2", "hi"});
  CHECK(r.exit_code == 5);
  auto j = parse_json(r);
  CHECK(j["error"]["class"] == "auth");
  CHECK(j["attempts"].size() == 2);
  CHECK(env.requests("k1") == 1);  // moves on: a refused key is not retried
  CHECK(env.requests("k2") == 1);
}

TEST_CASE("context_length moves only to a target with a larger context window", "[resilience]") {
  // The mock's windows make small and mid refuse the prompt; the config tells detour that mid's
  // window is smaller than small's, so after small refuses, mid is not even tried.
  Env env(models({{"small", {{"context_window", 5}}}, {"mid", {{"context_window", 5}}}}),
          "[models.\"oa/small\"]\ncontext_window = 1000\n\n"
          "[models.\"oa/mid\"]\ncontext_window = 500\n\n"
          "[models.\"an/big\"]\ncontext_window = 100000\n");
  const std::string prompt = "a prompt that is certainly longer than five tokens of context";
  auto r = env.ask({"-v", "--json", "-m", "oa/small,oa/mid,an/big", prompt});
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r);
  CHECK(j["model"] == "big");
  CHECK(j["attempts"][0]["error"] == "context_length");
  CHECK(j["attempts"].size() == 2);
  CHECK_THAT(r.err, Catch::Contains("skipping oa/mid"));
  CHECK(env.requests("small") == 1);
  CHECK(env.requests("mid") == 0);

  env.mock.reset_stats();
  r = env.ask({"--json", "-m", "oa/small,oa/mid", prompt});
  CHECK(r.exit_code == 4);
  j = parse_json(r);
  CHECK(j["error"]["class"] == "context_length");
  CHECK(env.requests("small") == 1);
  CHECK(env.requests("mid") == 0);
}

TEST_CASE("invalid_response is retried once, then the chain moves on", "[resilience]") {
  Env env(models({{"garbled", {{"fault", "truncated_json"}}}}));
  auto r = env.ask({"--json", "--retries", "2", "-m", "oa/garbled", "-m", "an/other", "hi"});
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r);
  CHECK(j["model"] == "other");
  auto garbled = attempts_of(j, "garbled");
  REQUIRE(garbled.size() == 2);
  CHECK(garbled[0]["status"] == 200);
  CHECK(garbled[0]["error"] == "invalid_response");
  CHECK(garbled[1]["error"] == "invalid_response");
  CHECK(env.requests("garbled") == 2);
}

TEST_CASE("connection failures move on now and come back after the rest of the chain failed",
          "[resilience]") {
  Env env(models({{"down", {{"fault", "unavailable"}}}}),
          detour::testing::resilience::dead_provider_toml());
  auto r = env.ask({"--json", "--retries", "1", "-m", "dead/x", "-m", "oa/down", "hi"});
  CHECK(r.exit_code == 1);
  auto j = parse_json(r);
  REQUIRE(j["attempts"].size() == 4);
  // dead/x once, oa/down and its retry, then dead/x's one come-back pass.
  CHECK(j["attempts"][0]["model"] == "x");
  CHECK(j["attempts"][0]["error"] == "connection");
  CHECK(j["attempts"][0]["status"].is_null());
  CHECK(j["attempts"][1]["model"] == "down");
  CHECK(j["attempts"][2]["model"] == "down");
  CHECK(j["attempts"][3]["model"] == "x");
  CHECK(env.requests("down") == 2);
}

// ---- deadline -----------------------------------------------------------------------------

TEST_CASE("--deadline ends the whole call in about that time", "[resilience]") {
  // Both targets are slow: when the first attempt's share ends a hair before the deadline, the
  // second may still be started with what is left (a fast one could rightly answer in it).
  Env env(models({{"slow", {{"latency_ms", 10000}}}, {"slow2", {{"latency_ms", 10000}}}}));
  auto t =
      env.timed_ask({"--json", "--deadline", "400ms", "-m", "oa/slow", "-m", "an/slow2", "hi"});
  CHECK(t.r.exit_code == 1);
  auto j = parse_json(t.r);
  CHECK(j["error"]["class"] == "timeout");
  CHECK(t.ms >= 350);
  CHECK(t.ms < 6000);  // not the 10 s an answer would take
  CHECK(j["latency_ms"] >= 380);
  CHECK(j["latency_ms"] < 5000);
  CHECK(j["attempts"][0]["error"] == "timeout");

  // A server hint longer than the time left is not slept: the call ends now.
  env.mock.set_scenario(models({{"rl", {{"fault", "rate_limit"}, {"retry_after_s", 30}}}}));
  t = env.timed_ask({"-v", "--json", "--deadline", "20s", "-m", "oa/rl", "hi"});
  CHECK(t.r.exit_code == 1);
  CHECK(parse_json(t.r)["error"]["class"] == "rate_limited");
  CHECK_THAT(t.r.err, Catch::Contains("retry-after 30s >= time left"));
  CHECK(t.ms < 10000);  // not the 20 s deadline
  CHECK(env.requests("rl") == 1);
}

TEST_CASE("Ctrl-C during a retry wait stops the call at once with exit 130", "[resilience]") {
  // A 10 s hint is still waited (a longer one would move on) when no other target is usable.
  Env env(models({{"rl", {{"fault", "rate_limit"}, {"retry_after_s", 10}}}}));
  RunOptions o;
  o.send_signal = SIGINT;
  o.signal_when_output = "waiting retry-after 10s";
  o.timeout = std::chrono::milliseconds(20000);
  auto t = env.timed_ask({"-v", "--json", "-m", "oa/rl", "hi"}, o);
  CHECK(t.r.exit_code == 130);
  CHECK(parse_json(t.r)["error"]["class"] == "cancelled");
  CHECK(t.ms < 7000);  // not the 10 s wait
  CHECK(env.requests("rl") == 1);
}

// ---- response validation ------------------------------------------------------------------

TEST_CASE("empty content and refusals are failed attempts that move on", "[resilience]") {
  Env env(models({{"blank", {{"fault", "empty"}}}, {"sorry", {{"fault", "refusal"}}}}));
  auto r = env.ask({"--json", "-m", "oa/blank", "-m", "oa/sorry", "-m", "an/other", "hi"});
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r);
  CHECK(j["content"] == "mock reply to: hi");
  REQUIRE(j["attempts"].size() == 3);
  CHECK(j["attempts"][0]["status"] == 200);
  CHECK(j["attempts"][0]["error"] == "empty_response");
  CHECK(j["attempts"][1]["status"] == 200);
  CHECK(j["attempts"][1]["error"] == "refusal");
  CHECK(env.requests("blank") == 1);
  CHECK(env.requests("sorry") == 1);
}

TEST_CASE("--schema: an answer that does not match is schema_mismatch", "[resilience]") {
  Env env(models({{"wrong", {{"fault", "wrong_schema"}}}}));
  const std::string schema = env.dir.write(
      "schema.json",
      R"({"type": "object", "required": ["reply"], "properties": {"reply": {"type": "string"}}})");
  auto r = env.ask({"--json", "--schema", schema, "-m", "oa/wrong", "-m", "oa/right", "hi"});
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r);
  CHECK(j["model"] == "right");
  CHECK(j["attempts"][0]["error"] == "schema_mismatch");
  CHECK(json::parse(j["content"].get<std::string>()) == json{{"reply", "mock reply to: hi"}});
  const json stats = env.mock.stats();  // kept alive: the loop reads into it
  for (const auto& req : stats["received"])
    CHECK(req["json"] == true);  // --schema asks for JSON output

  // A schema no answer matches fails on every target.
  const std::string other =
      env.dir.write("other.json", R"({"type": "object", "required": ["answer"]})");
  r = env.ask({"--json", "--schema", other, "-m", "oa/right", "-m", "an/also", "hi"});
  CHECK(r.exit_code == 1);
  CHECK(parse_json(r)["error"]["class"] == "schema_mismatch");
  CHECK(env.requests("also") == 1);
}

TEST_CASE("--require-complete makes an answer cut at max tokens truncated", "[resilience]") {
  Env env;
  auto r = env.ask({"--json", "--require-complete", "--max-tokens", "2", "-m", "oa/a", "-m", "an/b",
                    "one two three"});
  CHECK(r.exit_code == 1);
  auto j = parse_json(r);
  CHECK(j["error"]["class"] == "truncated");
  REQUIRE(j["attempts"].size() == 2);
  CHECK(j["attempts"][0]["error"] == "truncated");
  CHECK(j["attempts"][1]["error"] == "truncated");
  CHECK(env.requests("a") == 1);

  // Without the flag the same cut answer is an answer.
  r = env.ask({"--json", "--max-tokens", "2", "-m", "oa/a", "one two three"});
  CHECK(r.exit_code == 0);
  CHECK(parse_json(r)["finish_reason"] == "length");
}

// ---- streams ------------------------------------------------------------------------------

TEST_CASE("a stream that fails before its first token fails over cleanly", "[resilience]") {
  // The mock's sse_cut always sends at least one text chunk, so "before the first token" is
  // a hang-up (close) or an error status before any event.
  Env env(models({{"hangup", {{"fault", "close"}}}, {"busy", {{"fault", "unavailable"}}}}));
  auto r = env.ask({"--stream", "--retries", "0", "-m", "oa/hangup", "-m", "an/busy", "-m",
                    "oa/whole", "one two three"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "mock reply to: one two three\n");
  CHECK_THAT(r.err, !Catch::Contains("broke after"));
  const json later = env.mock.stats();
  for (const auto& req : later["received"])
    CHECK(req["stream"] == true);
  CHECK(env.requests("hangup") == 1);
  CHECK(env.requests("busy") == 1);
}

TEST_CASE("--first-token-timeout moves on from a slow first token", "[resilience]") {
  // Streamed: ttft_ms delays the first text chunk; keep-alive comments before it are no token.
  // Plain: the reply's tokens come with its body, whether the headers are late too
  // (latency_ms, slow_headers) or sent at once (ttft_ms, DeepSeek's blank lines).
  struct Row {
    const char* mode;
    json slow;
  };
  const std::vector<Row> rows = {
      {"--stream", {{"ttft_ms", 10000}}},
      {"--stream", {{"fault", "keepalive"}, {"ttft_ms", 10000}}},
      {"--no-stream", {{"latency_ms", 10000}}},
      {"--no-stream", {{"fault", "slow_headers"}, {"ttft_ms", 10000}}},
      {"--no-stream", {{"ttft_ms", 10000}}},
      {"--no-stream", {{"fault", "blank_lines"}, {"ttft_ms", 10000}}},
  };
  for (const auto& row : rows) {
    INFO(row.mode << " " << row.slow.dump());
    Env env(models({{"slow", row.slow}}));
    auto t = env.timed_ask({"--json", row.mode, "--first-token-timeout", "200ms", "-m", "oa/slow",
                            "-m", "an/fast", "hi"});
    REQUIRE(t.r.exit_code == 0);
    auto j = parse_json(t.r);
    CHECK(j["model"] == "fast");
    CHECK(j["attempts"][0]["error"] == "timeout");
    CHECK(j["attempts"][0]["latency_ms"] < 5000);
    CHECK(t.ms < 6000);  // not the 10 s of the slow target
  }
}

TEST_CASE("buffered output never contains text from a failed attempt", "[resilience]") {
  const std::string whole = "mock reply to: one two three four five six\n";
  for (const char* fault : {"sse_cut", "sse_error", "truncated_json"}) {
    INFO(fault);
    Env env(models({{"bad", {{"fault", fault}}}}));
    // Into a pipe, by default: nothing is printed until an answer passed its checks.
    auto r =
        env.ask({"--retries", "0", "-m", "oa/bad", "-m", "an/good", "one two three four five six"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == whole);
    CHECK(env.requests("bad") >= 1);

    // Streamed on the wire but printed once (--json): the failed stream's text is dropped.
    r = env.ask({"--json", "--stream", "--retries", "0", "-m", "oa/bad", "-m", "an/good",
                 "one two three four five six"});
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(r);
    CHECK(j["content"] == "mock reply to: one two three four five six");
    CHECK(j["attempts"][0]["error"].is_string());
    CHECK(j["attempts"].back()["model"] == "good");
  }
}

// ---- hedging ------------------------------------------------------------------------------

TEST_CASE("--hedge asks the next target too and cancels the loser", "[resilience]") {
  Env env(models({{"slow", {{"latency_ms", 10000}, {"ttft_ms", 10000}}}}));
  for (const char* mode : {"--no-stream", "--stream"}) {
    INFO(mode);
    env.mock.reset_stats();
    auto t = env.timed_ask(
        {"-v", "--json", mode, "--hedge=100ms", "-m", "oa/slow", "-m", "an/fast", "hi"});
    REQUIRE(t.r.exit_code == 0);
    auto j = parse_json(t.r);
    CHECK(j["model"] == "fast");
    CHECK(j["content"] == "mock reply to: hi");
    CHECK(t.ms < 6000);  // not the 10 s of the slow target
    auto slow = attempts_of(j, "slow");
    REQUIRE(slow.size() == 1);
    CHECK(slow[0]["error"] == "cancelled");
    CHECK(slow[0]["status"].is_null());
    CHECK(attempts_of(j, "fast").size() == 1);
    CHECK_THAT(t.r.err, Catch::Contains("hedging with an/fast"));
    // Each -v line carries the number its attempt was started as, though both were in flight.
    CHECK(count_lines(t.r.err, "attempt 2: an/fast: 200 in ") == 1);
    CHECK(count_lines(t.r.err, "attempt 1: oa/slow: no reply cancelled (lost the hedge") == 1);
    CHECK(env.requests("fast") == 1);  // (the mock counts the slow one only when it answers)
  }

  // Without --hedge the same chain waits for the slow target.
  env.mock.set_scenario(models({{"slow", {{"latency_ms", 600}}}}));
  env.mock.reset_stats();
  auto j = parse_json(env.ask({"--json", "-m", "oa/slow", "-m", "an/fast", "hi"}));
  CHECK(j["model"] == "slow");
  CHECK(env.requests("fast") == 0);
}

// ---- visibility ---------------------------------------------------------------------------

TEST_CASE("-v prints one line per attempt with the decision and its reason", "[resilience]") {
  Env env(models({{"rl", {{"fault", "rate_limit"}, {"retry_after_s", 37}}},
                  {"flaky", {{"fault", "unavailable"}, {"times", 1}}}}));
  auto r = env.ask({"-v", "-m", "oa/rl", "-m", "an/flaky", "why"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "mock reply to: why\n");
  INFO(r.err);
  CHECK(count_lines(r.err, "detour: attempt ") == 3);
  CHECK(count_lines(r.err, "attempt 1: oa/rl: 429 rate_limited (") == 1);
  CHECK(count_lines(r.err,
                    "retry-after 37s > 10s while another target is usable: next target "
                    "an/flaky") == 1);
  CHECK(count_lines(r.err, "attempt 2: an/flaky: 503 overloaded (") == 1);
  CHECK(count_lines(r.err, ": waiting backoff ") == 1);
  CHECK(count_lines(r.err, "attempt 3: an/flaky: 200 in ") == 1);
  CHECK(count_lines(r.err, ": answered") == 1);
  // Without -v: nothing on stderr at all.
  env.mock.set_scenario(models({{"rl", {{"fault", "rate_limit"}, {"retry_after_s", 37}}}}));
  r = env.ask({"-m", "oa/rl", "-m", "an/flaky", "why"});
  CHECK(r.exit_code == 0);
  CHECK(r.err == "");
}
