// Finish reasons and errors inside 200 replies, row by row: the finish-reason table, what a
// whole reply body or stream comes to (engine/reply_check), and one class for an error
// wherever it arrives. Bodies are the providers' own shapes, parsed by the real parsers.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "engine/finish_reason.hpp"
#include "engine/reply_check.hpp"
#include "provider_test_util.hpp"
#include "providers/protocols.hpp"

using namespace detour;
using engine::ErrorClass;
using nlohmann::json;

namespace {

const providers::Protocol& protocol(const std::string& name) {
  const providers::Protocol* p = providers::find_protocol(name);
  REQUIRE(p);
  return *p;
}

providers::ChatReply reply_with(std::string finish_reason) {
  providers::ChatReply reply;
  reply.content = "Paris is";
  reply.finish_reason = std::move(finish_reason);
  return reply;
}

}  // namespace

TEST_CASE("finish reasons: each row of the table", "[finish]") {
  struct Row {
    const char* protocol;
    const char* reason;
    const char* neutral;
    ErrorClass expected;
  };
  // The sources: OpenAI's openapi.yaml (choices[].finish_reason), Anthropic's stop_reason
  // list (streaming docs), Gemini's Candidate.FinishReason; OpenRouter's "error", LiteLLM's
  // translation of an Anthropic mid-stream overloaded_error, DeepSeek's
  // insufficient_system_resource, TGI's eos_token, Mistral's model_length.
  const Row rows[] = {
      {"openai", "stop", "stop", ErrorClass::none},
      {"openai", "length", "length", ErrorClass::none},
      {"openai", "tool_calls", "tool_calls", ErrorClass::none},
      {"openai", "function_call", "tool_calls", ErrorClass::none},
      {"openai", "content_filter", "content_filter", ErrorClass::content_filter},
      {"openai", "eos_token", "stop", ErrorClass::none},
      {"openai", "stop_sequence", "stop", ErrorClass::none},
      {"openai", "model_length", "length", ErrorClass::none},
      {"openai", "error", "error", ErrorClass::invalid_response},
      {"openai", "overloaded_error", "overloaded_error", ErrorClass::overloaded},
      {"openai", "insufficient_system_resource", "insufficient_system_resource",
       ErrorClass::overloaded},
      {"openai", "abort", "abort", ErrorClass::invalid_response},
      {"openai", "end_turn", "end_turn", ErrorClass::invalid_response},  // not OpenAI's word
      {"anthropic", "end_turn", "stop", ErrorClass::none},
      {"anthropic", "stop_sequence", "stop", ErrorClass::none},
      {"anthropic", "tool_use", "tool_calls", ErrorClass::none},
      {"anthropic", "max_tokens", "length", ErrorClass::none},
      {"anthropic", "model_context_window_exceeded", "length", ErrorClass::none},
      {"anthropic", "refusal", "content_filter", ErrorClass::content_filter},
      {"anthropic", "pause_turn", "pause_turn", ErrorClass::invalid_response},
      {"anthropic", "stop", "stop", ErrorClass::invalid_response},  // not Anthropic's word
      {"gemini", "STOP", "stop", ErrorClass::none},
      {"gemini", "MAX_TOKENS", "length", ErrorClass::none},
      {"gemini", "SAFETY", "content_filter", ErrorClass::content_filter},
      {"gemini", "RECITATION", "content_filter", ErrorClass::content_filter},
      {"gemini", "BLOCKLIST", "content_filter", ErrorClass::content_filter},
      {"gemini", "PROHIBITED_CONTENT", "content_filter", ErrorClass::content_filter},
      {"gemini", "SPII", "content_filter", ErrorClass::content_filter},
      {"gemini", "IMAGE_SAFETY", "content_filter", ErrorClass::content_filter},
      {"gemini", "OTHER", "OTHER", ErrorClass::invalid_response},
      {"gemini", "LANGUAGE", "LANGUAGE", ErrorClass::invalid_response},
      {"gemini", "MALFORMED_FUNCTION_CALL", "MALFORMED_FUNCTION_CALL",
       ErrorClass::invalid_response},
      {"gemini", "FINISH_REASON_UNSPECIFIED", "FINISH_REASON_UNSPECIFIED",
       ErrorClass::invalid_response},
  };
  for (const auto& row : rows) {
    INFO(row.protocol << " " << row.reason);
    const engine::FinishVerdict verdict =
        engine::judge_finish(row.protocol, reply_with(row.reason));
    CHECK(verdict.neutral == row.neutral);
    CHECK(verdict.error == row.expected);
    CHECK(verdict.message.empty() == (row.expected == ErrorClass::none));
    if (row.expected != ErrorClass::none) CHECK_THAT(verdict.message, Catch::Contains(row.reason));
  }
}

TEST_CASE("finish reasons: the table has one row per protocol and reason", "[finish]") {
  std::set<std::string> seen;
  for (const auto& rule : engine::finish_reason_rules()) {
    INFO(rule.protocol << " " << rule.reason);
    CHECK(seen.insert(std::string(rule.protocol) + "/" + std::string(rule.reason)).second);
    CHECK(providers::find_protocol(rule.protocol) != nullptr);
  }
}

TEST_CASE("finish reasons: none given is an answer; a blocked prompt is content_filter",
          "[finish]") {
  CHECK(engine::judge_finish("openai", reply_with("")).error == ErrorClass::none);
  providers::ChatReply blocked;
  blocked.block_reason = "OTHER";
  const auto verdict = engine::judge_finish("gemini", blocked);
  CHECK(verdict.error == ErrorClass::content_filter);
  CHECK_THAT(verdict.message, Catch::Contains("blockReason OTHER"));
}

TEST_CASE("reply check: whole replies with each finish reason, plain and streamed", "[finish]") {
  struct Row {
    const char* protocol;
    const char* plain;   // a non-streamed body
    const char* stream;  // the same reply streamed
    ErrorClass expected;
  };
  const Row rows[] = {
      {"openai",
       R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Half an"},"finish_reason":"content_filter"}]})",
       "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Half an\"},\"finish_reason\":"
       "null}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
       "\"content_filter\"}]}\n\ndata: [DONE]\n\n",
       ErrorClass::content_filter},
      {"openai",
       R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Half an"},"finish_reason":"error"}]})",
       "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Half an\"},\"finish_reason\":"
       "\"error\"}]}\n\ndata: [DONE]\n\n",
       ErrorClass::invalid_response},
      {"openai",
       R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Half an"},"finish_reason":"overloaded_error"}]})",
       "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Half an\"},\"finish_reason\":"
       "\"overloaded_error\"}]}\n\ndata: [DONE]\n\n",
       ErrorClass::overloaded},
      {"openai",
       R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Whole."},"finish_reason":"stop"}]})",
       "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Whole.\"},\"finish_reason\":"
       "\"stop\"}]}\n\ndata: [DONE]\n\n",
       ErrorClass::none},
      {"anthropic",
       R"({"type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"Half an"}],"stop_reason":"refusal"})",
       "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\"}}\n\n"
       "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
       "\"delta\":{\"type\":\"text_delta\",\"text\":\"Half an\"}}\n\n"
       "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
       "\"refusal\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
       ErrorClass::content_filter},
      {"gemini",
       R"({"candidates":[{"content":{"parts":[{"text":"Half an"}],"role":"model"},"finishReason":"SAFETY","index":0}]})",
       "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Half an\"}],\"role\":"
       "\"model\"},\"finishReason\":\"SAFETY\",\"index\":0}]}\r\n\r\n",
       ErrorClass::content_filter},
      {"gemini",
       R"({"candidates":[{"content":{"parts":[{"text":"Half an"}],"role":"model"},"finishReason":"OTHER","index":0}]})",
       "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Half an\"}],\"role\":"
       "\"model\"},\"finishReason\":\"OTHER\",\"index\":0}]}\r\n\r\n",
       ErrorClass::invalid_response},
  };
  engine::ValidationRules rules;
  for (const auto& row : rows) {
    const auto& p = protocol(row.protocol);
    INFO(row.protocol << " " << row.plain);
    const engine::ReplyCheck plain = engine::check_plain_reply(p, row.plain, &rules);
    const auto streamed = provider_test::run_both_ways(p, row.stream);
    const engine::ReplyCheck stream = engine::check_stream_reply(p, streamed.state, &rules);
    CHECK(plain.error == row.expected);
    CHECK(stream.error == row.expected);
    CHECK(plain.reply.has_value() == (row.expected == ErrorClass::none));
    CHECK(stream.reply.has_value() == (row.expected == ErrorClass::none));
  }
}

TEST_CASE("reply check: the answer carries detour's word for its finish reason", "[finish]") {
  engine::ValidationRules rules;
  auto check = engine::check_plain_reply(
      protocol("anthropic"),
      R"({"type":"message","content":[{"type":"text","text":"Paris is"}],"stop_reason":"max_tokens"})",
      &rules);
  REQUIRE(check.reply);
  CHECK(check.reply->finish_reason == "length");
  rules.require_complete = true;
  check = engine::check_plain_reply(
      protocol("anthropic"),
      R"({"type":"message","content":[{"type":"text","text":"Paris is"}],"stop_reason":"max_tokens"})",
      &rules);
  CHECK(check.error == ErrorClass::truncated);
}

TEST_CASE("reply check: a probe (no rules) skips content checks, not the finish reason",
          "[finish]") {
  const auto& openai = protocol("openai");
  auto empty = engine::check_plain_reply(
      openai, R"({"choices":[{"index":0,"message":{"content":""},"finish_reason":"length"}]})",
      nullptr);
  CHECK(empty.error == ErrorClass::none);
  auto filtered = engine::check_plain_reply(
      openai,
      R"({"choices":[{"index":0,"message":{"content":""},"finish_reason":"content_filter"}]})",
      nullptr);
  CHECK(filtered.error == ErrorClass::content_filter);
}

TEST_CASE("one class for an error, wherever it arrives", "[finish][errors]") {
  struct Row {
    const char* protocol;
    int status;          // the status the error has as a reply
    const char* body;    // the error reply's body
    const char* stream;  // the same error inside a 200 stream, after some text
    ErrorClass expected;
  };
  const Row rows[] = {
      // OpenAI and compatible servers: `data: {"error": …}` (openai-python _streaming.py).
      {"openai", 500,
       R"({"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}})",
       "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\","
       "\"param\":null,\"code\":null}}\n\n",
       ErrorClass::server_error},
      {"openai", 429,
       R"({"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}})",
       "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"param\":null,"
       "\"code\":\"rate_limit_exceeded\"}}\n\n",
       ErrorClass::rate_limited},
      // OpenRouter: the numeric code is the status (errors-and-debugging docs).
      {"openai", 502, R"({"error":{"code":502,"message":"Provider returned error"}})",
       "data: {\"error\":{\"code\":502,\"message\":\"Provider returned error\"},\"choices\":"
       "[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n",
       ErrorClass::server_error},
      {"openai", 402, R"({"error":{"code":402,"message":"Insufficient credits"}})",
       "event: error\ndata: {\"error\":{\"code\":402,\"message\":\"Insufficient credits\"}}\n\n",
       ErrorClass::quota_exhausted},
      // Anthropic: `event: error` (streaming docs, "Error events").
      {"anthropic", 529,
       R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
       "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
       "\"message\":\"Overloaded\"}}\n\n",
       ErrorClass::overloaded},
      {"anthropic", 500,
       R"({"type":"error","error":{"type":"api_error","message":"Internal server error"}})",
       "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
       "\"Internal server error\"}}\n\n",
       ErrorClass::server_error},
      {"anthropic", 429,
       R"({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}})",
       "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
       "\"message\":\"slow down\"}}\n\n",
       ErrorClass::rate_limited},
      // Gemini: a raw error object in the stream (python-genai _iter_response_stream).
      {"gemini", 503,
       R"({"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}})",
       "{\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": "
       "\"UNAVAILABLE\"}}\n",
       ErrorClass::overloaded},
      {"gemini", 500, R"({"error":{"code":500,"message":"Internal error","status":"INTERNAL"}})",
       "data: {\"error\": {\"code\": 500, \"message\": \"Internal error\", \"status\": "
       "\"INTERNAL\"}}\n\n",
       ErrorClass::server_error},
      {"gemini", 429,
       R"({"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}})",
       "data: {\"error\":{\"code\":429,\"message\":\"Quota exceeded\",\"status\":"
       "\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc."
       "QuotaFailure\",\"violations\":[{\"quotaId\":\"GenerateRequestsPerDayPerProjectPerModel-"
       "FreeTier\"}]}]}}\n\n",
       ErrorClass::quota_exhausted},
  };
  const char* text_first[] = {
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Half\"},\"finish_reason\":null}]}"
      "\n\n",
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"text_delta\",\"text\":\"Half\"}}\n\n",
      "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Half\"}],\"role\":\"model\"},"
      "\"index\":0}]}\r\n\r\n",
  };
  engine::ValidationRules rules;
  for (const auto& row : rows) {
    const auto& p = protocol(row.protocol);
    const std::string name = row.protocol;
    const char* first = name == "openai"      ? text_first[0]
                        : name == "anthropic" ? text_first[1]
                                              : text_first[2];
    INFO(row.protocol << " " << row.body);
    const auto as_reply = p.parse_error(row.status, row.body);
    CHECK(engine::classify_http_error(row.status, as_reply, {}) == row.expected);
    // The same body as a 200 reply (gateways answer 200 with an error once they started).
    CHECK(engine::check_plain_reply(p, row.body, &rules).error == row.expected);
    const auto streamed = provider_test::run_both_ways(p, std::string(first) + row.stream);
    REQUIRE(streamed.state.error);
    CHECK(engine::check_stream_reply(p, streamed.state, &rules).error == row.expected);
  }
}

TEST_CASE("check_response: transport, error replies and 2xx, one way for calls and probes",
          "[finish]") {
  const auto& openai = protocol("openai");
  net::HttpResponse refused;
  refused.transport = net::TransportStatus::connect_failed;
  CHECK(engine::check_response(openai, refused, {}, "", nullptr, nullptr).error ==
        ErrorClass::connection);

  net::HttpResponse busy;
  busy.status = 503;
  const std::string busy_body = R"({"error":{"message":"busy","type":"server_error"}})";
  auto check = engine::check_response(openai, busy, {}, busy_body, nullptr, nullptr);
  CHECK(check.error == ErrorClass::overloaded);
  CHECK(check.message == "busy");
  REQUIRE(check.provider_error);

  // A bad request stops the chain: its message shows the body, to tell a gateway's own 400.
  net::HttpResponse bad;
  bad.status = 400;
  const std::string bad_body =
      R"({"error":{"message":"x-gateway-key header missing","type":"invalid_request_error"}})";
  check = engine::check_response(openai, bad, {}, bad_body, nullptr, nullptr);
  CHECK(check.error == ErrorClass::bad_request);
  CHECK_THAT(check.message, Catch::StartsWith("x-gateway-key header missing (HTTP 400 body: {"));

  net::HttpResponse ok;
  ok.status = 200;
  ok.body = R"({"choices":[{"index":0,"message":{"content":"hi"},"finish_reason":"stop"}]})";
  CHECK(engine::check_response(openai, ok, {}, "", nullptr, nullptr).reply);

  // A stream reset after its end marker said all it had to say; one reset before it did not.
  net::HttpResponse reset;
  reset.status = 200;
  reset.transport = net::TransportStatus::connection_reset;
  providers::StreamState whole;
  whole.complete = true;
  whole.reply.content = "hi";
  whole.reply.finish_reason = "stop";
  CHECK(engine::check_response(openai, reset, {}, "", &whole, nullptr).reply);
  providers::StreamState cut = whole;
  cut.complete = false;
  CHECK(engine::check_response(openai, reset, {}, "", &cut, nullptr).error ==
        ErrorClass::invalid_response);
}
