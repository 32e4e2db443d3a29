#include "batch/output_line.hpp"

#include <cstdio>

#include "batch/id_set.hpp"

namespace detour::batch {

using Json = nlohmann::ordered_json;

namespace {

Json optional_json(const auto& value) {
  if (value) return *value;
  return nullptr;
}

std::string hex16(std::uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

// OpenAI's custom_id is a string; a line-number id is written as its text.
Json custom_id(const Json& id) {
  if (id.is_string()) return id;
  return id_key(id);
}

void add_metadata(Json& out, const LineContext& line) {
  if (line.metadata) out["metadata"] = *line.metadata;
}

// detour's own format (README, "`detour batch`"). The keys are those of `ask --json`
// (src/cli/ask_output.cpp) with the id first and `attempts` as a count: a batch line stays
// one short record however many targets were tried.
Json detour_failure(const LineContext& line, std::string_view error_class,
                    std::optional<int> status, std::string_view message, int attempts) {
  Json out;
  out["id"] = line.id;
  out["ok"] = false;
  out["error"] = {{"class", error_class}, {"status", optional_json(status)}, {"message", message}};
  out["attempts"] = attempts;
  add_metadata(out, line);
  return out;
}

Json detour_success(const LineContext& line, const engine::CallResult& result) {
  const auto& reply = result.reply;
  Json out;
  out["id"] = line.id;
  out["ok"] = true;
  out["content"] = reply.content;
  out["provider"] = result.target ? Json(result.target->target.provider) : Json(nullptr);
  out["model"] = result.target ? Json(result.target->target.model) : Json(nullptr);
  out["route"] = optional_json(line.route);
  out["degraded"] = result.degraded;
  out["finish_reason"] = reply.finish_reason.empty() ? Json(nullptr) : Json(reply.finish_reason);
  out["usage"] = {{"input_tokens", optional_json(reply.usage.input_tokens)},
                  {"output_tokens", optional_json(reply.usage.output_tokens)},
                  {"cached_input_tokens", optional_json(reply.usage.cached_input_tokens)}};
  out["cost_usd"] = optional_json(result.cost_usd);
  out["latency_ms"] = result.latency.count();
  out["attempts"] = attempts_sent(result);
  add_metadata(out, line);
  return out;
}

// OpenAI Batch API output lines (BatchRequestOutput: id, custom_id, response {status_code,
// request_id, body}, error {code, message}; tests/unit/test_batch_output_openai.cpp cites
// where this was checked). `id` is derived from the custom id so that a rerun writes the same
// line. detour does not keep the provider's request id, so `request_id` is null.
Json openai_line(const LineContext& line, Json response, Json error) {
  const std::string key = id_key(line.id);
  Json out;
  out["id"] = "batch_req_" + hex16(hash_id(key));
  out["custom_id"] = custom_id(line.id);
  out["response"] = std::move(response);
  out["error"] = std::move(error);
  add_metadata(out, line);
  return out;
}

// Unlike OpenAI, which fills `error` only for failures without an HTTP reply, detour fills it
// on every failure: the class is what users act on, and a line with a non-null error can never
// be mistaken for an answer (by a reader, or by --resume).
Json openai_failure(const LineContext& line, std::string_view error_class,
                    std::optional<int> status, std::string_view message) {
  Json response = nullptr;
  // The provider's refusal as OpenAI would report it; a 2xx that detour judged a failure
  // (empty, refused, cut short) is not presented as an HTTP reply.
  if (status && (*status < 200 || *status > 299)) {
    response = {{"status_code", *status},
                {"request_id", nullptr},
                {"body",
                 {{"error",
                   {{"message", message},
                    {"type", error_class},
                    {"param", nullptr},
                    {"code", error_class}}}}}};
  }
  return openai_line(line, std::move(response), {{"code", error_class}, {"message", message}});
}

// The chat.completion object OpenAI's /v1/chat/completions returns (CreateChatCompletionResponse
// in the OpenAPI description): one choice with the assistant's message.
Json chat_completion(const LineContext& line, const engine::CallResult& result,
                     std::int64_t created_unix_s) {
  const auto& reply = result.reply;
  std::string model = reply.served_model;
  if (model.empty() && result.target) model = result.target->target.model;
  Json usage = nullptr;
  if (reply.usage.input_tokens || reply.usage.output_tokens) {
    const std::int64_t input = reply.usage.input_tokens.value_or(0);
    const std::int64_t output = reply.usage.output_tokens.value_or(0);
    usage = {
        {"prompt_tokens", input}, {"completion_tokens", output}, {"total_tokens", input + output}};
    if (reply.usage.cached_input_tokens) {
      usage["prompt_tokens_details"] = {{"cached_tokens", *reply.usage.cached_input_tokens}};
    }
  }
  // detour's finish words for an answer are OpenAI's own (stop, length, tool_calls;
  // engine/finish_reason.cpp); a reply that gave none ended normally.
  const std::string finish = reply.finish_reason.empty() ? "stop" : reply.finish_reason;
  Json message = {{"role", "assistant"}, {"content", reply.content}, {"refusal", nullptr}};
  Json choice = {{"index", 0},
                 {"message", std::move(message)},
                 {"logprobs", nullptr},
                 {"finish_reason", finish}};
  return {{"id", "chatcmpl-" + hex16(hash_id(id_key(line.id)))},
          {"object", "chat.completion"},
          {"created", created_unix_s},
          {"model", model},
          {"choices", Json::array({std::move(choice)})},
          {"usage", std::move(usage)}};
}

}  // namespace

std::optional<OutputFormat> parse_output_format(std::string_view name) {
  if (name == "detour") return OutputFormat::detour;
  if (name == "openai") return OutputFormat::openai;
  return std::nullopt;
}

std::string id_key(const nlohmann::ordered_json& id) {
  if (id.is_string()) return id.get<std::string>();
  return id.dump();
}

std::string id_key(const nlohmann::json& id) {
  if (id.is_string()) return id.get<std::string>();
  return id.dump();
}

int attempts_sent(const engine::CallResult& result) {
  int sent = 0;
  for (const auto& attempt : result.attempts) {
    if (attempt.error == engine::ErrorClass::skipped_open ||
        attempt.error == engine::ErrorClass::skipped_budget) {
      continue;
    }
    ++sent;
  }
  return sent;
}

Json result_line(OutputFormat format, const LineContext& line, const engine::CallResult& result,
                 std::int64_t created_unix_s) {
  if (format == OutputFormat::detour) {
    if (result.ok) return detour_success(line, result);
    return detour_failure(line, engine::to_string(result.error), result.status, result.message,
                          attempts_sent(result));
  }
  if (!result.ok) {
    return openai_failure(line, engine::to_string(result.error), result.status, result.message);
  }
  Json response = {{"status_code", 200},
                   {"request_id", nullptr},
                   {"body", chat_completion(line, result, created_unix_s)}};
  return openai_line(line, std::move(response), nullptr);
}

Json not_sent_line(OutputFormat format, const LineContext& line, std::string_view error_class,
                   std::string_view message) {
  if (format == OutputFormat::detour) {
    return detour_failure(line, error_class, std::nullopt, message, 0);
  }
  return openai_failure(line, error_class, std::nullopt, message);
}

std::string to_line(const Json& line) {
  std::string text = line.dump(-1, ' ', false, Json::error_handler_t::replace);
  text.push_back('\n');
  return text;
}

}  // namespace detour::batch
