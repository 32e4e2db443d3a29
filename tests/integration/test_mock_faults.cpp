// detour-mock faults: error shapes per provider, retry hints, "times", outages, transport
// faults (reset, close, truncation), content faults, stream faults, and timing.
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "test_mock_util.hpp"

using namespace detour::testing;
using namespace detour::testing::mock_util;
using nlohmann::json;

TEST_CASE("error faults use each provider's real status and body", "[mock]") {
  struct Row {
    std::string fault;
    int openai_status;
    std::string openai_code;  // error.code, or error.type when code is null
    int anthropic_status;
    std::string anthropic_type;
    int gemini_status;
    std::string gemini_status_name;
  };
  std::vector<Row> rows = {
      {"rate_limit", 429, "rate_limit_exceeded", 429, "rate_limit_error", 429,
       "RESOURCE_EXHAUSTED"},
      {"insufficient_quota", 429, "insufficient_quota", 402, "billing_error", 429,
       "RESOURCE_EXHAUSTED"},
      {"request_too_large", 429, "rate_limit_exceeded", 413, "request_too_large", 400,
       "INVALID_ARGUMENT"},
      {"overloaded", 503, "server_error", 529, "overloaded_error", 503, "UNAVAILABLE"},
      {"server_error", 500, "server_error", 500, "api_error", 500, "INTERNAL"},
      {"unavailable", 503, "503", 503, "api_error", 503, "UNAVAILABLE"},
      {"context_length", 400, "context_length_exceeded", 400, "invalid_request_error", 400,
       "INVALID_ARGUMENT"},
      {"bad_request", 400, "invalid_request_error", 400, "invalid_request_error", 400,
       "INVALID_ARGUMENT"},
      {"not_found", 404, "model_not_found", 404, "not_found_error", 404, "NOT_FOUND"},
      {"auth", 401, "invalid_api_key", 401, "authentication_error", 400, "INVALID_ARGUMENT"},
      {"content_filter", 400, "content_policy_violation", 400, "invalid_request_error", 200, ""},
  };
  MockServer mock;
  for (const auto& row : rows) {
    INFO("fault " << row.fault);
    mock.set_scenario({{"default", {{"fault", row.fault}}}});
    auto o = openai(mock, openai_body("x"));
    REQUIRE(o);
    CHECK(o->status == row.openai_status);
    auto oj = body_json(o)["error"];
    CHECK((oj["code"].is_null() ? oj["type"] : oj["code"]).dump().find(row.openai_code) !=
          std::string::npos);
    for (auto key : {"message", "type", "param", "code"})
      CHECK(oj.contains(key));
    auto a = anthropic(mock, anthropic_body("x"));
    CHECK(a->status == row.anthropic_status);
    CHECK(body_json(a)["type"] == "error");
    CHECK(body_json(a)["error"]["type"] == row.anthropic_type);
    auto g = gemini(mock, gemini_body("x"));
    CHECK(g->status == row.gemini_status);
    if (row.gemini_status == 200)
      CHECK(body_json(g)["promptFeedback"]["blockReason"] == "SAFETY");
    else
      CHECK(body_json(g)["error"]["status"] == row.gemini_status_name);
  }
  // Distinguishing details a classifier relies on.
  mock.set_scenario({{"default", {{"fault", "auth"}}}});
  CHECK(body_json(gemini(mock, gemini_body("x")))["error"]["details"][0]["reason"] ==
        "API_KEY_INVALID");
  mock.set_scenario({{"default", {{"fault", "insufficient_quota"}}}});
  CHECK(body_json(
            gemini(mock, gemini_body("x")))["error"]["details"][0]["violations"][0]["quotaId"] ==
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier");
  mock.set_scenario({{"default", {{"fault", "request_too_large"}}}});
  CHECK(body_json(openai(mock, openai_body("x")))["error"]["message"].get<std::string>().rfind(
            "Request too large", 0) == 0);
  mock.set_scenario({{"default", {{"fault", "bad_gateway"}}}});
  auto gw = openai(mock, openai_body("x"));
  CHECK(gw->status == 502);
  CHECK(gw->get_header_value("Content-Type").find("text/html") == 0);
  mock.set_scenario({{"default", {{"fault", "status"}, {"status", 418}}}});
  CHECK(openai(mock, openai_body("x"))->status == 418);
  CHECK(body_json(anthropic(mock, anthropic_body("x")))["error"]["type"] ==
        "invalid_request_error");
  mock.set_scenario({{"default", {{"fault", "status"}, {"status", 504}}}});
  CHECK(body_json(anthropic(mock, anthropic_body("x")))["error"]["type"] == "timeout_error");
  CHECK(body_json(gemini(mock, gemini_body("x")))["error"]["status"] == "DEADLINE_EXCEEDED");
  // Errors answer streaming requests as plain JSON too, before any stream starts.
  mock.set_scenario({{"default", {{"fault", "overloaded"}}}});
  auto st = anthropic(mock, anthropic_body("x", {{"stream", true}}));
  CHECK(st->status == 529);
  CHECK(body_json(st)["error"]["type"] == "overloaded_error");
}

TEST_CASE("retry hints: retry-after, retry-after-ms, Gemini RetryInfo", "[mock]") {
  MockServer mock({{"default", {{"fault", "rate_limit"}}}});
  auto o = openai(mock, openai_body("x"));
  CHECK(o->get_header_value("retry-after") == "1");  // a rate limit always says when
  CHECK(o->get_header_value("retry-after-ms") == "1000");
  auto a = anthropic(mock, anthropic_body("x"));
  CHECK(a->get_header_value("retry-after") == "1");
  CHECK_FALSE(a->has_header("retry-after-ms"));  // OpenAI only

  mock.set_scenario(
      {{"default", {{"fault", "rate_limit"}, {"retry_after_s", 2.5}, {"retry_delay", "37s"}}}});
  o = openai(mock, openai_body("x"));
  CHECK(o->get_header_value("retry-after") == "3");
  CHECK(o->get_header_value("retry-after-ms") == "2500");
  CHECK(body_json(o)["error"]["message"].get<std::string>().find("Please try again in 2.5s") !=
        std::string::npos);
  auto g = body_json(gemini(mock, gemini_body("x")));
  bool found = false;
  for (const auto& d : g["error"]["details"])
    if (d["@type"] == "type.googleapis.com/google.rpc.RetryInfo") found = d["retryDelay"] == "37s";
  CHECK(found);
  CHECK(g["error"]["message"].get<std::string>().find("Please retry in 37s") != std::string::npos);

  mock.set_scenario({{"default",
                      {{"fault", "overloaded"},
                       {"retry_after_s", 2},
                       {"headers", {{"x-should-retry", "false"}}}}}});
  a = anthropic(mock, anthropic_body("x"));
  CHECK(a->status == 529);
  CHECK(a->get_header_value("retry-after") == "2");
  CHECK(a->get_header_value("x-should-retry") == "false");
  mock.set_scenario({{"default", {{"fault", "insufficient_quota"}}}});
  CHECK_FALSE(openai(mock, openai_body("x"))->has_header("retry-after"));
}

TEST_CASE("times: only the first N matching requests fail", "[mock]") {
  MockServer mock({{"default", {{"fault", "server_error"}, {"times", 2}}},
                   {"models", {{"flaky", {{"fault", "overloaded"}, {"times", 1}}}}}});
  CHECK(openai(mock, openai_body("x"))->status == 500);
  CHECK(openai(mock, openai_body("x", {{"model", "flaky"}}))->status == 503);
  CHECK(openai(mock, openai_body("x", {{"model", "flaky"}}))->status == 200);  // own counter
  CHECK(openai(mock, openai_body("x", {{"model", "other"}}))->status == 500);  // default's counter
  CHECK(openai(mock, openai_body("x"))->status == 200);
  CHECK(openai(mock, openai_body("x"))->status == 200);
  CHECK(mock.stats()["faults"] == 3);
  // A new scenario restarts the counters.
  mock.set_scenario({{"default", {{"fault", "server_error"}, {"times", 1}}}});
  CHECK(openai(mock, openai_body("x"))->status == 500);
  CHECK(openai(mock, openai_body("x"))->status == 200);
}

TEST_CASE("outage window: the fault applies only between from_s and to_s", "[mock]") {
  const auto before_start = Clock::now();
  MockServer mock(
      {{"default", {{"fault", "unavailable"}, {"outage", {{"from_s", 0}, {"to_s", 1.5}}}}},
       {"models",
        {{"later", {{"fault", "unavailable"}, {"outage", {{"from_s", 60}, {"to_s", 70}}}}}}}});
  CHECK(gemini(mock, gemini_body("x"))->status == 503);
  CHECK(body_json(gemini(mock, gemini_body("x")))["error"]["status"] == "UNAVAILABLE");
  CHECK(openai(mock, openai_body("x", {{"model", "later"}}))->status == 200);
  // Ask until the outage is over: it ends 1.5 s after the scenario was set, never sooner.
  int status = 503;
  while (status == 503 && elapsed_ms(before_start) < 10000) {
    status = gemini(mock, gemini_body("x"))->status;
    if (status == 503) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(status == 200);
  CHECK(elapsed_ms(before_start) >= 1500);
}

TEST_CASE("per-model behaviour replaces the default", "[mock]") {
  MockServer mock(
      {{"default", {{"fault", "server_error"}}}, {"models", {{"good", json::object()}}}});
  CHECK(anthropic(mock, anthropic_body("x"))->status == 500);
  CHECK(anthropic(mock, anthropic_body("x", {{"model", "good"}}))->status == 200);
  CHECK(gemini(mock, gemini_body("x"), false, "good")->status == 200);
}

TEST_CASE("context_window answers context_length for inputs that are too long", "[mock]") {
  MockServer mock({{"models", {{"small", {{"context_window", 10}}}}}});
  std::string long_prompt(100, 'a');
  auto r = openai(mock, openai_body(long_prompt, {{"model", "small"}}));
  CHECK(r->status == 400);
  CHECK(body_json(r)["error"]["code"] == "context_length_exceeded");
  CHECK(openai(mock, openai_body("short", {{"model", "small"}}))->status == 200);
  CHECK(openai(mock, openai_body(long_prompt))->status == 200);
}

TEST_CASE("transport faults: reset, close, truncated JSON, blank lines", "[mock]") {
  MockServer mock({{"default", {{"fault", "reset"}}}});
  CHECK_FALSE(openai(mock, openai_body("x")));  // Content-Length promised, half sent, reset
  CHECK_FALSE(openai(mock, openai_body("x", {{"stream", true}})));  // no final chunk
  mock.set_scenario({{"default", {{"fault", "close"}}}});
  CHECK_FALSE(anthropic(mock, anthropic_body("x")));
  CHECK(mock.stats()["received"].back()["status"] == 0);
  mock.set_scenario({{"default", {{"fault", "truncated_json"}}}});
  auto t = openai(mock, openai_body("x"));
  REQUIRE(t);
  CHECK(t->status == 200);
  CHECK(json::parse(t->body, nullptr, false).is_discarded());
  mock.set_scenario({{"default", {{"fault", "blank_lines"}, {"ttft_ms", 30}}}});
  auto b = openai(mock, openai_body("x"));
  REQUIRE(b);
  CHECK(b->body.rfind("\n\n\n{", 0) == 0);
  CHECK(json::parse(b->body)["choices"][0]["message"]["content"] == "mock reply to: x");
  mock.set_scenario({{"default", {{"fault", "slow_headers"}, {"ttft_ms", 150}}}});
  auto start = Clock::now();
  CHECK(openai(mock, openai_body("x"))->status == 200);
  CHECK(elapsed_ms(start) >= 150);
}

TEST_CASE("content faults: empty, refusal, wrong schema", "[mock]") {
  MockServer mock({{"default", {{"fault", "empty"}}}});
  auto e = body_json(openai(mock, openai_body("x")));
  CHECK(e["choices"][0]["message"]["content"] == "");
  CHECK(e["usage"]["completion_tokens"] == 0);
  mock.set_scenario({{"default", {{"fault", "refusal"}}}});
  CHECK(body_json(anthropic(mock, anthropic_body("x")))["content"][0]["text"] ==
        "I'm sorry, but I can't help with that.");
  mock.set_scenario({{"default", {{"fault", "wrong_schema"}}}});
  auto w = body_json(gemini(mock, gemini_body("x")));
  CHECK(json::parse(w["candidates"][0]["content"]["parts"][0]["text"].get<std::string>()) ==
        json{{"unexpected", true}});
  auto s = sse_data(openai(mock, openai_body("x", {{"stream", true}}))->body);
  CHECK(openai_stream_text(s) == R"({"unexpected": true})");
}

TEST_CASE("stream faults: cut, mid-stream error, keep-alive comments, torn chunk", "[mock]") {
  MockServer mock({{"default", {{"fault", "sse_cut"}}}});
  auto o = openai(mock, openai_body("a b c d e f", {{"stream", true}}));
  REQUIRE(o);
  CHECK(o->status == 200);
  auto chunks = sse_data(o->body);
  CHECK(chunks.size() >= 2);
  CHECK(o->body.find("[DONE]") == std::string::npos);
  CHECK(o->body.find("finish_reason\":\"stop") == std::string::npos);
  CHECK(std::string("mock reply to: a b c d e f").rfind(openai_stream_text(chunks), 0) == 0);
  auto a = anthropic(mock, anthropic_body("a b c", {{"stream", true}}));
  REQUIRE(a);
  CHECK(a->body.find("message_stop") == std::string::npos);
  CHECK(a->body.find("content_block_delta") != std::string::npos);
  auto g = gemini(mock, gemini_body("a b c"), true);
  REQUIRE(g);
  CHECK(g->body.find("finishReason") == std::string::npos);
  CHECK(g->body.find("\"text\":\"mock\"") != std::string::npos);

  mock.set_scenario({{"default", {{"fault", "sse_error"}}}});
  auto oe = sse_data(openai(mock, openai_body("x", {{"stream", true}}))->body);
  CHECK(oe.back()["error"]["type"] == "server_error");
  auto ae = anthropic(mock, anthropic_body("x", {{"stream", true}}));
  CHECK(sse_event_names(ae->body).back() == "error");
  CHECK(sse_data(ae->body).back()["error"]["type"] == "overloaded_error");
  auto ge = gemini(mock, gemini_body("x"), true);
  CHECK(ge->status == 200);
  auto raw = ge->body.find("\n{\n  \"error\"");  // raw multi-line JSON, no "data:" prefix
  REQUIRE(raw != std::string::npos);
  CHECK(json::parse(ge->body.substr(raw))["error"]["status"] == "UNAVAILABLE");
  // Without a stream the same fault is an overloaded answer.
  CHECK(anthropic(mock, anthropic_body("x"))->status == 529);

  mock.set_scenario({{"default", {{"fault", "keepalive"}}}});
  auto k = openai(mock, openai_body("x", {{"stream", true}}));
  CHECK(k->body.rfind(": keep-alive\n\n", 0) == 0);
  CHECK(openai_stream_text(sse_data(k->body)) == "mock reply to: x");

  mock.set_scenario({{"default", {{"fault", "truncated_json"}}}});
  auto tj = anthropic(mock, anthropic_body("a b", {{"stream", true}}));
  REQUIRE(tj);
  CHECK_THROWS(sse_data(tj->body));
}

TEST_CASE("latency, time to first token and per-token delay", "[mock]") {
  MockServer mock({{"default", {{"latency_ms", 80}, {"latency_jitter_ms", 20}}}});
  auto start = Clock::now();
  CHECK(openai(mock, openai_body("x"))->status == 200);
  auto took = elapsed_ms(start);
  CHECK(took >= 80);
  CHECK(took < 5000);

  mock.set_scenario({{"default", {{"ttft_ms", 60}, {"token_delay_ms", 30}}}});
  // 6 words: first token after 60 ms, then 5 gaps of 30 ms, arriving as they are produced.
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = openai_body("a b c", {{"stream", true}}).dump();
  req.set_header("Content-Type", "application/json");
  std::vector<long long> arrivals;
  start = Clock::now();
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
    arrivals.push_back(elapsed_ms(start));
    return true;
  };
  auto cli = client(mock);
  auto res = cli.send(req);
  REQUIRE(res);
  REQUIRE(arrivals.size() >= 2);
  CHECK(arrivals.front() >= 60);
  CHECK(arrivals.back() >= 60 + 5 * 30);
  CHECK(arrivals.back() - arrivals.front() >= 5 * 30 - 10);

  // A plain reply takes as long as the stream would have.
  start = Clock::now();
  CHECK(openai(mock, openai_body("a b c"))->status == 200);
  CHECK(elapsed_ms(start) >= 60 + 5 * 30);
}
