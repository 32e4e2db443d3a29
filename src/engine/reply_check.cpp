#include "engine/reply_check.hpp"

#include "engine/finish_reason.hpp"

namespace detour::engine {

namespace {

ReplyCheck failed(ErrorClass error, std::string message) {
  ReplyCheck check;
  check.error = error;
  check.message = std::move(message);
  return check;
}

ReplyCheck provider_error(const providers::ProviderError& error, std::string_view where) {
  ReplyCheck check =
      failed(classify_http_error(200, error, {}),
             std::string(where) + (error.message.empty() ? "(no message)" : error.message));
  check.provider_error = error;
  return check;
}

// The finish reason first (a filtered or failed generation is that, whatever text it left),
// then the content checks on what is known to be a whole answer.
ReplyCheck check_answer(const providers::Protocol& protocol, providers::ChatReply reply,
                        const ValidationRules* rules) {
  ReplyCheck check;
  check.usage = reply.usage;
  FinishVerdict finish = judge_finish(protocol.reply_family(), reply);
  if (finish.error != ErrorClass::none) {
    check.error = finish.error;
    check.message = std::move(finish.message);
    return check;
  }
  reply.finish_reason = std::move(finish.neutral);
  if (rules) {
    ValidationResult valid = validate_reply(reply, *rules);
    if (valid.error != ErrorClass::none) {
      check.error = valid.error;
      check.message = std::move(valid.message);
      return check;
    }
  }
  check.reply = std::move(reply);
  return check;
}

}  // namespace

ReplyCheck check_response(const providers::Protocol& protocol, const net::HttpResponse& response,
                          const providers::RateLimitInfo& headers, std::string_view error_body,
                          const providers::StreamState* stream, const ValidationRules* rules) {
  const bool reply_2xx = response.status >= 200 && response.status < 300;
  const bool stream_reset =
      stream && reply_2xx && response.transport == net::TransportStatus::connection_reset;
  if (response.transport != net::TransportStatus::ok && !stream_reset) {
    std::string why(net::to_string(response.transport));
    if (!response.transport_message.empty()) why += ": " + response.transport_message;
    return failed(classify_transport(response.transport), std::move(why));
  }
  if (reply_2xx) {
    return stream ? check_stream_reply(protocol, *stream, rules)
                  : check_plain_reply(protocol, response.body, rules);
  }
  providers::ProviderError error = protocol.parse_error(response.status, error_body);
  ReplyCheck check =
      failed(classify_http_error(response.status, error, headers),
             error.message.empty() ? "HTTP " + std::to_string(response.status) : error.message);
  // A bad request stops the whole chain, and a gateway's own 400 (a header it wants is
  // missing) looks like the provider's: show the body, so the user can tell who refused.
  if (check.error == ErrorClass::bad_request && error.recognised) {
    check.message += " (HTTP " + std::to_string(response.status) +
                     " body: " + providers::body_excerpt(error_body, 300) + ")";
  }
  check.provider_error = std::move(error);
  return check;
}

ReplyCheck check_plain_reply(const providers::Protocol& protocol, std::string_view body,
                             const ValidationRules* rules) {
  providers::ReplyResult parsed = protocol.parse_reply(body);
  if (parsed.error) return provider_error(*parsed.error, "error in the reply: ");
  if (!parsed.reply) return failed(ErrorClass::invalid_response, parsed.problem);
  return check_answer(protocol, std::move(*parsed.reply), rules);
}

ReplyCheck check_stream_reply(const providers::Protocol& protocol,
                              const providers::StreamState& state, const ValidationRules* rules) {
  if (state.error) return provider_error(*state.error, "error in stream: ");
  if (!state.complete) {
    return failed(
        ErrorClass::invalid_response,
        state.problem.empty() ? "stream ended before the provider's end marker" : state.problem);
  }
  return check_answer(protocol, state.reply, rules);
}

}  // namespace detour::engine
