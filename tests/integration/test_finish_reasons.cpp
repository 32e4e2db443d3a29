// Never half an answer (issue 10), end to end: the real detour against detour-mock. A 200
// whose finish reason says the answer did not end normally, an error inside a stream, a quota
// error told apart only by its words, -o on the fields detour owns, and --no-fallback /
// --no-degrade after the route's strategy.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>

#include "harness.hpp"
#include "resilience_util.hpp"

using detour::testing::RunOptions;
using detour::testing::resilience::attempts_of;
using detour::testing::resilience::Env;
using detour::testing::resilience::parse_json;
using detour::testing::resilience::providers_toml;
using nlohmann::json;

namespace {

json models(json per_model) {
  return json{{"models", std::move(per_model)}};
}

// Env's config plus a Gemini provider `ge` on the same mock.
void add_gemini(Env& env, const std::string& extra_toml = "") {
  env.config =
      env.dir.write("config.toml", providers_toml(env.mock) + "[providers.ge]\n" +
                                       "protocol = \"gemini\"\nbase_url = \"" + env.mock.url() +
                                       "\"\napi_key_env = \"TEST_KEY\"\n\n" + extra_toml);
}

}  // namespace

TEST_CASE("a finish reason content_filter is exit 4 with nothing in the pipe, plain and streamed",
          "[finish]") {
  // OpenAI: finish_reason content_filter (openapi.yaml: "content was omitted due to a flag
  // from our content filters"); Anthropic: stop_reason refusal; Gemini: finishReason SAFETY.
  struct Row {
    const char* target;
    const char* finish;
  };
  const Row rows[] = {
      {"oa/filtered", "content_filter"}, {"an/filtered", "refusal"}, {"ge/filtered", "SAFETY"}};
  for (const char* wire : {"--no-stream", "--stream-wire"}) {
    for (const auto& row : rows) {
      Env env(models({{"filtered", {{"finish_reason", row.finish}}}}));
      add_gemini(env);
      INFO(row.target << " " << wire);
      std::vector<std::string> args = {"-v", "-m", row.target, "-m", "oa/healthy", "hi"};
      // A stream into a pipe: --first-token-timeout streams on the wire, output stays buffered.
      if (std::string(wire) == "--stream-wire") {
        args.insert(args.begin(), {"--first-token-timeout", "30s"});
      } else {
        args.insert(args.begin(), "--no-stream");
      }
      auto r = env.ask(args);
      CHECK(r.exit_code == 4);
      CHECK(r.out.empty());
      CHECK_THAT(r.err, Catch::Contains("content_filter"));
      CHECK(env.requests("healthy") == 0);
    }
  }
}

TEST_CASE("finish reasons error and overloaded_error fail the attempt and fail over", "[finish]") {
  struct Row {
    const char* finish;
    const char* expected;
    int attempts_on_first;  // error: retried once; overloaded: --retries 1
  };
  const Row rows[] = {{"error", "invalid_response", 2},
                      {"overloaded_error", "overloaded", 2},
                      {"something_new", "invalid_response", 2}};
  for (const auto& row : rows) {
    for (bool stream : {false, true}) {
      INFO(row.finish << (stream ? " streamed" : " plain"));
      Env env(models({{"gw", {{"finish_reason", row.finish}}}}));
      auto r = env.ask({"--json", "--retries", "1", stream ? "--stream" : "--no-stream", "-m",
                        "oa/gw", "-m", "an/healthy", "hi"});
      REQUIRE(r.exit_code == 0);
      auto j = parse_json(r);
      CHECK(j["ok"] == true);
      CHECK(j["model"] == "healthy");
      CHECK(j["content"] == "mock reply to: hi");
      CHECK(j["finish_reason"] == "stop");
      auto gw = attempts_of(j, "gw");
      REQUIRE(gw.size() == static_cast<std::size_t>(row.attempts_on_first));
      CHECK(gw[0]["status"] == 200);
      CHECK(gw[0]["error"] == row.expected);
    }
  }
}

TEST_CASE("a route with on_content_filter = next moves on after a filtered finish", "[finish]") {
  Env env(models({{"filtered", {{"finish_reason", "content_filter"}}}}),
          "[routes.lenient]\nstrategy = \"fallback\"\ntargets = [\"oa/filtered\", \"an/other\"]\n"
          "on_content_filter = \"next\"\n");
  auto r = env.ask({"--json", "-m", "lenient", "hi"});
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r);
  CHECK(j["model"] == "other");
  CHECK(j["attempts"][0]["error"] == "content_filter");
}

TEST_CASE("Anthropic's credit-balance 400 is quota_exhausted: fail over, circuit open for long",
          "[finish]") {
  // The API answers 400 invalid_request_error "Your credit balance is too low to access the
  // Anthropic API" (as users report it): only the words tell it from a bad request.
  Env env(models({{"broke", {{"fault", "credit_balance"}}}}));
  const std::string state = env.state_url();
  auto r = env.ask({"--json", "--state", state, "-m", "an/broke", "-m", "oa/healthy", "hi"});
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r);
  CHECK(j["model"] == "healthy");
  CHECK(j["attempts"][0]["status"] == 400);
  CHECK(j["attempts"][0]["error"] == "quota_exhausted");
  CHECK(env.requests("broke") == 1);
  // The next call does not send it again: the circuit is open for an hour.
  auto again = env.ask({"--json", "--state", state, "-m", "an/broke", "-m", "oa/healthy", "hi"});
  REQUIRE(again.exit_code == 0);
  auto k = parse_json(again);
  CHECK(k["attempts"][0]["error"] == "skipped_open");
  CHECK(env.requests("broke") == 1);
}

TEST_CASE("an error inside a stream gets the class it has as an error reply", "[finish]") {
  // OpenAI `data: {"error": {"type": "server_error"}}` is a server error, not a malformed
  // stream; Anthropic's `event: error` overloaded_error is overloaded; Gemini's raw error
  // object UNAVAILABLE is overloaded.
  Env env(models({{"cut", {{"fault", "sse_error"}}}}));
  add_gemini(env);
  struct Row {
    const char* target;
    const char* expected;
  };
  const Row rows[] = {
      {"oa/cut", "server_error"}, {"an/cut", "overloaded"}, {"ge/cut", "overloaded"}};
  for (const auto& row : rows) {
    INFO(row.target);
    auto r = env.ask(
        {"--json", "--stream", "--retries", "0", "-m", row.target, "-m", "oa/healthy", "hi"});
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(r);
    CHECK(j["attempts"][0]["status"] == 200);
    CHECK(j["attempts"][0]["error"] == row.expected);
    CHECK(j["model"] == "healthy");
  }
}

TEST_CASE("-o refuses the fields detour owns, before sending anything", "[finish]") {
  Env env;
  struct Row {
    const char* option;
    const char* flag;
  };
  const Row rows[] = {{"stream=true", "--stream"},
                      {"max_tokens=10", "--max-tokens"},
                      {"max_completion_tokens=10", "--max-tokens"},
                      {"model=other", "-m"},
                      {"messages=[]", "the prompt"}};
  for (const auto& row : rows) {
    INFO(row.option);
    auto r = env.ask({"--max-tokens", "50", "-o", row.option, "-m", "oa/m", "hi"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err,
               Catch::Contains(std::string("-o ") + row.option) && Catch::Contains(row.flag));
  }
  CHECK(env.mock.stats()["requests"] == 0);
  // Fields detour does not own still reach the provider.
  auto ok = env.ask({"-o", "seed=7", "--max-tokens", "50", "-m", "oa/m", "hi"});
  REQUIRE(ok.exit_code == 0);
  const json params = env.mock.stats()["received"][0]["params"];
  CHECK(params["seed"] == 7);
  CHECK(params["max_tokens"] == 50);
  CHECK_FALSE(params.contains("max_completion_tokens"));
}

TEST_CASE("a bad request that stops the chain shows the target and the body it came with",
          "[finish]") {
  Env env(models({{"strict", {{"fault", "bad_request"}}}}));
  auto r = env.ask({"-v", "-m", "oa/strict", "-m", "an/other", "hi"});
  CHECK(r.exit_code == 4);
  CHECK_THAT(r.err, Catch::Contains("attempt 1: oa/strict: 400 bad_request"));
  CHECK_THAT(r.err, Catch::Contains("error: bad_request: oa/strict:"));
  CHECK_THAT(r.err, Catch::Contains("body: {\"error\""));
  CHECK(env.requests("other") == 0);
}

TEST_CASE("--no-fallback keeps the target round-robin picked, not the first listed", "[finish]") {
  Env env(models({{"a", {{"fault", "overloaded"}}}, {"b", {{"fault", "overloaded"}}}}),
          "[routes.rr]\nstrategy = \"round-robin\"\ntargets = [\"oa/a\", \"oa/b\"]\n");
  const std::string state = env.state_url();
  // Two calls take consecutive turns; with --no-fallback each sends to its turn's target only.
  for (int call = 0; call < 2; ++call) {
    auto r =
        env.ask({"--json", "--no-fallback", "--retries", "0", "--state", state, "-m", "rr", "hi"});
    CHECK(r.exit_code == 1);
    CHECK(parse_json(r)["attempts"].size() == 1);
  }
  CHECK(env.requests("a") == 1);
  CHECK(env.requests("b") == 1);
}

TEST_CASE("health finds an Anthropic model beyond the list's first page", "[finish]") {
  // GET /v1/models pages 20 models at a time unless `limit` says otherwise (up to 1000);
  // detour asks for 1000, so a model on what would be page two is still found.
  json per_model = json::object();
  for (int i = 0; i < 25; ++i)
    per_model["zz-model-" + std::to_string(10 + i)] = json::object();
  Env env(models(per_model));
  auto r = detour::testing::run({detour::testing::detour_bin(), "-c", env.config, "health",
                                 "an/zz-model-34", "--format", "json"},
                                [] {
                                  RunOptions o;
                                  o.env = {{"TEST_KEY", "k"}};
                                  return o;
                                }());
  CHECK(r.exit_code == 0);
  auto j = parse_json(r);
  REQUIRE(j.is_array());
  CHECK(j[0]["status"] == "ok");
}
