#include "errors.hpp"

#include <cmath>
#include <cstdio>

namespace detour::mock {

namespace {

using nlohmann::json;

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  std::string out = buf;
  while (out.back() == '0')
    out.pop_back();
  if (out.back() == '.') out.pop_back();
  return out + "s";
}

std::string html_502(Protocol protocol) {
  // 502s come from the proxy in front of the API, not the API: HTML, not JSON.
  if (protocol == Protocol::gemini)
    return "<!DOCTYPE html>\n<html lang=en>\n<title>Error 502 (Server Error)!!1</title>\n"
           "<p><b>502.</b> <ins>That's an error.</ins>\n<p>The server encountered a temporary "
           "error and could not complete your request.<p>Please try again in 30 seconds.  "
           "<ins>That's all we know.</ins>\n";
  return "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
         "Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";
}

ErrorReply openai(ErrorKind kind, const ErrorContext& c) {
  auto body = [](const std::string& message, const std::string& type, json param, json code) {
    return json{{"error", {{"message", message}, {"type", type}, {"param", param}, {"code", code}}}}
        .dump();
  };
  const std::string& m = c.model;
  std::string wait = seconds_text(c.retry_after_s.value_or(1));
  switch (kind) {
    case ErrorKind::insufficient_quota:
      return {429,
              "application/json",
              body("You exceeded your current quota, please check your plan and billing details. "
                   "For more information on this error, read the docs: "
                   "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                   "insufficient_quota", nullptr, "insufficient_quota"),
              {}};
    case ErrorKind::credit_balance:
      // OpenAI itself says insufficient_quota; this is DeepSeek's 402, word for word, the
      // shape OpenAI-compatible prepaid providers use (api-docs.deepseek.com error codes).
      return {402,
              "application/json",
              body("Insufficient Balance", "unknown_error", nullptr, "invalid_request_error"),
              {}};
    case ErrorKind::rate_limit: {
      bool tokens = c.limit_type == "tokens";
      std::int64_t limit = c.limit > 0 ? c.limit : (tokens ? 30000 : 500);
      std::string msg = "Rate limit reached for " + m + " in organization org-mock on " +
                        (tokens ? "tokens per min (TPM)" : "requests per min (RPM)") + ": Limit " +
                        std::to_string(limit) + ", Used " + std::to_string(limit) + ", Requested " +
                        std::to_string(tokens ? c.requested : 1) + ". Please try again in " + wait +
                        ". Visit https://platform.openai.com/account/rate-limits to learn more.";
      return {429, "application/json", body(msg, c.limit_type, nullptr, "rate_limit_exceeded"), {}};
    }
    case ErrorKind::request_too_large:
      return {429,
              "application/json",
              body("Request too large for " + m +
                       " in organization org-mock on tokens per min "
                       "(TPM): Limit " +
                       std::to_string(c.limit > 0 ? c.limit : 30000) + ", Requested " +
                       std::to_string(c.requested > 0 ? c.requested : 50000) +
                       ". The input or output tokens must be reduced in order to run successfully. "
                       "Visit https://platform.openai.com/account/rate-limits to learn more.",
                   "tokens", nullptr, "rate_limit_exceeded"),
              {}};
    case ErrorKind::overloaded:
      return {503,
              "application/json",
              body("The server is overloaded or not ready yet.", "server_error", nullptr, nullptr),
              {}};
    case ErrorKind::server_error:
      return {500,
              "application/json",
              body("The server had an error while processing your request. Sorry about that!",
                   "server_error", nullptr, nullptr),
              {}};
    case ErrorKind::unavailable:
      return {503,
              "application/json",
              body("Service Unavailable.", "cf_service_unavailable", nullptr, 503),
              {}};
    case ErrorKind::context_length:
      return {400,
              "application/json",
              body("This model's maximum context length is " +
                       std::to_string(c.context_window > 0 ? c.context_window : 128000) +
                       " tokens. However, your messages resulted in " +
                       std::to_string(std::max(
                           c.input_tokens, c.context_window > 0 ? c.context_window + 1 : 128001)) +
                       " tokens. Please reduce the length of the messages.",
                   "invalid_request_error", "messages", "context_length_exceeded"),
              {}};
    case ErrorKind::bad_request:
      return {400,
              "application/json",
              body(c.message.empty() ? "Invalid value for 'messages': injected by detour-mock."
                                     : c.message,
                   "invalid_request_error", nullptr, nullptr),
              {}};
    case ErrorKind::not_found:
      return {404,
              "application/json",
              body("The model `" + m + "` does not exist or you do not have access to it.",
                   "invalid_request_error", nullptr, "model_not_found"),
              {}};
    case ErrorKind::auth:
      return {401,
              "application/json",
              body("Incorrect API key provided: sk-mock***. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.",
                   "invalid_request_error", nullptr, "invalid_api_key"),
              {}};
    case ErrorKind::missing_key:
      return {401,
              "application/json",
              body("You didn't provide an API key. You need to provide your API key in an "
                   "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                   "invalid_request_error", nullptr, nullptr),
              {}};
    case ErrorKind::content_filter:
      return {400,
              "application/json",
              body("Your request was rejected as a result of our safety system.",
                   "invalid_request_error", nullptr, "content_policy_violation"),
              {}};
    case ErrorKind::no_route:
      return {404,
              "application/json",
              body("Invalid URL (" + c.message + ")", "invalid_request_error", nullptr, nullptr),
              {}};
    case ErrorKind::status: {
      int s = c.status;
      std::string type = s >= 500   ? "server_error"
                         : s == 429 ? "requests"
                                    : "invalid_request_error";
      json code = s == 401   ? json("invalid_api_key")
                  : s == 404 ? json("model_not_found")
                  : s == 429 ? json("rate_limit_exceeded")
                             : json(nullptr);
      return {s,
              "application/json",
              body("detour-mock injected HTTP " + std::to_string(s) + ".", type, nullptr, code),
              {}};
    }
    case ErrorKind::bad_gateway:
      break;
  }
  return {502, "text/html", html_502(Protocol::openai), {}};
}

std::string anthropic_type(int status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 402:
      return "billing_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 500:
      return "api_error";
    case 504:
      return "timeout_error";
    case 529:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

ErrorReply anthropic(ErrorKind kind, const ErrorContext& c) {
  auto reply = [&](int status, const std::string& message) {
    return ErrorReply{status,
                      "application/json",
                      json{{"type", "error"},
                           {"error", {{"type", anthropic_type(status)}, {"message", message}}},
                           {"request_id", c.request_id}}
                          .dump(),
                      {}};
  };
  switch (kind) {
    case ErrorKind::insufficient_quota:
      return reply(402,
                   "Your credit balance is too low to access the Anthropic API. Please go to "
                   "Plans & Billing to upgrade or purchase credits.");
    case ErrorKind::credit_balance:
      // Not the documented 402 billing_error: the real API says this with a 400.
      return reply(400,
                   "Your credit balance is too low to access the Anthropic API. Please go to "
                   "Plans & Billing to upgrade or purchase credits.");
    case ErrorKind::rate_limit:
      return reply(429,
                   "This request would exceed the rate limit for your organization (mock) of " +
                       std::to_string(c.limit > 0 ? c.limit : 50) + " " +
                       (c.limit_type == "tokens" ? "input tokens" : "requests") +
                       " per minute. For details, refer to: "
                       "https://docs.claude.com/en/api/rate-limits.");
    case ErrorKind::request_too_large:
      if (c.from_limiter)
        return reply(429,
                     "This request would exceed the rate limit for your organization (mock) of " +
                         std::to_string(c.limit) + " input tokens per minute.");
      return reply(413, "Request exceeds the maximum allowed number of bytes.");
    case ErrorKind::overloaded:
      return reply(529, "Overloaded");
    case ErrorKind::server_error:
      return reply(500, "Internal server error");
    case ErrorKind::unavailable:
      return reply(503, "Service Unavailable");
    case ErrorKind::context_length:
      return reply(
          400, "prompt is too long: " +
                   std::to_string(std::max(c.input_tokens,
                                           c.context_window > 0 ? c.context_window + 1 : 200001)) +
                   " tokens > " + std::to_string(c.context_window > 0 ? c.context_window : 200000) +
                   " maximum");
    case ErrorKind::bad_request:
      return reply(400, c.message.empty() ? "messages: injected by detour-mock" : c.message);
    case ErrorKind::not_found:
      return reply(404, "model: " + c.model);
    case ErrorKind::auth:
      return reply(401, "invalid x-api-key");
    case ErrorKind::missing_key:
      return reply(401, "x-api-key header is required");
    case ErrorKind::content_filter:
      return reply(400, "Output blocked by content filtering policy");
    case ErrorKind::no_route:
      return reply(404, "Not Found");
    case ErrorKind::status:
      return reply(c.status, "detour-mock injected HTTP " + std::to_string(c.status));
    case ErrorKind::bad_gateway:
      break;
  }
  return {502, "text/html", html_502(Protocol::anthropic), {}};
}

std::string gemini_status(int code) {
  switch (code) {
    case 400:
      return "INVALID_ARGUMENT";
    case 401:
      return "UNAUTHENTICATED";
    case 403:
      return "PERMISSION_DENIED";
    case 404:
      return "NOT_FOUND";
    case 409:
      return "ABORTED";
    case 429:
      return "RESOURCE_EXHAUSTED";
    case 500:
      return "INTERNAL";
    case 501:
      return "UNIMPLEMENTED";
    case 503:
      return "UNAVAILABLE";
    case 504:
      return "DEADLINE_EXCEEDED";
    default:
      return code >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
  }
}

ErrorReply gemini(ErrorKind kind, const ErrorContext& c) {
  auto reply = [](int code, const std::string& message, json details = nullptr) {
    json err = {{"code", code}, {"message", message}, {"status", gemini_status(code)}};
    if (!details.is_null()) err["details"] = std::move(details);
    return ErrorReply{code, "application/json", json{{"error", err}}.dump(2), {}};
  };
  std::string delay =
      !c.retry_delay.empty() ? c.retry_delay : seconds_text(c.retry_after_s.value_or(1));
  json retry_info = {{"@type", "type.googleapis.com/google.rpc.RetryInfo"}, {"retryDelay", delay}};
  auto quota = [&](const std::string& id, const std::string& metric, std::int64_t value) {
    return json{{"@type", "type.googleapis.com/google.rpc.QuotaFailure"},
                {"violations",
                 json::array({{{"quotaMetric", "generativelanguage.googleapis.com/" + metric},
                               {"quotaId", id},
                               {"quotaDimensions", {{"location", "global"}, {"model", c.model}}},
                               {"quotaValue", std::to_string(value)}}})}};
  };
  const std::string exhausted =
      "You exceeded your current quota, please check your plan and billing details. For more "
      "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.";
  switch (kind) {
    case ErrorKind::insufficient_quota: {
      json details = json::array({quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                        "generate_content_free_tier_requests", 200)});
      if (!c.retry_delay.empty()) details.push_back(retry_info);
      return reply(429, exhausted, details);
    }
    case ErrorKind::credit_balance:
      // Prepaid billing: a 429 like a rate limit, but no QuotaFailure or RetryInfo details.
      return reply(429,
                   "Your prepayment credits are depleted. Please go to AI Studio at "
                   "https://ai.studio/projects to manage your project and billing.");
    case ErrorKind::rate_limit:
    case ErrorKind::request_too_large: {
      if (kind == ErrorKind::request_too_large && !c.from_limiter)
        return reply(400, "Request payload size exceeds the limit: 20971520 bytes.");
      bool tokens = c.limit_type == "tokens" || kind == ErrorKind::request_too_large;
      json details = json::array(
          {tokens ? quota("GenerateContentInputTokensPerModelPerMinute",
                          "generate_content_input_token_count", c.limit > 0 ? c.limit : 1000000)
                  : quota("GenerateRequestsPerMinutePerProjectPerModel",
                          "generate_content_requests", c.limit > 0 ? c.limit : 15)});
      if (kind == ErrorKind::rate_limit) details.push_back(retry_info);
      return reply(
          429, exhausted + (kind == ErrorKind::rate_limit ? " Please retry in " + delay + "." : ""),
          details);
    }
    case ErrorKind::overloaded:
      return reply(503, "The model is overloaded. Please try again later.");
    case ErrorKind::server_error:
      return reply(500,
                   "An internal error has occurred. Please retry or report in "
                   "https://developers.generativeai.google/guide/troubleshooting");
    case ErrorKind::unavailable:
      return reply(503, "The service is currently unavailable.");
    case ErrorKind::context_length:
      return reply(
          400, "The input token count (" +
                   std::to_string(std::max(c.input_tokens,
                                           c.context_window > 0 ? c.context_window + 1 : 1048577)) +
                   ") exceeds the maximum number of tokens allowed (" +
                   std::to_string(c.context_window > 0 ? c.context_window : 1048576) + ").");
    case ErrorKind::bad_request:
      return reply(400, c.message.empty() ? "Request contains an invalid argument." : c.message);
    case ErrorKind::not_found:
      return reply(404, "models/" + c.model +
                            " is not found for API version v1beta, or is not "
                            "supported for generateContent. Call ListModels to see the list of "
                            "available models and their supported methods.");
    case ErrorKind::auth:
    case ErrorKind::missing_key: {
      // An invalid Gemini key is a 400, told apart from other 400s only by ErrorInfo.reason.
      std::string msg =
          kind == ErrorKind::auth
              ? "API key not valid. Please pass a valid API key."
              : "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.";
      json details = json::array(
          {{{"@type", "type.googleapis.com/google.rpc.ErrorInfo"},
            {"reason", kind == ErrorKind::auth ? "API_KEY_INVALID" : "CREDENTIALS_MISSING"},
            {"domain", "googleapis.com"},
            {"metadata", {{"service", "generativelanguage.googleapis.com"}}}}});
      return reply(kind == ErrorKind::auth ? 400 : 403, msg, details);
    }
    case ErrorKind::content_filter:
      // A blocked prompt is not an HTTP error at Gemini: 200, promptFeedback, no candidates.
      return {
          200,
          "application/json",
          json{{"promptFeedback",
                {{"blockReason", "SAFETY"},
                 {"safetyRatings", json::array({{{"category", "HARM_CATEGORY_DANGEROUS_CONTENT"},
                                                 {"probability", "HIGH"}}})}}},
               {"usageMetadata",
                {{"promptTokenCount", c.input_tokens}, {"totalTokenCount", c.input_tokens}}},
               {"modelVersion", c.model}}
              .dump(),
          {}};
    case ErrorKind::no_route:
      return reply(404, "Method not found.");
    case ErrorKind::status:
      return reply(c.status, "detour-mock injected HTTP " + std::to_string(c.status) + ".");
    case ErrorKind::bad_gateway:
      break;
  }
  return {502, "text/html; charset=UTF-8", html_502(Protocol::gemini), {}};
}

}  // namespace

std::optional<ErrorKind> error_kind_for(Fault fault) {
  switch (fault) {
    case Fault::status:
      return ErrorKind::status;
    case Fault::insufficient_quota:
      return ErrorKind::insufficient_quota;
    case Fault::credit_balance:
      return ErrorKind::credit_balance;
    case Fault::rate_limit:
      return ErrorKind::rate_limit;
    case Fault::request_too_large:
      return ErrorKind::request_too_large;
    case Fault::overloaded:
      return ErrorKind::overloaded;
    case Fault::server_error:
      return ErrorKind::server_error;
    case Fault::bad_gateway:
      return ErrorKind::bad_gateway;
    case Fault::unavailable:
      return ErrorKind::unavailable;
    case Fault::context_length:
      return ErrorKind::context_length;
    case Fault::bad_request:
      return ErrorKind::bad_request;
    case Fault::not_found:
      return ErrorKind::not_found;
    case Fault::auth:
      return ErrorKind::auth;
    case Fault::content_filter:
      return ErrorKind::content_filter;
    default:
      return std::nullopt;
  }
}

ErrorReply make_error(Protocol protocol, ErrorKind kind, const ErrorContext& ctx) {
  ErrorReply r = protocol == Protocol::openai      ? openai(kind, ctx)
                 : protocol == Protocol::anthropic ? anthropic(kind, ctx)
                                                   : gemini(kind, ctx);
  // A rate limit always says when to come back; other errors only when the scenario says so.
  std::optional<double> after = ctx.retry_after_s;
  if (!after && kind == ErrorKind::rate_limit) after = 1.0;
  if (after && r.status >= 400) {
    r.headers.emplace_back("retry-after",
                           std::to_string(static_cast<long long>(std::ceil(*after))));
    if (protocol == Protocol::openai)
      r.headers.emplace_back("retry-after-ms",
                             std::to_string(static_cast<long long>(std::ceil(*after * 1000))));
  }
  return r;
}

std::string stream_error_event(Protocol protocol, ErrorKind kind, const ErrorContext& ctx) {
  // The same body the error has as an HTTP reply, framed the way each provider streams it.
  json body = json::parse(make_error(protocol, kind, ctx).body);
  switch (protocol) {
    case Protocol::openai:
      return sse_data(protocol, body.dump());
    case Protocol::anthropic:
      body.erase("request_id");  // as in the documented example of a streamed error
      return "event: error\ndata: " + body.dump() + "\n\n";
    case Protocol::gemini:
      // Raw multi-line JSON with no "data:" prefix, as the Gemini API sends it.
      return body.dump(2) + "\n";
  }
  return {};
}

}  // namespace detour::mock
