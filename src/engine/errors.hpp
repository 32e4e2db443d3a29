#pragma once
// The error classes of DESIGN.md 3.1: every attempt ends in exactly one of them.
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
  cancelled,
};

std::string_view to_string(ErrorClass c);

// The request itself is wrong: it must change before any target can answer it.
bool is_request_rejection(ErrorClass c);

// Classifies an HTTP error reply from its status, the provider's parsed error body and the
// retry headers. Pure; the table it applies is in errors.cpp.
ErrorClass classify_http_error(int status, const providers::ProviderError& error,
                               const providers::RateLimitInfo& headers);

// Classifies an exchange that produced no HTTP reply at all.
ErrorClass classify_transport(net::TransportStatus status);

}  // namespace detour::engine
