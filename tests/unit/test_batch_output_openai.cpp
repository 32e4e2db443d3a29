// `detour batch --output-format openai`: OpenAI Batch API output lines.
//
// The shape was checked against:
// - the BatchRequestOutput schema of OpenAI's OpenAPI description ("The per-line object of the
//   batch output and error files": `id`, `custom_id`, `response` {`status_code`, `request_id`,
//   `body`} nullable, `error` {`code`, `message`} nullable, "for requests that failed with a
//   non-HTTP error"), as reproduced by generated clients, e.g.
//   https://docs.rs/openai-struct/latest/src/openai_struct/models/batch_request_output.rs.html
//   and .../batch_request_output_error.rs.html (the OpenAPI file this project's providers were
//   checked against has Batch and CreateBatchRequest but not this schema).
// - OpenAI's documented output example, e.g.
// https://aidictionary.dev/4-checking-the-status-of-a-batch
//   and
//   https://git.mii.dev/mii/openai-api-rs/raw/commit/d66dc550e8df4778b0a8c31a3a139a7359700446/examples/data/batch_result.json:
//   {"id": "batch_req_123", "custom_id": "request-2", "response": {"status_code": 200,
//   "request_id": "req_123", "body": {"id": "chatcmpl-123", "object": "chat.completion",
//   "created": 1711652795, "model": "gpt-3.5-turbo-0125", "choices": [{"index": 0, "message":
//   {"role": "assistant", "content": "Hello."}, "logprobs": null, "finish_reason": "stop"}],
//   "usage": {"prompt_tokens": 22, "completion_tokens": 2, "total_tokens": 24}}}, "error": null}
// - the body against CreateChatCompletionResponse in OpenAI's OpenAPI description (each
//   choice requires finish_reason, index, message and logprobs).
//
// Where detour differs on purpose: `request_id` is null (detour does not keep the provider's
// request id), and a failed line always has `error` {code: detour's class, message}, also when
// `response` carries the provider's HTTP error, so the class is never lost.
#include <catch2/catch.hpp>

#include "batch/id_set.hpp"
#include "batch/output_line.hpp"
#include "batch/resume.hpp"
#include "batch_output_util.hpp"

using namespace detour;
using namespace detour::testing::batch_output;
using Json = nlohmann::ordered_json;
using batch::OutputFormat;

namespace {

batch::LineContext line(Json id) {
  batch::LineContext context;
  context.id = std::move(id);
  context.route = "smart";
  return context;
}

constexpr std::int64_t kCreated = 1711652795;

}  // namespace

TEST_CASE("openai: an answer is a 200 response with a chat.completion body", "[batch]") {
  const Json j =
      batch::result_line(OutputFormat::openai, line("request-1"), answered("2 + 2 = 4."), kCreated);
  CHECK(keys_of(j) == std::vector<std::string>{"id", "custom_id", "response", "error"});
  CHECK(j["id"].get<std::string>().rfind("batch_req_", 0) == 0);
  CHECK(j["custom_id"] == "request-1");
  CHECK(j["error"].is_null());
  const auto& response = j["response"];
  CHECK(keys_of(response) == std::vector<std::string>{"status_code", "request_id", "body"});
  CHECK(response["status_code"] == 200);
  CHECK(response["request_id"].is_null());

  const auto& body = response["body"];
  CHECK(body["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
  CHECK(body["object"] == "chat.completion");
  CHECK(body["created"] == kCreated);
  CHECK(body["model"] == "gpt-4o-mini-2024-07-18");  // the model the reply named
  REQUIRE(body["choices"].size() == 1);
  const auto& choice = body["choices"][0];
  CHECK(choice["index"] == 0);
  CHECK(choice["message"]["role"] == "assistant");
  CHECK(choice["message"]["content"] == "2 + 2 = 4.");
  CHECK(choice["logprobs"].is_null());
  CHECK(choice["finish_reason"] == "stop");
  CHECK(body["usage"] ==
        Json{{"prompt_tokens", 12}, {"completion_tokens", 34}, {"total_tokens", 46}});
}

TEST_CASE("openai: the body falls back on what detour knows", "[batch]") {
  auto result = answered();
  result.reply.served_model.clear();
  result.reply.finish_reason.clear();
  result.reply.usage = {};
  const Json j = batch::result_line(OutputFormat::openai, line(5), result, kCreated);
  CHECK(j["custom_id"] == "5");  // custom_id is a string, also for a line-number id
  const auto& body = j["response"]["body"];
  CHECK(body["model"] == "gpt-4o-mini");
  CHECK(body["choices"][0]["finish_reason"] == "stop");
  CHECK(body["usage"].is_null());
  result.reply.finish_reason = "length";
  result.reply.usage = {10, std::nullopt, std::nullopt};
  const Json cut = batch::result_line(OutputFormat::openai, line(5), result, kCreated);
  CHECK(cut["response"]["body"]["choices"][0]["finish_reason"] == "length");
  CHECK(cut["response"]["body"]["usage"]["total_tokens"] == 10);
}

TEST_CASE("openai: the same id gets the same line ids in every run", "[batch]") {
  const Json a = batch::result_line(OutputFormat::openai, line("x"), answered(), 1);
  const Json b = batch::result_line(OutputFormat::openai, line("x"), answered(), 2);
  const Json c = batch::result_line(OutputFormat::openai, line("y"), answered(), 1);
  CHECK(a["id"] == b["id"]);
  CHECK(a["response"]["body"]["id"] == b["response"]["body"]["id"]);
  CHECK(a["id"] != c["id"]);
  CHECK(a["id"] == "batch_req_" + [] {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(batch::hash_id("x")));
    return std::string(hex);
  }());
}

TEST_CASE("openai: failures carry detour's class as the error code", "[batch]") {
  auto empty = overloaded();
  empty.error = engine::ErrorClass::empty_response;
  empty.status = 200;
  empty.message = "openai/gpt-4o: empty answer";
  auto unreachable = overloaded();
  unreachable.error = engine::ErrorClass::connection;
  unreachable.status.reset();
  unreachable.message = "openai/gpt-4o: connection refused";

  struct Row {
    const char* name;
    Json line;
    Json error;
    Json response;  // null, or the provider's HTTP error
  };
  const Row rows[] = {
      {"an HTTP error from the provider",
       batch::result_line(OutputFormat::openai, line("a1"), overloaded(), kCreated),
       {{"code", "overloaded"}, {"message", "openai/gpt-4o: busy"}},
       {{"status_code", 503},
        {"request_id", nullptr},
        {"body",
         {{"error",
           {{"message", "openai/gpt-4o: busy"},
            {"type", "overloaded"},
            {"param", nullptr},
            {"code", "overloaded"}}}}}}},
      // A 200 that detour judged no answer is not shown as an HTTP reply.
      {"a 200 that was no answer",
       batch::result_line(OutputFormat::openai, line("a2"), empty, kCreated),
       {{"code", "empty_response"}, {"message", "openai/gpt-4o: empty answer"}},
       nullptr},
      {"no reply at all",
       batch::result_line(OutputFormat::openai, line("a3"), unreachable, kCreated),
       {{"code", "connection"}, {"message", "openai/gpt-4o: connection refused"}},
       nullptr},
      {"a malformed input line",
       batch::not_sent_line(OutputFormat::openai, line(4), batch::kBadInput, "line 4: no body"),
       {{"code", "bad_input"}, {"message", "line 4: no body"}},
       nullptr},
      {"over the budget",
       batch::not_sent_line(OutputFormat::openai, line("a5"), batch::kBudgetExceeded, "spent"),
       {{"code", "budget_exceeded"}, {"message", "spent"}},
       nullptr},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    CHECK(keys_of(row.line) == std::vector<std::string>{"id", "custom_id", "response", "error"});
    CHECK(row.line["error"] == row.error);
    CHECK(row.line["response"] == row.response);
    // --resume reads every one of them as not answered.
    CHECK(batch::judge_output_line(batch::to_line(row.line)).kind ==
          batch::LineVerdict::Kind::failed);
  }
}
