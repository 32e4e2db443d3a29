// detour-mock's own tests: each protocol, fault, limit and control endpoint over real HTTP,
// plus the harness itself. Timings are kept small so the whole file runs in a few seconds.
#include <signal.h>

#include <catch2/catch.hpp>
#include <regex>
#include <string>
#include <vector>

#include "harness.hpp"

#include "test_mock_util.hpp"

using namespace detour::testing;
using namespace detour::testing::mock_util;
using nlohmann::json;

TEST_CASE("mock prints its port, serves, and exits 0 on SIGTERM", "[mock]") {
  RunOptions opts;
  opts.send_signal = SIGTERM;
  opts.signal_when_output = "\n";
  opts.timeout = std::chrono::milliseconds(5000);
  auto r = run({mock_bin(), "--port", "0"}, opts);
  CHECK(r.exit_code == 0);
  CHECK(std::regex_match(r.out, std::regex("port=[0-9]+\n")));

  MockServer mock;
  CHECK(mock.port() > 0);
  CHECK(mock.url() == "http://127.0.0.1:" + std::to_string(mock.port()));
  auto res = client(mock).Get("/_mock/health");
  REQUIRE(res);
  CHECK(res->status == 200);
}

TEST_CASE("mock refuses to bind a non-loopback host", "[mock]") {
  for (std::string host : {"0.0.0.0", "192.168.1.10", "::", "example.com"}) {
    auto r = run({mock_bin(), "--host", host});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("non-loopback") != std::string::npos);
    CHECK(r.out.empty());
  }
  auto bad = run({mock_bin(), "--port", "http"});
  CHECK(bad.exit_code == 2);
  TempDir dir;
  auto typo = run({mock_bin(), "--scenario", dir.write("s.json", R"({"default":{"latency":5}})")});
  CHECK(typo.exit_code == 2);
  CHECK(typo.err.find("scenario.default.latency") != std::string::npos);
}

TEST_CASE("OpenAI chat completions, buffered", "[mock]") {
  MockServer mock;
  json body = openai_body("hello there", {{"messages",
                                           {{{"role", "system"}, {"content", "be brief"}},
                                            {{"role", "user"}, {"content", "hello there"}}}}});
  auto r = openai(mock, body);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->has_header("x-request-id"));
  auto j = body_json(r);
  CHECK(j["object"] == "chat.completion");
  CHECK(j["model"] == "gpt-4o-mini");
  CHECK(j["choices"][0]["message"]["role"] == "assistant");
  CHECK(j["choices"][0]["message"]["content"] == "mock reply to: hello there");
  CHECK(j["choices"][0]["finish_reason"] == "stop");
  // ceil((8 + 11) / 4) = 5 input tokens; 5 words out.
  CHECK(j["usage"]["prompt_tokens"] == 5);
  CHECK(j["usage"]["completion_tokens"] == 5);
  CHECK(j["usage"]["total_tokens"] == 10);
  // Also served without the /v1 prefix.
  auto bare = client(mock).Post("/chat/completions", openai_body("x").dump(), "application/json");
  REQUIRE(bare);
  CHECK(bare->status == 200);
}

TEST_CASE("replies are deterministic and distinct per prompt", "[mock]") {
  MockServer mock;
  auto a1 = body_json(openai(mock, openai_body("alpha one")));
  auto a2 = body_json(openai(mock, openai_body("alpha one")));
  auto b = body_json(openai(mock, openai_body("beta two")));
  CHECK(a1["choices"][0]["message"]["content"] == a2["choices"][0]["message"]["content"]);
  CHECK(a1["choices"][0]["message"]["content"] != b["choices"][0]["message"]["content"]);
  // Only the last user message counts.
  json multi = openai_body(
      "", {{"messages",
            {{{"role", "user"}, {"content", "first"}},
             {{"role", "assistant"}, {"content", "ok"}},
             {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "second"}}}}}}}});
  CHECK(body_json(openai(mock, multi))["choices"][0]["message"]["content"] ==
        "mock reply to: second");
}

TEST_CASE("OpenAI streaming: chunks, finish, usage chunk, [DONE]", "[mock]") {
  MockServer mock;
  auto r =
      openai(mock, openai_body("one two three",
                               {{"stream", true}, {"stream_options", {{"include_usage", true}}}}));
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type").find("text/event-stream") == 0);
  auto chunks = sse_data(r->body);
  REQUIRE(chunks.size() >= 5);
  CHECK(chunks.back() == "[DONE]");
  CHECK(chunks[0]["object"] == "chat.completion.chunk");
  CHECK(chunks[0]["choices"][0]["delta"]["role"] == "assistant");
  CHECK(openai_stream_text(chunks) == "mock reply to: one two three");
  // One chunk per word: 6 words.
  int deltas = 0;
  for (const auto& c : chunks)
    if (c.is_object() && !c["choices"].empty() &&
        !c["choices"][0]["delta"].value("content", "").empty())
      ++deltas;
  CHECK(deltas == 6);
  const json& finish = chunks[chunks.size() - 3];
  CHECK(finish["choices"][0]["finish_reason"] == "stop");
  const json& usage = chunks[chunks.size() - 2];
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["completion_tokens"] == 6);
  CHECK(usage["model"] == "gpt-4o-mini");

  auto plain = sse_data(openai(mock, openai_body("x", {{"stream", true}}))->body);
  CHECK(plain.back() == "[DONE]");
  CHECK(plain[plain.size() - 2]["choices"][0]["finish_reason"] == "stop");
  CHECK_FALSE(plain[plain.size() - 2].contains("usage"));
}

TEST_CASE("Anthropic messages, buffered and streamed", "[mock]") {
  MockServer mock;
  auto r = anthropic(mock, anthropic_body("hi there", {{"system", "sys"}}));
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->has_header("request-id"));
  auto j = body_json(r);
  CHECK(j["type"] == "message");
  CHECK(j["model"] == "claude-sonnet-4-5");
  CHECK(j["content"][0]["type"] == "text");
  CHECK(j["content"][0]["text"] == "mock reply to: hi there");
  CHECK(j["stop_reason"] == "end_turn");
  CHECK(j["usage"]["input_tokens"] == 3);  // ceil((3 + 8) / 4)
  CHECK(j["usage"]["output_tokens"] == 5);

  auto s = anthropic(mock, anthropic_body("a b", {{"stream", true}}));
  REQUIRE(s);
  auto names = sse_event_names(s->body);
  std::vector<std::string> expected = {"message_start", "content_block_start", "ping"};
  for (int i = 0; i < 5; ++i)
    expected.push_back("content_block_delta");
  for (auto e : {"content_block_stop", "message_delta", "message_stop"})
    expected.push_back(e);
  CHECK(names == expected);
  auto data = sse_data(s->body);
  std::string text;
  for (const auto& d : data)
    if (d["type"] == "content_block_delta") text += d["delta"]["text"].get<std::string>();
  CHECK(text == "mock reply to: a b");
  CHECK(data[0]["message"]["usage"]["input_tokens"] == 1);
  const json& delta = data[data.size() - 2];
  CHECK(delta["delta"]["stop_reason"] == "end_turn");
  CHECK(delta["usage"]["output_tokens"] == 5);
  CHECK(s->body.find("[DONE]") == std::string::npos);

  // Anthropic requires max_tokens and the anthropic-version header.
  json no_max = anthropic_body("x");
  no_max.erase("max_tokens");
  auto bad = anthropic(mock, no_max);
  CHECK(bad->status == 400);
  CHECK(body_json(bad)["error"]["type"] == "invalid_request_error");
  auto no_version =
      client(mock).Post("/v1/messages", anthropic_body("x").dump(), "application/json");
  CHECK(no_version->status == 400);
}

TEST_CASE("Gemini generateContent, SSE stream and JSON-array stream", "[mock]") {
  MockServer mock;
  auto r =
      gemini(mock, gemini_body("yo", {{"systemInstruction", {{"parts", {{{"text", "abcd"}}}}}}}));
  REQUIRE(r);
  REQUIRE(r->status == 200);
  auto j = body_json(r);
  CHECK(j["candidates"][0]["content"]["parts"][0]["text"] == "mock reply to: yo");
  CHECK(j["candidates"][0]["finishReason"] == "STOP");
  CHECK(j["usageMetadata"]["promptTokenCount"] == 2);  // ceil((4 + 2) / 4)
  CHECK(j["usageMetadata"]["candidatesTokenCount"] == 4);
  CHECK(j["modelVersion"] == "gemini-2.0-flash");

  auto s = gemini(mock, gemini_body("a b c"), true);
  REQUIRE(s);
  CHECK(s->body.find("\r\n\r\n") != std::string::npos);  // Gemini frames SSE with CRLF
  auto chunks = sse_data(s->body);
  REQUIRE(chunks.size() == 6);
  std::string text;
  for (const auto& c : chunks)
    text += c["candidates"][0]["content"]["parts"][0]["text"].get<std::string>();
  CHECK(text == "mock reply to: a b c");
  CHECK_FALSE(chunks[0]["candidates"][0].contains("finishReason"));
  CHECK(chunks.back()["candidates"][0]["finishReason"] == "STOP");
  CHECK(chunks.back()["usageMetadata"]["candidatesTokenCount"] == 6);

  auto arr = client(mock).Post("/v1beta/models/gemini-2.0-flash:streamGenerateContent",
                               gemini_body("a").dump(), "application/json");
  REQUIRE(arr);
  auto aj = body_json(arr);
  REQUIRE(aj.is_array());
  CHECK(aj.size() == 4);
  CHECK(aj.back()["candidates"][0]["finishReason"] == "STOP");
}

TEST_CASE("max tokens cuts the reply and finishes with length", "[mock]") {
  MockServer mock;
  auto o = body_json(openai(mock, openai_body("one two three", {{"max_completion_tokens", 2}})));
  CHECK(o["choices"][0]["message"]["content"] == "mock reply");
  CHECK(o["choices"][0]["finish_reason"] == "length");
  CHECK(o["usage"]["completion_tokens"] == 2);
  auto o2 = body_json(openai(mock, openai_body("one", {{"max_tokens", 4}})));
  CHECK(o2["choices"][0]["finish_reason"] == "stop");  // 4 words fit exactly
  auto a = body_json(anthropic(mock, anthropic_body("one two", {{"max_tokens", 3}})));
  CHECK(a["content"][0]["text"] == "mock reply to:");
  CHECK(a["stop_reason"] == "max_tokens");
  auto g =
      body_json(gemini(mock, gemini_body("x y", {{"generationConfig", {{"maxOutputTokens", 1}}}})));
  CHECK(g["candidates"][0]["content"]["parts"][0]["text"] == "mock");
  CHECK(g["candidates"][0]["finishReason"] == "MAX_TOKENS");
  auto s =
      sse_data(openai(mock, openai_body("a b c", {{"stream", true}, {"max_tokens", 3}}))->body);
  CHECK(openai_stream_text(s) == "mock reply to:");
  CHECK(s[s.size() - 2]["choices"][0]["finish_reason"] == "length");
}

TEST_CASE("JSON output mode answers {\"reply\": ...}", "[mock]") {
  MockServer mock;
  auto o =
      body_json(openai(mock, openai_body("q", {{"response_format", {{"type", "json_object"}}}})));
  CHECK(json::parse(o["choices"][0]["message"]["content"].get<std::string>()) ==
        json{{"reply", "mock reply to: q"}});
  auto g = body_json(gemini(
      mock, gemini_body("q", {{"generationConfig", {{"responseMimeType", "application/json"}}}})));
  CHECK(
      json::parse(g["candidates"][0]["content"]["parts"][0]["text"].get<std::string>())["reply"] ==
      "mock reply to: q");
  auto a = body_json(anthropic(mock, anthropic_body("q", {{"system", "Answer in JSON only."}})));
  CHECK(json::parse(a["content"][0]["text"].get<std::string>())["reply"] == "mock reply to: q");
  auto plain = body_json(openai(mock, openai_body("q", {{"response_format", {{"type", "text"}}}})));
  CHECK(plain["choices"][0]["message"]["content"] == "mock reply to: q");
}

TEST_CASE("model listings in each provider's format", "[mock]") {
  MockServer mock({{"models", {{"special-model", json::object()}}}});
  auto o = body_json(client(mock).Get("/v1/models"));
  CHECK(o["object"] == "list");
  std::vector<std::string> ids;
  for (const auto& m : o["data"])
    ids.push_back(m["id"]);
  CHECK(std::find(ids.begin(), ids.end(), "special-model") != ids.end());
  CHECK(std::find(ids.begin(), ids.end(), "gpt-4o-mini") != ids.end());
  CHECK(std::find(ids.begin(), ids.end(), "mock-1") != ids.end());
  CHECK(o["data"][0]["object"] == "model");

  auto a = body_json(client(mock).Get("/v1/models", {{"anthropic-version", "2023-06-01"}}));
  CHECK(a["data"][0]["type"] == "model");
  CHECK_FALSE(a.contains("object"));
  auto g = body_json(client(mock).Get("/v1beta/models"));
  CHECK(g["models"][0]["name"].get<std::string>().rfind("models/", 0) == 0);

  CHECK(client(mock).Get("/v1/models/special-model")->status == 200);
  auto missing = client(mock).Get("/v1/models/nope");
  CHECK(missing->status == 404);
  CHECK(body_json(missing)["error"]["code"] == "model_not_found");
  CHECK(client(mock).Get("/v1beta/models/nope")->status == 404);
}
