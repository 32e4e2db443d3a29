#include "engine/errors.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace detour::engine {

std::string_view to_string(ErrorClass c) {
  switch (c) {
    case ErrorClass::none:
      return "none";
    case ErrorClass::rate_limited:
      return "rate_limited";
    case ErrorClass::quota_exhausted:
      return "quota_exhausted";
    case ErrorClass::overloaded:
      return "overloaded";
    case ErrorClass::server_error:
      return "server_error";
    case ErrorClass::timeout:
      return "timeout";
    case ErrorClass::connection:
      return "connection";
    case ErrorClass::auth:
      return "auth";
    case ErrorClass::not_found:
      return "not_found";
    case ErrorClass::bad_request:
      return "bad_request";
    case ErrorClass::context_length:
      return "context_length";
    case ErrorClass::content_filter:
      return "content_filter";
    case ErrorClass::invalid_response:
      return "invalid_response";
    case ErrorClass::empty_response:
      return "empty_response";
    case ErrorClass::refusal:
      return "refusal";
    case ErrorClass::schema_mismatch:
      return "schema_mismatch";
    case ErrorClass::truncated:
      return "truncated";
    case ErrorClass::skipped_open:
      return "skipped_open";
    case ErrorClass::skipped_budget:
      return "skipped_budget";
    case ErrorClass::cancelled:
      return "cancelled";
  }
  return "unknown";
}

bool is_request_rejection(ErrorClass c) {
  return c == ErrorClass::bad_request || c == ErrorClass::context_length ||
         c == ErrorClass::content_filter;
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Provider error types and codes that decide the class whatever the status says. Matched
// against the lower-cased `type` and `code` of the parsed error body.
struct TypeRule {
  std::string_view type_or_code;
  ErrorClass error_class;
};
constexpr std::array kTypeRules = {
    TypeRule{"insufficient_quota", ErrorClass::quota_exhausted},
    TypeRule{"billing_error", ErrorClass::quota_exhausted},
    TypeRule{"overloaded_error", ErrorClass::overloaded},
    TypeRule{"rate_limit_error", ErrorClass::rate_limited},
    TypeRule{"rate_limit_exceeded", ErrorClass::rate_limited},
    TypeRule{"context_length_exceeded", ErrorClass::context_length},
    TypeRule{"content_policy_violation", ErrorClass::content_filter},
    TypeRule{"content_filter", ErrorClass::content_filter},
    TypeRule{"invalid_api_key", ErrorClass::auth},
    TypeRule{"authentication_error", ErrorClass::auth},
    TypeRule{"permission_error", ErrorClass::auth},
    TypeRule{"api_key_invalid", ErrorClass::auth},
    TypeRule{"permission_denied", ErrorClass::auth},
    TypeRule{"unauthenticated", ErrorClass::auth},
    TypeRule{"model_not_found", ErrorClass::not_found},
    TypeRule{"not_found_error", ErrorClass::not_found},
    TypeRule{"timeout_error", ErrorClass::timeout},
    TypeRule{"unavailable", ErrorClass::overloaded},
};

// Errors recognised by what their message says, whatever their type and status: providers
// report running out of money in words under generic types (Anthropic: a 400
// invalid_request_error "Your credit balance is too low to access the Anthropic API";
// DeepSeek: 402 "Insufficient Balance"; OpenRouter: 402 "Insufficient credits", and a 429
// "Rate limit exceeded: free-models-per-day", a daily cap), and Anthropic reports its output
// filter the same way ("Output blocked by content filtering policy"). Matched lower-cased.
struct MessageRule {
  std::string_view words;
  ErrorClass error_class;
};
constexpr std::array kMessageRules = {
    MessageRule{"credit balance is too low", ErrorClass::quota_exhausted},
    MessageRule{"insufficient balance", ErrorClass::quota_exhausted},
    MessageRule{"insufficient credits", ErrorClass::quota_exhausted},
    MessageRule{"free-models-per-day", ErrorClass::quota_exhausted},
    // Anthropic's 400 invalid_request_error when its filter stops the output.
    MessageRule{"blocked by content filtering policy", ErrorClass::content_filter},
};

// The status an error object stands for when it did not come as an error reply (inside a
// 200 stream or body): the status it names, else the one its type has as a reply at that
// provider, else a server error (the provider failed while answering).
struct TypeStatus {
  std::string_view type;
  int status;
};
constexpr std::array kTypeStatuses = {
    TypeStatus{"invalid_request_error", 400},
    TypeStatus{"invalid_argument", 400},
    TypeStatus{"failed_precondition", 400},
    TypeStatus{"authentication_error", 401},
    TypeStatus{"unauthenticated", 401},
    TypeStatus{"permission_error", 403},
    TypeStatus{"permission_denied", 403},
    TypeStatus{"not_found_error", 404},
    TypeStatus{"not_found", 404},
    TypeStatus{"request_too_large", 413},
    TypeStatus{"rate_limit_error", 429},
    TypeStatus{"resource_exhausted", 429},
    TypeStatus{"api_error", 500},
    TypeStatus{"server_error", 500},
    TypeStatus{"internal", 500},
    TypeStatus{"unavailable", 503},
    TypeStatus{"overloaded_error", 529},
    TypeStatus{"timeout_error", 504},
    TypeStatus{"deadline_exceeded", 504},
};

int status_of_embedded_error(const providers::ProviderError& error, const std::string& type) {
  if (error.named_status) return *error.named_status;
  for (const auto& row : kTypeStatuses) {
    if (type == row.type) return row.status;
  }
  return 500;
}

bool message_says_context_too_long(std::string_view message_lower) {
  return contains(message_lower, "prompt is too long") ||
         contains(message_lower, "context length") || contains(message_lower, "context_length") ||
         contains(message_lower, "maximum context") ||
         (contains(message_lower, "input token count") && contains(message_lower, "exceeds"));
}

ErrorClass classify_by_status(int status) {
  if (status == 429) return ErrorClass::rate_limited;
  if (status == 402) return ErrorClass::quota_exhausted;
  if (status == 401 || status == 403) return ErrorClass::auth;
  if (status == 404) return ErrorClass::not_found;
  if (status == 408 || status == 504) return ErrorClass::timeout;
  if (status == 413) return ErrorClass::context_length;
  if (status == 503 || status == 529) return ErrorClass::overloaded;
  if (status >= 500) return ErrorClass::server_error;
  if (status >= 400) return ErrorClass::bad_request;
  return ErrorClass::invalid_response;
}

}  // namespace

ErrorClass classify_http_error(int status, const providers::ProviderError& error,
                               const providers::RateLimitInfo& headers) {
  const std::string type = lower(error.type);
  const std::string code = lower(error.code);
  const std::string message = lower(error.message);
  if (status < 400) status = status_of_embedded_error(error, type);

  // Gemini reports a per-day quota as RESOURCE_EXHAUSTED: waiting a minute will not help.
  if (type == "resource_exhausted") {
    for (const auto& quota : error.quota_ids) {
      if (contains(quota, "PerDay") || contains(quota, "Daily")) return ErrorClass::quota_exhausted;
    }
    return ErrorClass::rate_limited;
  }
  if (status == 400 && type == "invalid_argument" && message_says_context_too_long(message)) {
    return ErrorClass::context_length;
  }
  for (const auto& rule : kTypeRules) {
    if (code == rule.type_or_code || type == rule.type_or_code) return rule.error_class;
  }
  for (const auto& rule : kMessageRules) {
    if (contains(message, rule.words)) return rule.error_class;
  }
  if (status == 400 && message_says_context_too_long(message)) return ErrorClass::context_length;
  // x-should-retry decides whether to retry, not the class: engine/policy reads it.
  (void)headers;
  return classify_by_status(status);
}

bool request_exceeds_rate_limit(int status, const providers::ProviderError& error) {
  if (status != 429) return false;
  const std::string message = lower(error.message);
  return contains(message, "request too large") &&
         (contains(message, "per min") || contains(message, "tpm"));
}

ErrorClass classify_transport(net::TransportStatus status) {
  switch (status) {
    case net::TransportStatus::ok:
      return ErrorClass::none;
    case net::TransportStatus::connect_timeout:
    case net::TransportStatus::first_byte_timeout:
    case net::TransportStatus::timeout:
      return ErrorClass::timeout;
    case net::TransportStatus::cancelled:
      return ErrorClass::cancelled;
    case net::TransportStatus::connect_failed:
    case net::TransportStatus::dns_failed:
    case net::TransportStatus::tls_failed:
    case net::TransportStatus::connection_reset:
    case net::TransportStatus::other:
      return ErrorClass::connection;
  }
  return ErrorClass::connection;
}

}  // namespace detour::engine
