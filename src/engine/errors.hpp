#pragma once
// The error classes (docs/architecture.md, "Error classes and finish reasons"): every attempt ends
// in exactly one of them.
#include <optional>
#include <string>
#include <string_view>

#include "net/http.hpp"
#include "providers/types.hpp"

namespace detour::engine {

enum class ErrorClass {
  none,  // the attempt succeeded
  rate_limited,
  quota_exhausted,
  overloaded,
  server_error,
  timeout,
  connection,
  auth,
  not_found,
  bad_request,
  context_length,
  content_filter,
  invalid_response,
  empty_response,
  refusal,
  schema_mismatch,
  truncated,
  skipped_open,    // not sent: the target's circuit is open
  skipped_budget,  // not sent: the target has no capacity now (issue 4's limiter)
  cancelled,
};

std::string_view to_string(ErrorClass c);

// The request itself is wrong: it must change before any target can answer it.
bool is_request_rejection(ErrorClass c);

// Classifies an error the provider reported from its status, the provider's parsed error body
// and the retry headers. Pure; the tables it applies are in errors.cpp. The same error gets
// the same class wherever it arrives: as an error reply, or inside a 200 (an SSE error event,
// an OpenAI `data: {"error": …}` chunk, a Gemini stream error object, a 200 body that is an
// error), where `status` is 200 and the status the error stands for is used instead.
ErrorClass classify_http_error(int status, const providers::ProviderError& error,
                               const providers::RateLimitInfo& headers);

// A 429 saying that this one request is larger than the target's whole tokens-per-minute
// limit (OpenAI: "Request too large for gpt-4o ... on tokens per min (TPM): Limit 30000,
// Requested 50000"): waiting cannot help, only another target can.
bool request_exceeds_rate_limit(int status, const providers::ProviderError& error);

// Classifies an exchange that produced no HTTP reply at all.
ErrorClass classify_transport(net::TransportStatus status);

}  // namespace detour::engine
