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
  // The error the provider reported inside the 200, for its retry hints.
  std::optional<providers::ProviderError> provider_error;
};

// A plain (non-streamed) 2xx body. `rules` null: no content checks (a health probe's
// one-token answer is not judged on its words), only errors and the finish reason.
ReplyCheck check_plain_reply(const providers::Protocol& protocol, std::string_view body,
                             const ValidationRules* rules);

// A streamed 2xx body once it ended: what its decoder made of it.
ReplyCheck check_stream_reply(const providers::Protocol& protocol,
                              const providers::StreamState& state, const ValidationRules* rules);

}  // namespace detour::engine
