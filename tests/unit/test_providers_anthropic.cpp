// The Anthropic Messages protocol: requests, replies, error bodies, streams, models.
#include <catch2/catch.hpp>

#include "provider_test_util.hpp"
#include "providers/types.hpp"

using detour::providers::ChatRequest;
using detour::providers::find_protocol;
using detour::providers::kAnthropicDefaultMaxTokens;
using nlohmann::json;
using provider_test::body_of;
using provider_test::header;
using provider_test::run_both_ways;

namespace {

const detour::providers::Protocol& anthropic() {
  return *find_protocol("anthropic");
}

ChatRequest simple_request() {
  ChatRequest request;
  request.model = "claude-sonnet-4-5";
  request.system = "You are terse.";
  request.messages = {{"user", "Hello, Claude"}};
  return request;
}

// A Message as the API reference shows it.
constexpr const char* kReply = R"({
  "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-5-20250929",
  "content": [{"type": "text", "text": "Hi! My name is Claude."}],
  "stop_reason": "end_turn",
  "stop_sequence": null,
  "usage": {"input_tokens": 2095, "output_tokens": 503,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
})";

// The streaming example of the Messages streaming docs.
constexpr const char* kStream =
    "event: message_start\n"
    "data: {\"type\": \"message_start\", \"message\": {\"id\": "
    "\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\", \"type\": \"message\", \"role\": "
    "\"assistant\", \"content\": [], \"model\": \"claude-sonnet-4-5-20250929\", \"stop_reason\": "
    "null, \"stop_sequence\": null, \"usage\": {\"input_tokens\": 25, \"output_tokens\": 1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": "
    "\"text\", \"text\": \"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": "
    "\"text_delta\", \"text\": \"Hello\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": "
    "\"text_delta\", \"text\": \"!\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\": \"content_block_stop\", \"index\": 0}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", "
    "\"stop_sequence\":null}, \"usage\": {\"output_tokens\": 15}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\": \"message_stop\"}\n"
    "\n";

std::string text_delta(std::string_view text) {
  return "event: content_block_delta\ndata: " +
         json{{"type", "content_block_delta"},
              {"index", 0},
              {"delta", {{"type", "text_delta"}, {"text", text}}}}
             .dump() +
         "\n\n";
}

}  // namespace

TEST_CASE("anthropic: request with the default max_tokens", "[providers]") {
  auto http =
      anthropic().build_request({"https://api.anthropic.com", "sk-ant-test"}, simple_request());
  CHECK(http.method == "POST");
  CHECK(http.url == "https://api.anthropic.com/v1/messages");
  CHECK(header(http, "x-api-key") == "sk-ant-test");
  CHECK(header(http, "anthropic-version") == "2023-06-01");
  CHECK(header(http, "content-type") == "application/json");
  CHECK(header(http, "authorization") == "<absent>");
  json expected = {{"model", "claude-sonnet-4-5"},
                   {"max_tokens", kAnthropicDefaultMaxTokens},
                   {"system", "You are terse."},
                   {"messages", {{{"role", "user"}, {"content", "Hello, Claude"}}}}};
  CHECK(body_of(http) == expected);
  CHECK(kAnthropicDefaultMaxTokens == 4096);
}

TEST_CASE("anthropic: max_tokens, temperature, stream, extra; no system role", "[providers]") {
  auto request = simple_request();
  request.system.clear();
  request.max_tokens = 256;
  request.temperature = 0.5;
  request.stream = true;
  request.messages = {
      {"system", "Be brief."}, {"user", "hi"}, {"assistant", "hello"}, {"user", "again"}};
  request.extra = {{"top_k", 5}, {"temperature", 1.0}};
  auto http = anthropic().build_request({"http://127.0.0.1:8080/", ""}, request);
  CHECK(http.url == "http://127.0.0.1:8080/v1/messages");
  CHECK(header(http, "x-api-key") == "<absent>");
  CHECK(header(http, "anthropic-version") == "2023-06-01");
  json body = body_of(http);
  CHECK(body["max_tokens"] == 256);
  CHECK(body["temperature"] == 1.0);  // -o wins
  CHECK(body["top_k"] == 5);
  CHECK(body["stream"] == true);
  CHECK_FALSE(body.contains("stream_options"));
  CHECK(body["system"] == "Be brief.");
  CHECK(body["messages"] == json::parse(R"([{"role":"user","content":"hi"},
      {"role":"assistant","content":"hello"},{"role":"user","content":"again"}])"));
}

TEST_CASE("anthropic: JSON output is asked for in the system prompt", "[providers]") {
  SECTION("without a schema") {
    auto request = simple_request();
    request.json_output = true;
    json body = body_of(anthropic().build_request({"https://api.anthropic.com", "k"}, request));
    std::string system = body["system"];
    CHECK(system.rfind("You are terse.\n\n", 0) == 0);
    CHECK(system.find("JSON object") != std::string::npos);
    CHECK(system.find("Schema") == std::string::npos);
    CHECK_FALSE(body.contains("response_format"));
  }
  SECTION("with a schema, also when there was no system prompt") {
    auto request = simple_request();
    request.system.clear();
    request.schema = json::parse(R"({"type":"object","required":["n"]})");
    json body = body_of(anthropic().build_request({"https://api.anthropic.com", "k"}, request));
    std::string system = body["system"];
    CHECK(system.rfind("Respond with a single JSON object", 0) == 0);
    CHECK(system.find(R"({"required":["n"],"type":"object"})") != std::string::npos);
  }
}

TEST_CASE("anthropic: a reply is parsed", "[providers]") {
  auto result = anthropic().parse_reply(std::string("\n\n") + kReply);
  REQUIRE(result.reply);
  CHECK(result.reply->content == "Hi! My name is Claude.");
  CHECK(result.reply->finish_reason == "end_turn");
  CHECK(result.reply->served_model == "claude-sonnet-4-5-20250929");
  CHECK(result.reply->usage.input_tokens == 2095);
  CHECK(result.reply->usage.output_tokens == 503);
}

TEST_CASE("anthropic: stop reasons pass through as written", "[providers]") {
  // engine/finish_reason.cpp judges them; the parser only reports.
  for (const char* reason : {"end_turn", "stop_sequence", "max_tokens", "refusal", "tool_use",
                             "pause_turn", "model_context_window_exceeded", "brand_new"}) {
    INFO(reason);
    json body = json::parse(kReply);
    body["stop_reason"] = reason;
    auto result = anthropic().parse_reply(body.dump());
    REQUIRE(result.reply);
    CHECK(result.reply->finish_reason == reason);
  }
}

TEST_CASE("anthropic: a 200 body that is an error is that error", "[providers]") {
  auto result = anthropic().parse_reply(
      R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  CHECK_FALSE(result.reply);
  REQUIRE(result.error);
  CHECK(result.error->type == "overloaded_error");
}

TEST_CASE("anthropic: only text blocks are the answer", "[providers]") {
  auto result = anthropic().parse_reply(R"({"type":"message","role":"assistant",
      "model":"claude-sonnet-4-5","content":[
        {"type":"thinking","thinking":"Let me add them.","signature":"EqQBCgIYAhIM"},
        {"type":"text","text":"The answer"},
        {"type":"tool_use","id":"toolu_01","name":"calc","input":{}},
        {"type":"text","text":" is 42."}],
      "stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":20}})");
  REQUIRE(result.reply);
  CHECK(result.reply->content == "The answer is 42.");

  auto empty = anthropic().parse_reply(
      R"({"type":"message","content":[],"stop_reason":"end_turn","model":"m"})");
  REQUIRE(empty.reply);
  CHECK(empty.reply->content == "");
}

TEST_CASE("anthropic: bodies that are not a valid reply give a problem", "[providers]") {
  const char* bodies[] = {
      "",
      "Internal Server Error",
      R"({"type":"message","content":[{"type":"te)",
      "{}",
      R"({"type":"message","content":"hello"})",
      R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"};
  for (const char* body : bodies) {
    INFO(body);
    auto result = anthropic().parse_reply(body);
    CHECK_FALSE(result.reply.has_value());
    CHECK_FALSE(result.problem.empty());
  }
}

TEST_CASE("anthropic: error bodies", "[providers]") {
  struct Row {
    int status;
    const char* type;
    const char* message;
  };
  const Row rows[] = {
      {529, "overloaded_error", "Overloaded"},
      {429, "rate_limit_error",
       "This request would exceed the rate limit for your organization of 50,000 input tokens "
       "per minute."},
      {402, "billing_error", "Your credit balance is too low to access the Anthropic API."},
      {401, "authentication_error", "invalid x-api-key"},
      {403, "permission_error",
       "Your API key does not have permission to use the specified resource."},
      {404, "not_found_error", "model: claude-9"},
      {400, "invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"},
      {500, "api_error", "Internal server error"},
      {504, "timeout_error", "Request timed out"},
  };
  for (const auto& row : rows) {
    std::string body = json{{"type", "error"},
                            {"error", {{"type", row.type}, {"message", row.message}}},
                            {"request_id", "req_011CSHoEeqs5C35K2UUqR7Fy"}}
                           .dump();
    INFO(body);
    auto error = anthropic().parse_error(row.status, body);
    CHECK(error.recognised);
    CHECK(error.status == row.status);
    CHECK(error.type == row.type);
    CHECK(error.code == "");
    CHECK(error.message == row.message);
  }

  // 413 from Cloudflare in front of the API: not the API's JSON.
  auto html = anthropic().parse_error(
      413, "<html>\n<head><title>413 Request Entity Too Large</title></head>\n</html>\n");
  CHECK_FALSE(html.recognised);
  CHECK(html.status == 413);
  CHECK(html.message == "<html> <head><title>413 Request Entity Too Large</title></head> </html>");

  // The OpenAI shape is not Anthropic's.
  auto foreign = anthropic().parse_error(429, R"({"error":{"message":"x","code":"y"}})");
  CHECK_FALSE(foreign.recognised);
}

TEST_CASE("anthropic: a stream gives the same result whole and byte by byte", "[providers]") {
  auto run = run_both_ways(anthropic(), kStream);
  CHECK(run.text == "Hello!");
  CHECK(run.text_calls == 2);
  CHECK(run.state.reply.content == "Hello!");
  CHECK(run.state.reply.finish_reason == "end_turn");
  CHECK(run.state.reply.served_model == "claude-sonnet-4-5-20250929");
  CHECK(run.state.reply.usage.input_tokens == 25);
  CHECK(run.state.reply.usage.output_tokens == 15);  // cumulative, not 1 + 15
  CHECK(run.state.complete);
  CHECK_FALSE(run.state.error.has_value());
  CHECK(run.state.problem.empty());
}

TEST_CASE("anthropic: CRLF lines and keep-alive comments", "[providers]") {
  std::string body = "\r\n: keep-alive\r\n\r\n";
  for (const char* c = kStream; *c; ++c) {
    if (*c == '\n') body += '\r';
    body += *c;
  }
  auto run = run_both_ways(anthropic(), body);
  CHECK(run.text == "Hello!");
  CHECK(run.state.complete);
}

TEST_CASE("anthropic: non-text deltas are not answer text", "[providers]") {
  std::string body =
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me think\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n" +
      text_delta("42") +
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,"
      "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"x\\\": 1\"}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
      "\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  auto run = run_both_ways(anthropic(), body);
  CHECK(run.text == "42");
  CHECK(run.state.reply.finish_reason == "tool_use");
  CHECK(run.state.reply.usage.output_tokens == 89);
  CHECK(run.state.complete);
}

TEST_CASE("anthropic: an error event after the 200", "[providers]") {
  std::string full = kStream;
  std::string body = full.substr(0, full.find("event: content_block_stop")) +
                     "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": "
                     "\"overloaded_error\", \"message\": \"Overloaded\"}}\n\n" +
                     text_delta("after");
  auto run = run_both_ways(anthropic(), body);
  CHECK(run.text == "Hello!");
  REQUIRE(run.state.error);
  CHECK(run.state.error->recognised);
  CHECK(run.state.error->status == 200);
  CHECK(run.state.error->type == "overloaded_error");
  CHECK(run.state.error->message == "Overloaded");
  CHECK_FALSE(run.state.complete);
}

TEST_CASE("anthropic: a stream without message_stop is truncated", "[providers]") {
  std::string full = kStream;
  auto run = run_both_ways(anthropic(), full.substr(0, full.find("event: message_stop")));
  CHECK(run.text == "Hello!");
  CHECK(run.state.reply.finish_reason == "end_turn");
  CHECK_FALSE(run.state.complete);
  CHECK_FALSE(run.state.error.has_value());

  // message_stop with no trailing blank line is still the end.
  auto unterminated = run_both_ways(anthropic(), full.substr(0, full.size() - 2));
  CHECK(unterminated.state.complete);
}

TEST_CASE("anthropic: a garbled event makes the stream invalid", "[providers]") {
  std::string body = text_delta("a") + "event: content_block_delta\ndata: {\"type\":\n\n" +
                     "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  auto run = run_both_ways(anthropic(), body);
  CHECK(run.text == "a");
  CHECK_FALSE(run.state.complete);
  CHECK_FALSE(run.state.problem.empty());
}

TEST_CASE("anthropic: model list", "[providers]") {
  auto http = anthropic().build_models_request({"https://api.anthropic.com", "sk-ant-test"});
  CHECK(http.method == "GET");
  CHECK(http.url == "https://api.anthropic.com/v1/models?limit=1000");
  CHECK(header(http, "x-api-key") == "sk-ant-test");
  CHECK(header(http, "anthropic-version") == "2023-06-01");
  auto ids = anthropic().parse_models(R"({"data":[
      {"type":"model","id":"claude-sonnet-4-5-20250929","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"},
      {"type":"model","id":"claude-haiku-4-5-20251001","display_name":"Claude Haiku 4.5","created_at":"2025-10-01T00:00:00Z"}],
      "has_more":false,"first_id":"claude-sonnet-4-5-20250929","last_id":"claude-haiku-4-5-20251001"})");
  CHECK(ids == std::vector<std::string>{"claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"});
  CHECK(anthropic().parse_models("").empty());
}

// Anthropic's input_tokens leaves out the prompt read from and written to the cache
// (../shared/reference/providers.md: usage has input_tokens, output_tokens,
// cache_creation_input_tokens and cache_read_input_tokens); detour's is the whole prompt.
TEST_CASE("anthropic: cache reads and writes are part of the prompt's tokens", "[providers]") {
  json body = json::parse(kReply);
  body["usage"] = {{"input_tokens", 50},
                   {"output_tokens", 503},
                   {"cache_creation_input_tokens", 200},
                   {"cache_read_input_tokens", 1800}};
  auto result = anthropic().parse_reply(body.dump());
  REQUIRE(result.reply);
  CHECK(result.reply->usage.input_tokens == 2050);
  CHECK(result.reply->usage.cached_input_tokens == 1800);
  CHECK(result.reply->usage.output_tokens == 503);

  // A stream reports them in message_start; message_delta repeats only output_tokens.
  std::string stream = kStream;
  const std::string plain_usage = "{\"input_tokens\": 25, \"output_tokens\": 1}";
  stream.replace(stream.find(plain_usage), plain_usage.size(),
                 "{\"input_tokens\": 25, \"cache_creation_input_tokens\": 10, "
                 "\"cache_read_input_tokens\": 1000, \"output_tokens\": 1}");
  auto run = run_both_ways(anthropic(), stream);
  CHECK(run.state.reply.usage.input_tokens == 1035);
  CHECK(run.state.reply.usage.cached_input_tokens == 1000);
  CHECK(run.state.reply.usage.output_tokens == 15);
}
