// The Gemini generateContent protocol: requests, replies, error bodies, streams, models.
#include <catch2/catch.hpp>

#include "provider_test_util.hpp"
#include "providers/types.hpp"

using detour::Millis;
using detour::providers::ChatRequest;
using detour::providers::find_protocol;
using nlohmann::json;
using provider_test::body_of;
using provider_test::header;
using provider_test::run_both_ways;

namespace {

const detour::providers::Protocol& gemini() {
  return *find_protocol("gemini");
}

constexpr const char* kBase = "https://generativelanguage.googleapis.com";

ChatRequest simple_request() {
  ChatRequest request;
  request.model = "gemini-2.5-flash";
  request.system = "You are a cat. Your name is Neko.";
  request.messages = {{"user", "Hello there"}};
  return request;
}

// A GenerateContentResponse as the API returns it.
constexpr const char* kReply = R"({
  "candidates": [
    {
      "content": {"parts": [{"text": "AI learns patterns from data."}], "role": "model"},
      "finishReason": "STOP",
      "avgLogprobs": -0.1234,
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 4,
    "candidatesTokenCount": 9,
    "totalTokenCount": 13,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}]
  },
  "modelVersion": "gemini-2.5-flash",
  "responseId": "w2ybaKPXGqiFz7IPj5qS0AU"
})";

// streamGenerateContent?alt=sse: no terminator, the last chunk has finishReason and usage.
constexpr const char* kStream =
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The\"}],\"role\": "
    "\"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"totalTokenCount\": "
    "8},\"modelVersion\": \"gemini-2.0-flash\",\"responseId\": \"abc\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" sky is blue.\"}],\"role\": "
    "\"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"totalTokenCount\": "
    "8},\"modelVersion\": \"gemini-2.0-flash\",\"responseId\": \"abc\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},"
    "\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,"
    "\"candidatesTokenCount\": 5,\"totalTokenCount\": 13},\"modelVersion\": "
    "\"gemini-2.0-flash\",\"responseId\": \"abc\"}\r\n\r\n";

// A 429 of the free tier: RetryInfo with a fractional delay, QuotaFailure, Help.
constexpr const char* kQuotaError = R"({
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details. Please retry in 34.074824224s.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
          {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"},
            "quotaValue": "15"
          },
          {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"},
            "quotaValue": "200"
          }
        ]
      },
      {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Learn more about Gemini API quotas",
                   "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]
      },
      {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.074824224s"}
    ]
  }
})";

}  // namespace

TEST_CASE("gemini: request body, URL and key header", "[providers]") {
  auto request = simple_request();
  request.max_tokens = 500;
  request.temperature = 0.7;
  auto http = gemini().build_request({kBase, "AIza-test"}, request);
  CHECK(http.method == "POST");
  CHECK(http.url ==
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent");
  CHECK(header(http, "x-goog-api-key") == "AIza-test");
  CHECK(header(http, "content-type") == "application/json");
  CHECK(header(http, "authorization") == "<absent>");
  json expected = json::parse(R"({
    "contents": [{"role": "user", "parts": [{"text": "Hello there"}]}],
    "systemInstruction": {"parts": [{"text": "You are a cat. Your name is Neko."}]},
    "generationConfig": {"maxOutputTokens": 500, "temperature": 0.7}
  })");
  CHECK(body_of(http) == expected);
}

TEST_CASE("gemini: streaming URL, roles, no key, no empty generationConfig", "[providers]") {
  ChatRequest request;
  request.model = "models/gemini-2.0-flash";
  request.stream = true;
  request.messages = {
      {"system", "Be brief."}, {"user", "hi"}, {"assistant", "hello"}, {"user", "again"}};
  auto http = gemini().build_request({"http://localhost:9000/", ""}, request);
  CHECK(http.url ==
        "http://localhost:9000/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
  CHECK(header(http, "x-goog-api-key") == "<absent>");
  json body = body_of(http);
  CHECK_FALSE(body.contains("stream"));
  CHECK_FALSE(body.contains("generationConfig"));
  CHECK(body["systemInstruction"] == json::parse(R"({"parts":[{"text":"Be brief."}]})"));
  CHECK(body["contents"] == json::parse(R"([
      {"role":"user","parts":[{"text":"hi"}]},
      {"role":"model","parts":[{"text":"hello"}]},
      {"role":"user","parts":[{"text":"again"}]}])"));
}

TEST_CASE("gemini: JSON output through generationConfig", "[providers]") {
  auto request = simple_request();
  request.json_output = true;
  json body = body_of(gemini().build_request({kBase, "k"}, request));
  CHECK(body["generationConfig"] == json{{"responseMimeType", "application/json"}});
  CHECK(body["systemInstruction"]["parts"][0]["text"] == "You are a cat. Your name is Neko.");

  request.schema = json::parse(R"({"type":"object","properties":{"name":{"type":"string"}}})");
  body = body_of(gemini().build_request({kBase, "k"}, request));
  CHECK(body["generationConfig"]["responseMimeType"] == "application/json");
  CHECK(body["generationConfig"]["responseJsonSchema"] == *request.schema);
  CHECK_FALSE(body["generationConfig"].contains("responseSchema"));
}

TEST_CASE("gemini: -o parameters land where Gemini expects them", "[providers]") {
  auto request = simple_request();
  request.max_tokens = 100;
  request.temperature = 0.2;
  request.extra = json::parse(R"({
    "topK": 40,
    "maxOutputTokens": 10,
    "generationConfig": {"topP": 0.9},
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
  })");
  json body = body_of(gemini().build_request({kBase, "k"}, request));
  json expected_config = {
      {"maxOutputTokens", 10}, {"temperature", 0.2}, {"topK", 40}, {"topP", 0.9}};
  CHECK(body["generationConfig"] == expected_config);
  CHECK(body["safetySettings"][0]["threshold"] == "BLOCK_NONE");
  CHECK_FALSE(body.contains("topK"));
}

TEST_CASE("gemini: a reply is parsed", "[providers]") {
  auto result = gemini().parse_reply(std::string("\n") + kReply);
  REQUIRE(result.reply);
  CHECK(result.reply->content == "AI learns patterns from data.");
  CHECK(result.reply->finish_reason == "STOP");
  CHECK(result.reply->served_model == "gemini-2.5-flash");
  CHECK(result.reply->usage.input_tokens == 4);
  CHECK(result.reply->usage.output_tokens == 9);
}

TEST_CASE("gemini: thought parts are not the answer; thinking tokens are output", "[providers]") {
  auto result = gemini().parse_reply(R"({"candidates":[{"content":{"parts":[
      {"text":"**Weighing it up**","thought":true},{"text":"4"},{"text":"2"}],"role":"model"},
      "finishReason":"STOP","index":0}],
      "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2,"thoughtsTokenCount":120,
      "totalTokenCount":132},"modelVersion":"gemini-2.5-pro"})");
  REQUIRE(result.reply);
  CHECK(result.reply->content == "42");
  CHECK(result.reply->usage.output_tokens == 122);
}

TEST_CASE("gemini: finish reasons pass through as written", "[providers]") {
  // engine/finish_reason.cpp judges them; the parser only reports.
  for (const char* reason :
       {"STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "OTHER", "MALFORMED_FUNCTION_CALL"}) {
    INFO(reason);
    json body = json::parse(kReply);
    body["candidates"][0]["finishReason"] = reason;
    auto result = gemini().parse_reply(body.dump());
    REQUIRE(result.reply);
    CHECK(result.reply->finish_reason == reason);
  }
}

TEST_CASE("gemini: a 200 body that is an error is that error, with its code", "[providers]") {
  auto result = gemini().parse_reply(
      R"({"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}})");
  CHECK_FALSE(result.reply);
  REQUIRE(result.error);
  CHECK(result.error->type == "UNAVAILABLE");
  CHECK(result.error->named_status == 503);
}

TEST_CASE("gemini: blocked prompts and filtered candidates are replies with no text",
          "[providers]") {
  auto blocked = gemini().parse_reply(R"({"promptFeedback":{"blockReason":"SAFETY",
      "safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH"}]},
      "usageMetadata":{"promptTokenCount":8,"totalTokenCount":8},"modelVersion":"gemini-2.0-flash"})");
  REQUIRE(blocked.reply);
  CHECK(blocked.reply->content == "");
  CHECK(blocked.reply->block_reason == "SAFETY");
  CHECK(blocked.reply->finish_reason == "");
  CHECK(blocked.reply->usage.input_tokens == 8);
  CHECK(blocked.reply->served_model == "gemini-2.0-flash");

  auto filtered = gemini().parse_reply(
      R"({"candidates":[{"finishReason":"SAFETY","index":0,"safetyRatings":[]}],"modelVersion":"m"})");
  REQUIRE(filtered.reply);
  CHECK(filtered.reply->content == "");
  CHECK(filtered.reply->finish_reason == "SAFETY");
}

TEST_CASE("gemini: bodies that are not a valid reply give a problem", "[providers]") {
  const char* bodies[] = {
      "",
      "<html>oops</html>",
      R"({"candidates":[{"content":)",
      "{}",
      R"({"candidates":[]})",
      R"({"usageMetadata":{"promptTokenCount":3}})",
      R"({"error":{"code":500,"message":"Internal error","status":"INTERNAL"}})"};
  for (const char* body : bodies) {
    INFO(body);
    auto result = gemini().parse_reply(body);
    CHECK_FALSE(result.reply.has_value());
    CHECK_FALSE(result.problem.empty());
  }
}

TEST_CASE("gemini: a quota 429 gives the retry delay and quota ids", "[providers]") {
  auto error = gemini().parse_error(429, kQuotaError);
  CHECK(error.recognised);
  CHECK(error.status == 429);
  CHECK(error.type == "RESOURCE_EXHAUSTED");
  CHECK(error.code == "");
  CHECK(error.message.rfind("You exceeded your current quota", 0) == 0);
  CHECK(error.retry_delay == Millis(34075));
  CHECK(error.quota_ids ==
        std::vector<std::string>{"GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                                 "GenerateRequestsPerDayPerProjectPerModel-FreeTier"});
}

TEST_CASE("gemini: other error bodies", "[providers]") {
  struct Row {
    int status;
    const char* body;
    const char* type;
    const char* code;
    const char* message;
    std::optional<Millis> retry_delay;
  };
  const Row rows[] = {
      {400,
       R"({"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key not valid. Please pass a valid API key."}]}})",
       "INVALID_ARGUMENT", "API_KEY_INVALID", "API key not valid. Please pass a valid API key.",
       std::nullopt},
      {503,
       R"({"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}})",
       "UNAVAILABLE", "", "The model is overloaded. Please try again later.", std::nullopt},
      {404,
       R"({"error":{"code":404,"message":"models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.","status":"NOT_FOUND"}})",
       "NOT_FOUND", "",
       "models/gemini-9 is not found for API version v1beta, or is not supported for "
       "generateContent.",
       std::nullopt},
      // No RetryInfo: the message's "retry in" is the hint.
      {429,
       R"({"error":{"code":429,"message":"Quota exceeded. Please retry in 10h17m5.72s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"garbage"}]}})",
       "RESOURCE_EXHAUSTED", "", "Quota exceeded. Please retry in 10h17m5.72s.", Millis(37025720)},
      {429,
       R"({"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}})",
       "RESOURCE_EXHAUSTED", "", "Resource exhausted", Millis(37000)},
      // The non-SSE stream endpoint wraps everything in an array.
      {429,
       R"([{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}])",
       "RESOURCE_EXHAUSTED", "", "Resource has been exhausted (e.g. check quota).", std::nullopt},
  };
  for (const auto& row : rows) {
    INFO(row.body);
    auto error = gemini().parse_error(row.status, row.body);
    CHECK(error.recognised);
    CHECK(error.status == row.status);
    CHECK(error.type == row.type);
    CHECK(error.code == row.code);
    CHECK(error.message == row.message);
    CHECK(error.retry_delay == row.retry_delay);
    CHECK(error.quota_ids.empty());
  }

  auto html = gemini().parse_error(
      502, "<!DOCTYPE html>\n<html lang=en>\n  <title>Error 502 (Server Error)!!1</title>");
  CHECK_FALSE(html.recognised);
  CHECK(html.message ==
        "<!DOCTYPE html> <html lang=en> <title>Error 502 (Server Error)!!1</title>");
  CHECK_FALSE(gemini().parse_error(500, R"({"message":"x"})").recognised);
}

TEST_CASE("gemini: a stream gives the same result whole and byte by byte", "[providers]") {
  auto run = run_both_ways(gemini(), kStream);
  CHECK(run.text == "The sky is blue.");
  CHECK(run.text_calls == 2);
  CHECK(run.state.reply.finish_reason == "STOP");
  CHECK(run.state.reply.served_model == "gemini-2.0-flash");
  CHECK(run.state.reply.usage.input_tokens == 8);
  CHECK(run.state.reply.usage.output_tokens == 5);
  CHECK(run.state.complete);
  CHECK_FALSE(run.state.error.has_value());
  CHECK(run.state.problem.empty());
}

TEST_CASE("gemini: a stream without a finishReason is truncated", "[providers]") {
  std::string full = kStream;
  std::string cut = full.substr(0, full.rfind("data: "));
  auto run = run_both_ways(gemini(), "\n\n: keep-alive\n\n" + cut);
  CHECK(run.text == "The sky is blue.");
  CHECK_FALSE(run.state.complete);
  CHECK_FALSE(run.state.error.has_value());

  // The last chunk without its blank line still completes the stream.
  auto unterminated = run_both_ways(gemini(), full.substr(0, full.size() - 4));
  CHECK(unterminated.state.complete);
}

TEST_CASE("gemini: errors in a stream, with and without data:", "[providers]") {
  std::string full = kStream;
  std::string first = full.substr(0, full.find("data: ", 10));
  SECTION("raw multi-line JSON, no data: prefix") {
    std::string body = first +
                       "{\n  \"error\": {\n    \"code\": 503,\n    \"message\": \"The model is "
                       "overloaded. Please try again later :}\",\n    \"status\": \"UNAVAILABLE\"\n"
                       "  }\n}\n";
    auto run = run_both_ways(gemini(), body);
    CHECK(run.text == "The");
    REQUIRE(run.state.error);
    CHECK(run.state.error->recognised);
    CHECK(run.state.error->type == "UNAVAILABLE");
    CHECK(run.state.error->message == "The model is overloaded. Please try again later :}");
    CHECK_FALSE(run.state.complete);
    CHECK(run.state.problem.empty());
  }
  SECTION("raw pretty-printed JSON at the very end, without a final newline") {
    std::string body = first + kQuotaError;
    auto run = run_both_ways(gemini(), body);
    REQUIRE(run.state.error);
    CHECK(run.state.error->type == "RESOURCE_EXHAUSTED");
    CHECK(run.state.error->retry_delay == Millis(34075));
    CHECK(run.state.error->quota_ids.size() == 2);
  }
  SECTION("as a data: event") {
    std::string body = first +
                       "data: {\"error\": {\"code\": 500, \"message\": \"An internal error has "
                       "occurred.\", \"status\": \"INTERNAL\"}}\n\n";
    auto run = run_both_ways(gemini(), body);
    REQUIRE(run.state.error);
    CHECK(run.state.error->type == "INTERNAL");
    CHECK(run.state.error->message == "An internal error has occurred.");
  }
}

TEST_CASE("gemini: a blocked prompt in a stream ends it with its block reason", "[providers]") {
  auto run = run_both_ways(gemini(),
                           "data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"},"
                           "\"usageMetadata\": {\"promptTokenCount\": 8}}\n\n");
  CHECK(run.text == "");
  CHECK(run.state.reply.block_reason == "SAFETY");
  CHECK(run.state.complete);
}

TEST_CASE("gemini: garbage in a stream makes it invalid", "[providers]") {
  std::string full = kStream;
  auto run = run_both_ways(gemini(), "data: {\"candidates\": [\n\n" + full);
  CHECK(run.text == "The sky is blue.");
  CHECK_FALSE(run.state.complete);
  CHECK_FALSE(run.state.problem.empty());

  auto junk = run_both_ways(gemini(), "<html>502</html>\n" + full);
  CHECK_FALSE(junk.state.complete);
  CHECK_FALSE(junk.state.problem.empty());
}

TEST_CASE("gemini: model list", "[providers]") {
  auto http = gemini().build_models_request({kBase, "AIza-test"});
  CHECK(http.method == "GET");
  CHECK(http.url == "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000");
  CHECK(header(http, "x-goog-api-key") == "AIza-test");
  auto ids = gemini().parse_models(R"({"models":[
      {"name":"models/gemini-2.5-flash","version":"001","displayName":"Gemini 2.5 Flash",
       "supportedGenerationMethods":["generateContent","countTokens"]},
      {"name":"models/embedding-001","version":"001"}],"nextPageToken":"Ch1tb2RlbHMv"})");
  CHECK(ids == std::vector<std::string>{"gemini-2.5-flash", "embedding-001"});
  CHECK(gemini().parse_models("[]").empty());
}

// cachedContentTokenCount is part of promptTokenCount (../shared/reference/providers.md).
TEST_CASE("gemini: tokens read from a cachedContent are the cached part of the prompt",
          "[providers]") {
  auto result = gemini().parse_reply(R"({"candidates":[{"content":{"parts":[{"text":"4"}],
      "role":"model"},"finishReason":"STOP","index":0}],
      "usageMetadata":{"promptTokenCount":5000,"cachedContentTokenCount":4096,
      "candidatesTokenCount":1,"totalTokenCount":5001}})");
  REQUIRE(result.reply);
  CHECK(result.reply->usage.input_tokens == 5000);
  CHECK(result.reply->usage.cached_input_tokens == 4096);
}
