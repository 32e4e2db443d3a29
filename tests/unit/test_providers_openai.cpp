// The OpenAI chat-completions protocol: requests, replies, error bodies, streams, models.
#include <catch2/catch.hpp>

#include "provider_test_util.hpp"
#include "providers/types.hpp"

using detour::Millis;
using detour::providers::ChatRequest;
using detour::providers::Endpoint;
using detour::providers::find_protocol;
using nlohmann::json;
using provider_test::body_of;
using provider_test::header;
using provider_test::run_both_ways;

namespace {

const detour::providers::Protocol& openai() {
  return *find_protocol("openai");
}

ChatRequest simple_request() {
  ChatRequest request;
  request.model = "gpt-4o-mini";
  request.system = "You are terse.";
  request.messages = {{"user", "Say hello"}};
  return request;
}

// A chat.completion as the API reference shows it.
constexpr const char* kReply = R"({
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "gpt-4.1-2025-04-14",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "Hello! How can I assist you today?",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  },
  "service_tier": "default"
})";

// A streamed completion with stream_options.include_usage, as OpenAI sends it.
constexpr const char* kStream =
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
    "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],"
    "\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"content\":\" w\\u00f6rld\"},\"logprobs\":null,\"finish_reason\":"
    "null}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":"
    "[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":"
    "[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n"
    "data: [DONE]\n\n";

std::string chunk(std::string_view content) {
  return "data: " +
         json{{"object", "chat.completion.chunk"},
              {"model", "deepseek-chat"},
              {"choices",
               {{{"index", 0}, {"delta", {{"content", content}}}, {"finish_reason", nullptr}}}}}
             .dump() +
         "\n\n";
}

}  // namespace

TEST_CASE("openai: find_protocol knows the four protocols and nothing else", "[providers]") {
  REQUIRE(find_protocol("openai") != nullptr);
  CHECK(find_protocol("openai")->name() == "openai");
  CHECK(find_protocol("anthropic")->name() == "anthropic");
  CHECK(find_protocol("gemini")->name() == "gemini");
  CHECK(find_protocol("azure")->name() == "azure");
  CHECK(find_protocol("bedrock") == nullptr);
  CHECK(find_protocol("OpenAI") == nullptr);
  CHECK(find_protocol("") == nullptr);
}

TEST_CASE("openai: request to api.openai.com", "[providers]") {
  auto request = simple_request();
  request.max_tokens = 100;
  request.temperature = 0.25;
  auto http = openai().build_request({"https://api.openai.com/v1", "sk-test"}, request);
  CHECK(http.method == "POST");
  CHECK(http.url == "https://api.openai.com/v1/chat/completions");
  CHECK(header(http, "authorization") == "Bearer sk-test");
  CHECK(header(http, "content-type") == "application/json");
  json expected = {{"model", "gpt-4o-mini"},
                   {"messages",
                    {{{"role", "system"}, {"content", "You are terse."}},
                     {{"role", "user"}, {"content", "Say hello"}}}},
                   {"max_completion_tokens", 100},
                   {"temperature", 0.25}};
  CHECK(body_of(http) == expected);
}

TEST_CASE("openai: compatible servers get max_tokens and no auth header without a key",
          "[providers]") {
  auto request = simple_request();
  request.system.clear();
  request.max_tokens = 64;
  request.messages = {{"user", "a"}, {"assistant", "b"}, {"user", "c"}};
  auto http = openai().build_request({"http://localhost:11434/v1/", ""}, request);
  CHECK(http.url == "http://localhost:11434/v1/chat/completions");
  CHECK(header(http, "authorization") == "<absent>");
  for (const auto& [name, value] : http.headers)
    CHECK(name != "authorization");
  json body = body_of(http);
  CHECK(body["max_tokens"] == 64);
  CHECK_FALSE(body.contains("max_completion_tokens"));
  CHECK_FALSE(body.contains("temperature"));
  CHECK_FALSE(body.contains("stream"));
  CHECK(body["messages"] == json::parse(R"([{"role":"user","content":"a"},
      {"role":"assistant","content":"b"},{"role":"user","content":"c"}])"));

  // Only the real host counts, not a look-alike.
  auto proxy = openai().build_request({"https://api.openai.com.evil.example/v1", "k"}, request);
  CHECK(body_of(proxy).contains("max_tokens"));
  auto upper = openai().build_request({"https://API.OpenAI.com:443/v1", "k"}, request);
  CHECK(body_of(upper).contains("max_completion_tokens"));
}

TEST_CASE("openai: -o extra parameters are merged into the body last", "[providers]") {
  auto request = simple_request();
  request.temperature = 0.2;
  request.extra = {{"temperature", 0.9}, {"seed", 7}, {"reasoning_effort", "low"}};
  json body = body_of(openai().build_request({"https://api.openai.com/v1", "k"}, request));
  CHECK(body["temperature"] == 0.9);
  CHECK(body["seed"] == 7);
  CHECK(body["reasoning_effort"] == "low");
  CHECK(body["model"] == "gpt-4o-mini");
}

TEST_CASE("openai: JSON output modes", "[providers]") {
  SECTION("json_object, with the word JSON added when the prompt lacks it") {
    auto request = simple_request();
    request.json_output = true;
    json body = body_of(openai().build_request({"https://api.openai.com/v1", "k"}, request));
    CHECK(body["response_format"] == json{{"type", "json_object"}});
    std::string system = body["messages"][0]["content"];
    CHECK(system.rfind("You are terse.\n\n", 0) == 0);
    CHECK(system.find("JSON") != std::string::npos);
  }
  SECTION("json_object, prompt already says json: messages untouched") {
    auto request = simple_request();
    request.json_output = true;
    request.messages = {{"user", "Give me a json list of colours"}};
    json body = body_of(openai().build_request({"https://api.openai.com/v1", "k"}, request));
    CHECK(body["messages"][0]["content"] == "You are terse.");
  }
  SECTION("json_schema when a schema is given") {
    auto request = simple_request();
    request.json_output = true;
    request.schema = json::parse(R"({"type":"object","properties":{"n":{"type":"integer"}}})");
    json body = body_of(openai().build_request({"https://api.openai.com/v1", "k"}, request));
    json expected = {
        {"type", "json_schema"},
        {"json_schema", {{"name", "answer"}, {"schema", *request.schema}, {"strict", false}}}};
    CHECK(body["response_format"] == expected);
    CHECK(body["messages"][0]["content"] == "You are terse.");
  }
}

TEST_CASE("openai: streaming requests ask for usage", "[providers]") {
  auto request = simple_request();
  request.stream = true;
  auto http = openai().build_request({"https://api.openai.com/v1", "k"}, request);
  json body = body_of(http);
  CHECK(body["stream"] == true);
  CHECK(body["stream_options"] == json{{"include_usage", true}});
  CHECK(http.url == "https://api.openai.com/v1/chat/completions");
}

TEST_CASE("openai: a reply is parsed into content, finish reason, model and usage", "[providers]") {
  auto result = openai().parse_reply(kReply);
  REQUIRE(result.reply);
  CHECK(result.problem.empty());
  CHECK(result.reply->content == "Hello! How can I assist you today?");
  CHECK(result.reply->finish_reason == "stop");
  CHECK(result.reply->served_model == "gpt-4.1-2025-04-14");
  CHECK(result.reply->usage.input_tokens == 19);
  CHECK(result.reply->usage.output_tokens == 10);

  // DeepSeek sends blank lines while the request waits in its queue.
  auto padded = openai().parse_reply(std::string("\n\n\r\n  \n") + kReply);
  REQUIRE(padded.reply);
  CHECK(padded.reply->content == "Hello! How can I assist you today?");
}

TEST_CASE("openai: finish reasons pass through as written; refusals and null content",
          "[providers]") {
  struct Row {
    const char* body;
    const char* content;
    const char* finish;
  };
  const Row rows[] = {
      {R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Once upon"},"finish_reason":"length"}]})",
       "Once upon", "length"},
      {R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}]})",
       "", "content_filter"},
      {R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]})",
       "", "tool_calls"},
      {R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I'm sorry, I cannot help with that."},"finish_reason":"stop"}]})",
       "", "stop"},
      {R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"partial"},"finish_reason":"overloaded_error"}]})",
       "partial", "overloaded_error"},
      {R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":null}]})",
       "x", ""},
      {R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},"finish_reason":"stop"}]})",
       "ab", "stop"},
  };
  for (const auto& row : rows) {
    INFO(row.body);
    auto result = openai().parse_reply(row.body);
    REQUIRE(result.reply);
    CHECK(result.reply->content == row.content);
    CHECK(result.reply->finish_reason == row.finish);
    CHECK_FALSE(result.reply->usage.input_tokens.has_value());
  }
  auto refused = openai().parse_reply(rows[3].body);
  REQUIRE(refused.reply);
  CHECK(refused.reply->refusal == "I'm sorry, I cannot help with that.");
}

TEST_CASE("openai: a 200 body that is an error object is that error", "[providers]") {
  // OpenRouter answers 200 with an error once generation has started; the code is the status
  // the error stands for (openrouter.ai/docs/api/reference/errors-and-debugging).
  auto result = openai().parse_reply(
      R"({"error":{"code":502,"message":"Provider returned error","metadata":{}}})");
  CHECK_FALSE(result.reply);
  REQUIRE(result.error);
  CHECK(result.error->message == "Provider returned error");
  CHECK(result.error->named_status == 502);
}

TEST_CASE("openai: bodies that are not a valid reply give a problem", "[providers]") {
  const char* bodies[] = {
      "",
      "<html><body>502 Bad Gateway</body></html>",
      R"({"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assis)",  // cut short
      "{}",
      R"({"choices":[]})",
      R"({"choices":[{"index":0,"finish_reason":"stop"}]})",
      R"({"choices":[{"index":0,"message":{"content":42}}]})",
      R"([1,2,3])",
      R"({"error":{"message":"Provider returned error","code":502}})",
  };
  for (const char* body : bodies) {
    INFO(body);
    auto result = openai().parse_reply(body);
    CHECK_FALSE(result.reply.has_value());
    CHECK_FALSE(result.problem.empty());
  }
}

TEST_CASE("openai: error bodies", "[providers]") {
  struct Row {
    int status;
    const char* body;
    const char* type;
    const char* code;
    const char* message_start;
    std::optional<Millis> retry_delay;
  };
  const Row rows[] = {
      {429,
       R"({"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}})",
       "insufficient_quota", "insufficient_quota", "You exceeded your current quota", std::nullopt},
      {429,
       R"({"error":{"message":"Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29826, Requested 500. Please try again in 644ms. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}})",
       "tokens", "rate_limit_exceeded", "Rate limit reached for gpt-4o", Millis(644)},
      {429,
       R"({"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.","type":"requests","param":null,"code":"rate_limit_exceeded"}})",
       "requests", "rate_limit_exceeded", "Rate limit reached", Millis(20000)},
      {401,
       R"({"error":{"message":"Incorrect API key provided: sk-abc. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})",
       "invalid_request_error", "invalid_api_key", "Incorrect API key provided", std::nullopt},
      {404,
       R"({"error":{"message":"The model `gpt-5-turbo` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}})",
       "invalid_request_error", "model_not_found", "The model `gpt-5-turbo` does not exist",
       std::nullopt},
      {400,
       R"({"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}})",
       "invalid_request_error", "context_length_exceeded", "This model's maximum context length",
       std::nullopt},
      // OpenRouter: numeric code.
      {402,
       R"({"error":{"code":402,"message":"Insufficient credits. Add more using https://openrouter.ai/credits","metadata":{}}})",
       "", "402", "Insufficient credits", std::nullopt},
      // Azure: the wait is in the words.
      {429,
       R"({"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded call rate limit. Please retry after 37 seconds."}})",
       "", "429", "Requests to the ChatCompletions_Create", Millis(37000)},
      // Mistral: top-level error object.
      {429,
       R"({"object":"error","message":"Requests rate limit exceeded","type":"rate_limited","param":null,"code":"1300"})",
       "rate_limited", "1300", "Requests rate limit exceeded", std::nullopt},
      // Ollama.
      {404, R"({"error":"model \"llama9\" not found, try pulling it first"})", "", "",
       "model \"llama9\" not found", std::nullopt},
  };
  for (const auto& row : rows) {
    INFO(row.body);
    auto error = openai().parse_error(row.status, row.body);
    CHECK(error.recognised);
    CHECK(error.status == row.status);
    CHECK(error.type == row.type);
    CHECK(error.code == row.code);
    CHECK(error.message.rfind(row.message_start, 0) == 0);
    CHECK(error.retry_delay == row.retry_delay);
  }
}

TEST_CASE("openai: a non-JSON error body is kept as a short message", "[providers]") {
  std::string html =
      "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
      "Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n" +
      std::string(500, ' ') + std::string(400, 'x');
  auto error = openai().parse_error(502, html);
  CHECK_FALSE(error.recognised);
  CHECK(error.status == 502);
  CHECK(error.message.rfind("<html> <head><title>502 Bad Gateway</title></head> <body>", 0) == 0);
  CHECK(error.message.size() <= 200);
  CHECK(error.message.size() >= 190);

  auto json_but_not_error = openai().parse_error(500, R"({"detail":"Internal Server Error"})");
  CHECK_FALSE(json_but_not_error.recognised);
  CHECK(json_but_not_error.message == R"({"detail":"Internal Server Error"})");

  auto empty = openai().parse_error(503, "");
  CHECK_FALSE(empty.recognised);
  CHECK(empty.message.empty());
}

TEST_CASE("openai: a stream gives the same result whole and byte by byte", "[providers]") {
  auto run = run_both_ways(openai(), kStream);
  CHECK(run.text == "Hello w\xC3\xB6rld");
  CHECK(run.text_calls == 2);  // empty deltas are not passed on
  CHECK(run.state.reply.content == "Hello w\xC3\xB6rld");
  CHECK(run.state.reply.finish_reason == "stop");
  CHECK(run.state.reply.served_model == "gpt-4o-mini-2024-07-18");
  CHECK(run.state.reply.usage.input_tokens == 9);
  CHECK(run.state.reply.usage.output_tokens == 3);
  CHECK(run.state.complete);
  CHECK_FALSE(run.state.error.has_value());
  CHECK(run.state.problem.empty());
}

TEST_CASE("openai: keep-alives, leading blank lines and CRLF in a stream", "[providers]") {
  std::string body = "\n\n: keep-alive\n\n: OPENROUTER PROCESSING\n\n" + chunk("Hi") +
                     ": keep-alive\n\n" + chunk(" there") + "data: [DONE]\n\n";
  auto run = run_both_ways(openai(), body);
  CHECK(run.text == "Hi there");
  CHECK(run.state.reply.served_model == "deepseek-chat");
  CHECK(run.state.complete);

  std::string crlf;
  for (char c : body) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  auto crlf_run = run_both_ways(openai(), crlf);
  CHECK(crlf_run.text == "Hi there");
  CHECK(crlf_run.state.complete);
}

TEST_CASE("openai: a stream without [DONE] is not complete", "[providers]") {
  std::string full = kStream;
  std::string cut = full.substr(0, full.find("data: [DONE]"));
  auto run = run_both_ways(openai(), cut);
  CHECK(run.text == "Hello w\xC3\xB6rld");
  CHECK_FALSE(run.state.complete);
  CHECK_FALSE(run.state.error.has_value());

  // Cut in the middle of a chunk: the partial line is not JSON.
  auto mid = run_both_ways(openai(), full.substr(0, 300));
  CHECK_FALSE(mid.state.complete);

  // [DONE] without the final blank line still counts (finish() dispatches it).
  auto unterminated = run_both_ways(openai(), full.substr(0, full.size() - 2));
  CHECK(unterminated.state.complete);
}

TEST_CASE("openai: errors in the middle of a stream", "[providers]") {
  SECTION("data: {\"error\":...}") {
    std::string body =
        chunk("partial") +
        R"(data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}})"
        "\n\n" +
        chunk("ignored") + "data: [DONE]\n\n";
    auto run = run_both_ways(openai(), body);
    CHECK(run.text == "partial");
    REQUIRE(run.state.error);
    CHECK(run.state.error->recognised);
    CHECK(run.state.error->status == 200);
    CHECK(run.state.error->type == "server_error");
    CHECK(run.state.error->message == "The server had an error while processing your request.");
  }
  SECTION("event: error") {
    std::string body = chunk("partial") +
                       "event: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":"
                       "\"overloaded_error\",\"code\":null}}\n\n";
    auto run = run_both_ways(openai(), body);
    REQUIRE(run.state.error);
    CHECK(run.state.error->type == "overloaded_error");
    CHECK(run.state.error->message == "Overloaded");
    CHECK_FALSE(run.state.complete);
  }
  SECTION("OpenRouter: error with finish_reason error") {
    std::string body =
        chunk("Hel") +
        R"(data: {"id":"cmpl-abc123","object":"chat.completion.chunk","created":1234567890,"model":"openai/gpt-4o","provider":"openai","error":{"code":"server_error","message":"Provider disconnected unexpectedly"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]})"
        "\n\n";
    auto run = run_both_ways(openai(), body);
    REQUIRE(run.state.error);
    CHECK(run.state.error->code == "server_error");
    CHECK(run.state.error->message == "Provider disconnected unexpectedly");
    CHECK(run.state.reply.finish_reason == "");
  }
}

TEST_CASE("openai: a chunk that is not JSON makes the stream invalid", "[providers]") {
  std::string body = chunk("a") + "data: {\"choices\":[{\"delta\":{\"content\":\"b\"\n\n" +
                     chunk("c") + "data: [DONE]\n\n";
  auto run = run_both_ways(openai(), body);
  CHECK(run.text == "ac");
  CHECK_FALSE(run.state.complete);
  CHECK(run.state.problem.rfind("stream event is not a JSON object", 0) == 0);
}

TEST_CASE("openai: model list", "[providers]") {
  auto http = openai().build_models_request({"https://api.openai.com/v1/", "sk-test"});
  CHECK(http.method == "GET");
  CHECK(http.url == "https://api.openai.com/v1/models");
  CHECK(header(http, "authorization") == "Bearer sk-test");
  CHECK(http.body.empty());
  CHECK(header(openai().build_models_request({"http://localhost:8000/v1", ""}), "authorization") ==
        "<absent>");

  auto ids = openai().parse_models(R"({"object":"list","data":[
      {"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"},
      {"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"}]})");
  CHECK(ids == std::vector<std::string>{"gpt-4o", "gpt-4o-mini"});
  CHECK(openai().parse_models("not json").empty());
  CHECK(openai().parse_models(R"({"data":"nope"})").empty());
}

// prompt_tokens includes prompt_tokens_details.cached_tokens (../shared/reference/providers.md,
// and CompletionUsage in the OpenAI spec).
TEST_CASE("openai: cached prompt tokens are read from prompt_tokens_details", "[providers]") {
  json body = json::parse(kReply);
  body["usage"] = {{"prompt_tokens", 2006},
                   {"completion_tokens", 300},
                   {"total_tokens", 2306},
                   {"prompt_tokens_details", {{"cached_tokens", 1920}}}};
  auto result = openai().parse_reply(body.dump());
  REQUIRE(result.reply);
  CHECK(result.reply->usage.input_tokens == 2006);
  CHECK(result.reply->usage.cached_input_tokens == 1920);
  // Compatible servers that leave the details out: not known, rather than none.
  body["usage"].erase("prompt_tokens_details");
  auto bare = openai().parse_reply(body.dump());
  REQUIRE(bare.reply);
  CHECK_FALSE(bare.reply->usage.cached_input_tokens);
}
