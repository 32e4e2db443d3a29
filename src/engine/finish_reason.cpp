#include "engine/finish_reason.hpp"

namespace detour::engine {

namespace {

// What a known reason means, in words for the failure message.
std::string_view why(ErrorClass error) {
  switch (error) {
    case ErrorClass::content_filter:
      return "the provider's content filter stopped the answer";
    case ErrorClass::overloaded:
      return "the provider ran out of capacity before the answer ended";
    default:
      return "the answer did not end normally";
  }
}

}  // namespace

const std::vector<FinishReasonRule>& finish_reason_rules() {
  using E = ErrorClass;
  static const std::vector<FinishReasonRule> table = {
      // OpenAI's enum (openapi.yaml, CreateChatCompletionResponse.choices[].finish_reason), then
      // what compatible servers write: TGI (eos_token, stop_sequence), Mistral (model_length),
      // DeepSeek (insufficient_system_resource: "interrupted due to insufficient resource"),
      // OpenRouter (error: generation failed after it started), and gateways that translate an
      // Anthropic mid-stream error into a finish reason (overloaded_error).
      {"openai", "stop", "stop", E::none},
      {"openai", "length", "length", E::none},
      {"openai", "tool_calls", "tool_calls", E::none},
      {"openai", "function_call", "tool_calls", E::none},
      {"openai", "content_filter", "content_filter", E::content_filter},
      {"openai", "eos_token", "stop", E::none},
      {"openai", "stop_sequence", "stop", E::none},
      {"openai", "model_length", "length", E::none},
      {"openai", "error", "error", E::invalid_response},
      {"openai", "overloaded_error", "overloaded_error", E::overloaded},
      {"openai", "insufficient_system_resource", "insufficient_system_resource", E::overloaded},
      // Anthropic's stop_reason. `refusal` is the API's safety classifier stopping the stream,
      // a policy decision like OpenAI's content_filter. pause_turn only happens with server
      // tools, which detour never sends: the turn is unfinished.
      {"anthropic", "end_turn", "stop", E::none},
      {"anthropic", "stop_sequence", "stop", E::none},
      {"anthropic", "tool_use", "tool_calls", E::none},
      {"anthropic", "max_tokens", "length", E::none},
      {"anthropic", "model_context_window_exceeded", "length", E::none},
      {"anthropic", "refusal", "content_filter", E::content_filter},
      {"anthropic", "pause_turn", "pause_turn", E::invalid_response},
      // Gemini's Candidate.FinishReason. OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL,
      // FINISH_REASON_UNSPECIFIED and anything newer are not a normal end: the unknown rule.
      {"gemini", "STOP", "stop", E::none},
      {"gemini", "MAX_TOKENS", "length", E::none},
      {"gemini", "SAFETY", "content_filter", E::content_filter},
      {"gemini", "RECITATION", "content_filter", E::content_filter},
      {"gemini", "BLOCKLIST", "content_filter", E::content_filter},
      {"gemini", "PROHIBITED_CONTENT", "content_filter", E::content_filter},
      {"gemini", "SPII", "content_filter", E::content_filter},
      {"gemini", "IMAGE_SAFETY", "content_filter", E::content_filter},
  };
  return table;
}

FinishVerdict judge_finish(std::string_view protocol, const providers::ChatReply& reply) {
  FinishVerdict verdict;
  if (!reply.block_reason.empty()) {
    verdict.neutral = "content_filter";
    verdict.error = ErrorClass::content_filter;
    verdict.message = "the provider blocked the prompt (blockReason " + reply.block_reason + ")";
    return verdict;
  }
  const std::string& reason = reply.finish_reason;
  if (reason.empty()) return verdict;
  for (const auto& rule : finish_reason_rules()) {
    if (rule.protocol != protocol || rule.reason != reason) continue;
    verdict.neutral = rule.neutral;
    verdict.error = rule.error;
    if (rule.error != ErrorClass::none)
      verdict.message = std::string(why(rule.error)) + " (finish reason " + reason + ")";
    return verdict;
  }
  verdict.neutral = reason;
  verdict.error = ErrorClass::invalid_response;
  verdict.message = "finish reason " + reason + " is not one detour knows as a normal end";
  return verdict;
}

}  // namespace detour::engine
