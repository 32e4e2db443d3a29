// The classifier, row by row: provider bodies (parsed by the real protocol parsers) and
// statuses to error classes, and the exit code each combination of attempts gives.
#include <catch2/catch.hpp>

#include "engine/call.hpp"
#include "engine/errors.hpp"

using namespace detour;
using engine::ErrorClass;

TEST_CASE("HTTP errors classify by provider body first, then status", "[errors]") {
  struct Row {
    const char* protocol;
    int status;
    const char* body;
    ErrorClass expected;
  };
  const std::vector<Row> rows = {
      {"openai", 429,
       R"({"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}})",
       ErrorClass::quota_exhausted},
      {"openai", 429,
       R"({"error":{"message":"Rate limit reached. Please try again in 644ms.","type":"tokens","param":null,"code":"rate_limit_exceeded"}})",
       ErrorClass::rate_limited},
      {"openai", 401,
       R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})",
       ErrorClass::auth},
      {"openai", 404,
       R"({"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}})",
       ErrorClass::not_found},
      {"openai", 400,
       R"({"error":{"message":"maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}})",
       ErrorClass::context_length},
      {"openai", 400,
       R"({"error":{"message":"bad","type":"invalid_request_error","param":null,"code":"content_policy_violation"}})",
       ErrorClass::content_filter},
      {"openai", 400,
       R"({"error":{"message":"'messages' is required","type":"invalid_request_error","param":null,"code":null}})",
       ErrorClass::bad_request},
      {"openai", 502, "<html>Bad Gateway</html>", ErrorClass::server_error},
      {"openai", 503, "", ErrorClass::overloaded},
      {"anthropic", 529,
       R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
       ErrorClass::overloaded},
      {"anthropic", 402, R"({"type":"error","error":{"type":"billing_error","message":"credit"}})",
       ErrorClass::quota_exhausted},
      {"anthropic", 400,
       R"({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}})",
       ErrorClass::context_length},
      {"anthropic", 418, R"({"type":"error","error":{"type":"brand_new_error","message":"?"}})",
       ErrorClass::bad_request},
      {"gemini", 400,
       R"({"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}})",
       ErrorClass::auth},
      {"gemini", 429,
       R"({"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}})",
       ErrorClass::quota_exhausted},
      {"gemini", 429,
       R"({"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}})",
       ErrorClass::rate_limited},
      {"gemini", 503, R"({"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}})",
       ErrorClass::overloaded},
      // Quota and billing bodies, one row each (the wording of each as users report it).
      // Anthropic: out of credit is a 400 invalid_request_error, told apart only by its words.
      {"anthropic", 400,
       R"({"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"})",
       ErrorClass::quota_exhausted},
      // The same words from an OpenAI-compatible gateway in front of Anthropic.
      {"openai", 400,
       R"({"error":{"message":"litellm.BadRequestError: AnthropicException - Your credit balance is too low to access the Anthropic API.","type":null,"param":null,"code":"400"}})",
       ErrorClass::quota_exhausted},
      // DeepSeek: 402 Insufficient Balance (api-docs.deepseek.com/quick_start/error_codes).
      {"openai", 402,
       R"({"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}})",
       ErrorClass::quota_exhausted},
      // OpenRouter: 402 for credits; a 429 per-day cap on free models is a quota, not a wait.
      {"openai", 402,
       R"({"error":{"code":402,"message":"Insufficient credits. Add more using https://openrouter.ai/settings/credits"}})",
       ErrorClass::quota_exhausted},
      {"openai", 429,
       R"({"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429,"metadata":{"headers":{"X-RateLimit-Limit":"50","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"1741305600000"}}}})",
       ErrorClass::quota_exhausted},
      // Anthropic's output filter: a 400 invalid_request_error named only by its words.
      {"anthropic", 400,
       R"({"type":"error","error":{"type":"invalid_request_error","message":"Output blocked by content filtering policy"}})",
       ErrorClass::content_filter},
      // A plain 429 from OpenRouter still waits.
      {"openai", 429,
       R"({"error":{"message":"Rate limit exceeded: limit_rpm/google/gemini","code":429}})",
       ErrorClass::rate_limited},
  };
  for (const auto& row : rows) {
    const auto* protocol = providers::find_protocol(row.protocol);
    REQUIRE(protocol);
    auto error = protocol->parse_error(row.status, row.body);
    INFO(row.protocol << " " << row.status << " " << row.body);
    CHECK(engine::classify_http_error(row.status, error, {}) == row.expected);
  }
}

TEST_CASE("transport failures classify as timeout or connection", "[errors]") {
  CHECK(engine::classify_transport(net::TransportStatus::connect_failed) == ErrorClass::connection);
  CHECK(engine::classify_transport(net::TransportStatus::connection_reset) ==
        ErrorClass::connection);
  CHECK(engine::classify_transport(net::TransportStatus::dns_failed) == ErrorClass::connection);
  CHECK(engine::classify_transport(net::TransportStatus::first_byte_timeout) ==
        ErrorClass::timeout);
  CHECK(engine::classify_transport(net::TransportStatus::timeout) == ErrorClass::timeout);
  CHECK(engine::classify_transport(net::TransportStatus::cancelled) == ErrorClass::cancelled);
}

TEST_CASE("exit codes follow the classes of every attempt", "[errors]") {
  auto result_of = [](std::vector<ErrorClass> classes) {
    engine::CallResult r;
    for (auto c : classes) {
      engine::AttemptRecord a;
      a.provider = "p";
      a.model = "m";
      a.status = 400;
      a.error = c;
      r.attempts.push_back(a);
    }
    r.error = classes.back();
    return r;
  };
  CHECK(engine::exit_code_for_failure(
            result_of({ErrorClass::bad_request, ErrorClass::context_length})) == 4);
  CHECK(engine::exit_code_for_failure(result_of({ErrorClass::auth, ErrorClass::auth})) == 5);
  CHECK(engine::exit_code_for_failure(result_of({ErrorClass::auth, ErrorClass::overloaded})) == 1);
  CHECK(engine::exit_code_for_failure(result_of({ErrorClass::cancelled})) == 130);
  // The class that ended the call decides a rejection: a 503 before a bad request is still 4.
  CHECK(engine::exit_code_for_failure(
            result_of({ErrorClass::overloaded, ErrorClass::bad_request})) == 4);
  // A circuit opened by an auth failure still says auth.
  auto skipped = result_of({ErrorClass::skipped_open});
  skipped.attempts[0].cause = ErrorClass::auth;
  skipped.error = ErrorClass::skipped_open;
  CHECK(engine::exit_code_for_failure(skipped) == 5);
}

TEST_CASE("a 429 for a request larger than the whole TPM limit is recognised", "[errors]") {
  providers::ProviderError e;
  e.message =
      "Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, "
      "Requested 50000. The input or output tokens must be reduced in order to run successfully.";
  CHECK(engine::request_exceeds_rate_limit(429, e));
  CHECK_FALSE(engine::request_exceeds_rate_limit(413, e));
  e.message = "Rate limit reached for gpt-4o on tokens per min (TPM). Please try again in 6ms.";
  CHECK_FALSE(engine::request_exceeds_rate_limit(429, e));
}
