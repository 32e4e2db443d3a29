#pragma once
// Response validation (docs/architecture.md, "Checking a reply"): an HTTP 200 is not yet a success.
// Pure functions.
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "engine/errors.hpp"
#include "providers/types.hpp"

namespace detour::engine {

// A JSON Schema compiled once and applied to many answers. Backed by valijson; supports the
// draft-07 keywords valijson implements (see validate.cpp for the list we test).
class SchemaValidator {
 public:
  // Throws detour::UsageError naming `source` (the --schema file) when the schema itself is
  // not a valid JSON Schema.
  SchemaValidator(const nlohmann::json& schema, std::string source);
  ~SchemaValidator();
  SchemaValidator(SchemaValidator&&) noexcept;
  SchemaValidator& operator=(SchemaValidator&&) noexcept;

  // Empty string when the document matches; else the first few violations, for people,
  // e.g. "/age: expected integer, got string".
  std::string check(const nlohmann::json& document) const;

  const nlohmann::json& schema() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ValidationRules {
  bool require_complete = false;            // --require-complete: finish_reason length fails
  const SchemaValidator* schema = nullptr;  // --schema: the answer must be JSON matching it
};

struct ValidationResult {
  ErrorClass error = ErrorClass::none;  // none, empty_response, refusal, schema_mismatch, truncated
  std::string message;                  // why, for people; empty when none
};

// Checks a reply the provider reported as successful, whose finish reason was already judged
// (engine/finish_reason.hpp). In order: refusal (the provider's refusal field, or a short
// answer that is only a refusal phrase), empty content (nothing but
// whitespace), truncated (finish_reason "length" with require_complete), then the schema (the
// content must parse as JSON, a ```json fence around it tolerated, and match).
ValidationResult validate_reply(const providers::ChatReply& reply, const ValidationRules& rules);

// True when the text is a refusal with no answer: a short text ("I can't help with that.")
// starting with a known refusal phrase. A long answer that merely contains such a phrase is
// not a refusal.
bool looks_like_refusal(std::string_view content);

// The JSON in an answer: the content itself, or the inside of one ```json ... ``` fence.
// nullopt when neither parses.
std::optional<nlohmann::json> extract_json(std::string_view content);

}  // namespace detour::engine
