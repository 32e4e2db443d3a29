// detour-mock: answers that did not end normally (finish_* faults and the finish_reason key),
// the error a stream fails with (stream_error), and the out-of-credit errors (credit_balance).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness.hpp"
#include "test_mock_util.hpp"

using namespace detour::testing;
using namespace detour::testing::mock_util;
using nlohmann::json;

namespace {

const std::string kPrompt = "one two three four five six";
const std::string kWhole = "mock reply to: " + kPrompt;  // 9 words

bool is_prefix(const std::string& part, const std::string& whole) {
  return whole.rfind(part, 0) == 0;
}

// Anthropic: the text of the content_block_deltas and the message_delta's stop_reason.
std::pair<std::string, std::string> anthropic_stream(const std::string& body) {
  std::string text, stop;
  for (const auto& d : sse_data(body)) {
    if (d["type"] == "content_block_delta") text += d["delta"]["text"].get<std::string>();
    if (d["type"] == "message_delta") stop = d["delta"]["stop_reason"].get<std::string>();
  }
  return {text, stop};
}

// Gemini: the text of every chunk, and the last chunk (which carries finishReason).
std::pair<std::string, json> gemini_stream(const std::string& body) {
  std::string text;
  auto chunks = sse_data(body);
  for (const auto& c : chunks)
    text += c["candidates"][0]["content"]["parts"][0]["text"].get<std::string>();
  return {text, chunks.empty() ? json() : chunks.back()};
}

// The raw multi-line {"error":...} Gemini sends inside a 200 stream.
json gemini_stream_error(const std::string& body) {
  auto raw = body.find("\n{\n  \"error\"");
  return raw == std::string::npos ? json() : json::parse(body.substr(raw));
}

}  // namespace

TEST_CASE("credit_balance: each provider's out-of-credit error", "[mock]") {
  MockServer mock({{"default", {{"fault", "credit_balance"}}}});
  // Anthropic says it with a 400 invalid_request_error, not the 402 billing_error its error
  // table lists (the body users report, e.g. anthropics/claude-code#4208).
  auto a = anthropic(mock, anthropic_body("x"));
  REQUIRE(a);
  CHECK(a->status == 400);
  auto aj = body_json(a);
  CHECK(aj["type"] == "error");
  CHECK(aj["error"]["type"] == "invalid_request_error");
  CHECK(aj["error"]["message"] ==
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
        "Billing to upgrade or purchase credits.");
  CHECK(aj["request_id"].get<std::string>().rfind("req_", 0) == 0);
  // OpenAI-compatible: DeepSeek's documented 402 "Insufficient Balance", whose body is
  // {"message":"Insufficient Balance","type":"unknown_error","param":null,
  // "code":"invalid_request_error"} (api-docs.deepseek.com, "Error Codes").
  auto o = openai(mock, openai_body("x"));
  CHECK(o->status == 402);
  CHECK(body_json(o) == json::parse(R"({"error":{"message":"Insufficient Balance",
      "type":"unknown_error","param":null,"code":"invalid_request_error"}})"));
  // Gemini's prepaid billing: a 429 RESOURCE_EXHAUSTED like a rate limit, but without the
  // QuotaFailure and RetryInfo details (as reported on discuss.ai.google.dev).
  auto g = gemini(mock, gemini_body("x"));
  CHECK(g->status == 429);
  auto ge = body_json(g)["error"];
  CHECK(ge["code"] == 429);
  CHECK(ge["status"] == "RESOURCE_EXHAUSTED");
  CHECK(ge["message"].get<std::string>().rfind("Your prepayment credits are depleted.", 0) == 0);
  CHECK_FALSE(ge.contains("details"));
  CHECK_FALSE(g->has_header("retry-after"));  // nothing to wait for
  // A streaming request gets it as plain JSON before any stream; model listings get it too.
  auto st = anthropic(mock, anthropic_body("x", {{"stream", true}}));
  CHECK(st->status == 400);
  CHECK(body_json(st)["error"]["type"] == "invalid_request_error");
  CHECK(client(mock).Get("/v1/models")->status == 402);
  CHECK(mock.stats()["faults"] == 5);
}

TEST_CASE("finish_content_filter: a 200 answer cut short by the provider's filter", "[mock]") {
  // OpenAI finish_reason "content_filter", Anthropic stop_reason "refusal" (streaming
  // classifiers stepped in), Gemini finishReason "SAFETY": each provider's documented word
  // for an answer its safety system stopped part-way.
  MockServer mock({{"default", {{"fault", "finish_content_filter"}}}});
  auto o = body_json(openai(mock, openai_body(kPrompt)));
  std::string text = o["choices"][0]["message"]["content"];
  CHECK(o["choices"][0]["finish_reason"] == "content_filter");
  CHECK(is_prefix(text, kWhole));
  CHECK(text.size() < kWhole.size());
  CHECK(text == "mock reply to: one");  // the first half of the words
  CHECK(o["usage"]["completion_tokens"] == 4);
  auto os = sse_data(openai(mock, openai_body(kPrompt, {{"stream", true}}))->body);
  CHECK(os.back() == "[DONE]");
  CHECK(os[os.size() - 2]["choices"][0]["finish_reason"] == "content_filter");
  CHECK(openai_stream_text(os) == text);

  auto a = body_json(anthropic(mock, anthropic_body(kPrompt)));
  CHECK(a["stop_reason"] == "refusal");
  CHECK(a["content"][0]["text"] == text);
  auto as = anthropic(mock, anthropic_body(kPrompt, {{"stream", true}}));
  CHECK(sse_event_names(as->body).back() == "message_stop");
  CHECK(anthropic_stream(as->body) == std::make_pair(text, std::string("refusal")));

  auto g = body_json(gemini(mock, gemini_body(kPrompt)));
  CHECK(g["candidates"][0]["finishReason"] == "SAFETY");
  CHECK(g["candidates"][0]["content"]["parts"][0]["text"] == text);
  CHECK(g["candidates"][0]["safetyRatings"][0]["blocked"] == true);
  auto [gtext, last] = gemini_stream(gemini(mock, gemini_body(kPrompt), true)->body);
  CHECK(gtext == text);
  CHECK(last["candidates"][0]["finishReason"] == "SAFETY");
  CHECK(last["usageMetadata"]["candidatesTokenCount"] == 4);
}

TEST_CASE("finish_error and finish_overloaded: OpenAI-compatible gateways' words", "[mock]") {
  // OpenRouter documents finish_reason "error" for a generation that failed part-way;
  // gateways translating Anthropic's mid-stream overloaded_error write "overloaded_error".
  // Both still end the stream normally with [DONE].
  MockServer mock;
  for (auto [fault, reason] :
       {std::pair{"finish_error", "error"}, std::pair{"finish_overloaded", "overloaded_error"}}) {
    INFO(fault);
    mock.set_scenario({{"default", {{"fault", fault}}}});
    auto o = openai(mock, openai_body(kPrompt));
    REQUIRE(o->status == 200);
    auto oj = body_json(o);
    CHECK(oj["choices"][0]["finish_reason"] == reason);
    std::string text = oj["choices"][0]["message"]["content"];
    CHECK(is_prefix(text, kWhole));
    CHECK(text.size() < kWhole.size());
    auto os = sse_data(openai(mock, openai_body(kPrompt, {{"stream", true}}))->body);
    CHECK(os.back() == "[DONE]");
    CHECK(os[os.size() - 2]["choices"][0]["finish_reason"] == reason);
    CHECK(openai_stream_text(os) == text);
  }
}

TEST_CASE("finish_error and finish_overloaded where the protocol has no such reason", "[mock]") {
  // Gemini's nearest finishReason for a failed generation is OTHER ("Unknown reason").
  MockServer mock({{"default", {{"fault", "finish_error"}}}});
  auto g = body_json(gemini(mock, gemini_body(kPrompt)));
  CHECK(g["candidates"][0]["finishReason"] == "OTHER");
  auto [gtext, last] = gemini_stream(gemini(mock, gemini_body(kPrompt), true)->body);
  CHECK(is_prefix(gtext, kWhole));
  CHECK(gtext.size() < kWhole.size());
  CHECK(last["candidates"][0]["finishReason"] == "OTHER");
  // Anthropic has no stop_reason for a failure: the stream carries an api_error event instead
  // (errors can follow the 200, per Anthropic's streaming docs); a plain request gets a 500.
  auto as = anthropic(mock, anthropic_body(kPrompt, {{"stream", true}}));
  CHECK(as->status == 200);
  CHECK(sse_event_names(as->body).back() == "error");
  CHECK(sse_data(as->body).back()["error"]["type"] == "api_error");
  auto a = anthropic(mock, anthropic_body(kPrompt));
  CHECK(a->status == 500);
  CHECK(body_json(a)["error"]["type"] == "api_error");

  // An overload is the providers' own overloaded error, in the stream or as the reply.
  mock.set_scenario({{"default", {{"fault", "finish_overloaded"}}}});
  as = anthropic(mock, anthropic_body(kPrompt, {{"stream", true}}));
  CHECK(sse_data(as->body).back()["error"]["type"] == "overloaded_error");
  CHECK(anthropic(mock, anthropic_body(kPrompt))->status == 529);
  auto gs = gemini(mock, gemini_body(kPrompt), true);
  CHECK(gs->status == 200);
  CHECK(gemini_stream_error(gs->body)["error"]["status"] == "UNAVAILABLE");
  CHECK(gemini(mock, gemini_body(kPrompt))->status == 503);
  CHECK(openai(mock, openai_body(kPrompt))->status == 200);
}

TEST_CASE("finish faults honour times, then answers finish normally", "[mock]") {
  MockServer mock({{"default", {{"fault", "finish_content_filter"}, {"times", 1}}}});
  CHECK(body_json(openai(mock, openai_body("x")))["choices"][0]["finish_reason"] ==
        "content_filter");
  auto again = body_json(openai(mock, openai_body("x")));
  CHECK(again["choices"][0]["finish_reason"] == "stop");
  CHECK(again["choices"][0]["message"]["content"] == "mock reply to: x");
  // A model listing has no finish reason: the fault neither applies nor uses up times.
  mock.set_scenario({{"default", {{"fault", "finish_error"}, {"times", 1}}}});
  CHECK(client(mock).Get("/v1/models")->status == 200);
  CHECK(body_json(openai(mock, openai_body("x")))["choices"][0]["finish_reason"] == "error");
  CHECK(mock.stats()["faults"] == 2);
}

TEST_CASE("finish_reason: any word instead of the usual one, plain and streamed", "[mock]") {
  MockServer mock({{"default", {{"finish_reason", "pause_turn"}}}});
  auto o = body_json(openai(mock, openai_body(kPrompt)));
  CHECK(o["choices"][0]["finish_reason"] == "pause_turn");
  CHECK(o["choices"][0]["message"]["content"] == kWhole);  // the whole text, unlike the faults
  // The stream is otherwise complete: finish chunk, usage chunk, [DONE].
  auto os =
      sse_data(openai(mock, openai_body(kPrompt, {{"stream", true},
                                                  {"stream_options", {{"include_usage", true}}}}))
                   ->body);
  CHECK(openai_stream_text(os) == kWhole);
  CHECK(os[os.size() - 3]["choices"][0]["finish_reason"] == "pause_turn");
  CHECK(os[os.size() - 2]["usage"]["completion_tokens"] == 9);
  CHECK(os.back() == "[DONE]");

  CHECK(body_json(anthropic(mock, anthropic_body(kPrompt)))["stop_reason"] == "pause_turn");
  auto as = anthropic(mock, anthropic_body(kPrompt, {{"stream", true}}));
  auto names = sse_event_names(as->body);
  CHECK(std::vector<std::string>(names.end() - 3, names.end()) ==
        std::vector<std::string>{"content_block_stop", "message_delta", "message_stop"});
  CHECK(anthropic_stream(as->body) == std::make_pair(kWhole, std::string("pause_turn")));

  auto g = body_json(gemini(mock, gemini_body(kPrompt)));
  CHECK(g["candidates"][0]["finishReason"] == "pause_turn");
  auto [gtext, last] = gemini_stream(gemini(mock, gemini_body(kPrompt), true)->body);
  CHECK(gtext == kWhole);
  CHECK(last["candidates"][0]["finishReason"] == "pause_turn");
  CHECK(last["usageMetadata"]["candidatesTokenCount"] == 9);

  // It wins over the max-tokens reason too, and a firing finish fault wins over it.
  auto cut = body_json(openai(mock, openai_body(kPrompt, {{"max_tokens", 2}})));
  CHECK(cut["choices"][0]["message"]["content"] == "mock reply");
  CHECK(cut["choices"][0]["finish_reason"] == "pause_turn");
  mock.set_scenario(
      {{"default", {{"finish_reason", "stop"}, {"fault", "finish_error"}, {"times", 1}}}});
  CHECK(body_json(openai(mock, openai_body("x")))["choices"][0]["finish_reason"] == "error");
  CHECK(body_json(openai(mock, openai_body("x")))["choices"][0]["finish_reason"] == "stop");

  // Per model, round-tripped by GET /_mock/scenario, strictly typed.
  mock.set_scenario({{"models", {{"odd", {{"finish_reason", "content_filter"}}}}}});
  CHECK(mock.scenario()["models"]["odd"]["finish_reason"] == "content_filter");
  CHECK(mock.scenario()["default"]["finish_reason"].is_null());
  CHECK(body_json(openai(mock, openai_body("x")))["choices"][0]["finish_reason"] == "stop");
  CHECK_THROWS_WITH(mock.set_scenario({{"default", {{"finish_reason", 3}}}}),
                    Catch::Contains("scenario.default.finish_reason"));
  CHECK_THROWS(mock.set_scenario({{"default", {{"finish_reason", ""}}}}));
}

TEST_CASE("sse_error: the mid-stream error is the provider's plain error body", "[mock]") {
  // OpenAI's default is the 500 server_error body, so a client can class it like a plain 500.
  MockServer mock({{"default", {{"fault", "server_error"}}}});
  json plain_500 = body_json(openai(mock, openai_body("x")));
  mock.set_scenario({{"default", {{"fault", "sse_error"}}}});
  auto os = sse_data(openai(mock, openai_body(kPrompt, {{"stream", true}}))->body);
  CHECK(os.back() == plain_500);
  CHECK(os.back()["error"]["type"] == "server_error");

  // stream_error picks the kind; the plain counterpart of sse_error follows it.
  struct Row {
    std::string kind;
    std::string openai_type;  // error.type in OpenAI's data: {"error":...}
    int openai_status;
    std::string anthropic_type;
    int anthropic_status;
    std::string gemini_status;
    int gemini_code;
  };
  std::vector<Row> rows = {
      {"overloaded", "server_error", 503, "overloaded_error", 529, "UNAVAILABLE", 503},
      {"server_error", "server_error", 500, "api_error", 500, "INTERNAL", 500},
      {"rate_limit", "requests", 429, "rate_limit_error", 429, "RESOURCE_EXHAUSTED", 429},
  };
  for (const auto& row : rows) {
    INFO(row.kind);
    mock.set_scenario({{"default", {{"fault", "sse_error"}, {"stream_error", row.kind}}}});
    CHECK(mock.scenario()["default"]["stream_error"] == row.kind);
    auto o = openai(mock, openai_body(kPrompt, {{"stream", true}}));
    REQUIRE(o->status == 200);
    auto chunks = sse_data(o->body);
    REQUIRE(chunks.size() == 3);  // the role chunk, one text chunk, then the error
    CHECK(chunks[1]["choices"][0]["delta"]["content"] == "mock");
    CHECK(chunks.back()["error"]["type"] == row.openai_type);
    CHECK(o->body.find("[DONE]") == std::string::npos);
    auto a = anthropic(mock, anthropic_body(kPrompt, {{"stream", true}}));
    CHECK(sse_event_names(a->body).back() == "error");
    auto ae = sse_data(a->body).back();
    CHECK(ae["type"] == "error");
    CHECK(ae["error"]["type"] == row.anthropic_type);
    auto ge = gemini_stream_error(gemini(mock, gemini_body(kPrompt), true)->body);
    CHECK(ge["error"]["status"] == row.gemini_status);
    CHECK(ge["error"]["code"] == row.gemini_code);
    CHECK(openai(mock, openai_body("x"))->status == row.openai_status);
    CHECK(anthropic(mock, anthropic_body("x"))->status == row.anthropic_status);
    CHECK(gemini(mock, gemini_body("x"))->status == row.gemini_code);
  }
  CHECK_THROWS_WITH(mock.set_scenario({{"default", {{"stream_error", "auth"}}}}),
                    Catch::Contains("scenario.default.stream_error"));
  CHECK_THROWS(mock.set_scenario({{"default", {{"stream_error", 503}}}}));
}
