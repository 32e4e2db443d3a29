#pragma once
// Error replies in each provider's real shape (status, body, headers), as collected in
// /work/shared/reference/providers.md. Pure functions: server.cpp decides when to send them.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocols.hpp"
#include "scenario.hpp"

namespace detour::mock {

enum class ErrorKind {
  status,  // any code, with the body shape that code has at that provider
  insufficient_quota,
  credit_balance,  // prepaid credit used up
  rate_limit,
  request_too_large,
  overloaded,
  server_error,
  bad_gateway,
  unavailable,
  context_length,
  bad_request,
  not_found,
  auth,         // a wrong key
  missing_key,  // no key at all
  content_filter,
  no_route,  // no such endpoint; ErrorContext::message is "METHOD /path"
};

// The error kind a fault answers with; nullopt for faults that are not HTTP errors.
std::optional<ErrorKind> error_kind_for(Fault fault);

struct ErrorContext {
  std::string model;
  std::string request_id;
  int status = 0;                       // ErrorKind::status
  std::string message;                  // bad_request: the provider-worded reason; no_route
  std::optional<double> retry_after_s;  // retry-after (+ retry-after-ms for OpenAI)
  std::string retry_delay;              // Gemini RetryInfo; default from retry_after_s
  std::string limit_type = "requests";  // rate_limit: "requests" or "tokens"
  std::int64_t limit = 0;               // rate_limit / request_too_large figures
  std::int64_t requested = 0;
  std::int64_t input_tokens = 0;
  std::int64_t context_window = 0;
  bool from_limiter = false;  // the mock's own limits (not an injected fault) said no
};

struct ErrorReply {
  int status = 500;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

ErrorReply make_error(Protocol protocol, ErrorKind kind, const ErrorContext& ctx);

// The error a provider sends after a 200 stream has started, with the body `kind` has at that
// provider: OpenAI `data: {"error":...}`, Anthropic `event: error`, Gemini raw multi-line
// {"error":...}. Only the kinds a stream can fail with: overloaded, server_error, rate_limit.
std::string stream_error_event(Protocol protocol, ErrorKind kind, const ErrorContext& ctx);

}  // namespace detour::mock
