#pragma once
// Turns a 2xx exchange into an answer or a failure class, the one way every caller does it
// (calls and health's chat probes): an error object inside the body or stream is classified
// like the same error as a reply, the finish reason is judged by its table, and the answer is
// validated. Pure: no I/O, no clock.
#include <optional>
#include <string>
#include <string_view>

#include "engine/errors.hpp"
#include "engine/validate.hpp"
#include "providers/types.hpp"

namespace detour::engine {

struct ReplyCheck {
  ErrorClass error = ErrorClass::none;
  std::string message;                        // why it failed, for people; empty when none
  std::optional<providers::ChatReply> reply;  // the answer, when error is none
  std::optional<providers::Usage> usage;      // what the reply said it used, valid or not
  // The error the provider reported (in an error reply or inside a 200), for retry hints.
  std::optional<providers::ProviderError> provider_error;
};

// A whole exchange, whatever it came to: no reply (the transport's class), an error reply
// (classified from its status, body and headers), or a 2xx judged as below. `stream` is the
// decoder's state when the 2xx body was streamed (a stream reset mid-body is judged by what
// it said, so an incomplete one is invalid_response); `error_body` is the body of a non-2xx
// reply (a streamed request collects it apart from response.body). This is the one
// classification calls and health's chat probes share.
ReplyCheck check_response(const providers::Protocol& protocol, const net::HttpResponse& response,
                          const providers::RateLimitInfo& headers, std::string_view error_body,
                          const providers::StreamState* stream, const ValidationRules* rules);

// A plain (non-streamed) 2xx body. `rules` null: no content checks (a health probe's
// one-token answer is not judged on its words), only errors and the finish reason.
ReplyCheck check_plain_reply(const providers::Protocol& protocol, std::string_view body,
                             const ValidationRules* rules);

// A streamed 2xx body once it ended: what its decoder made of it.
ReplyCheck check_stream_reply(const providers::Protocol& protocol,
                              const providers::StreamState& state, const ValidationRules* rules);

}  // namespace detour::engine
