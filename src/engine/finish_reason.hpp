#pragma once
// What a reply's finish reason says about the answer (README, "Finish reasons"):
// the table of every finish reason detour knows, per wire protocol, as data. A 200 is an
// answer only when its finish reason says the model ended normally; anything else, including
// a reason detour has never seen, fails the attempt so a pipe never receives half an answer.
#include <string>
#include <string_view>
#include <vector>

#include "engine/errors.hpp"
#include "providers/types.hpp"

namespace detour::engine {

struct FinishReasonRule {
  std::string_view protocol;  // "openai" (and every compatible server), "anthropic", "gemini"
  std::string_view reason;    // exactly as the provider writes it
  std::string_view neutral;   // what --json reports: stop, length, tool_calls, content_filter…
  ErrorClass error;           // none: an answer ("length" still fails --require-complete)
};

// The table itself, one row per known (protocol, reason).
const std::vector<FinishReasonRule>& finish_reason_rules();

struct FinishVerdict {
  std::string neutral;                  // the reason in detour's words (as written when unknown)
  ErrorClass error = ErrorClass::none;  // none: the model ended its answer
  std::string message;                  // why it failed, for people; empty when none
};

// Judges a reply's finish reason for its protocol. A Gemini prompt that was blocked
// (block_reason) is content_filter; no finish reason at all is an answer (some compatible
// servers never send one; the protocol's end marker already said the body is whole).
FinishVerdict judge_finish(std::string_view protocol, const providers::ChatReply& reply);

}  // namespace detour::engine
