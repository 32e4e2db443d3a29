#pragma once
// The neutral vocabulary every wire protocol is translated to and from. The engine only ever
// sees these types; src/providers/<protocol>.cpp knows the bytes on the wire.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/duration.hpp"
#include "net/http.hpp"

namespace detour::providers {

struct Message {
  std::string role;  // "user" or "assistant"
  std::string content;
};

struct ChatRequest {
  std::string model;
  std::string system;  // empty: none
  std::vector<Message> messages;
  std::optional<int64_t> max_tokens;  // Anthropic requires one: kAnthropicDefaultMaxTokens
  std::optional<double> temperature;
  nlohmann::json extra = nlohmann::json::object();  // -o KEY=VALUE, merged into the body last
  bool json_output = false;                         // ask for a JSON object as the answer
  std::optional<nlohmann::json> schema;  // JSON Schema for the answer (implies json_output)
  bool stream = false;
};

// Token counts, alike for every protocol: input_tokens is the whole prompt, including what
// was read from or written to a prompt cache (Anthropic reports those apart; detour adds them
// in), and cached_input_tokens the part of it read from the cache, billed at the model's
// cached_input_cost.
struct Usage {
  std::optional<int64_t> input_tokens;
  std::optional<int64_t> output_tokens;
  std::optional<int64_t> cached_input_tokens;
};

struct ChatReply {
  std::string content;
  // The finish reason exactly as the provider wrote it ("stop", "end_turn", "SAFETY", ...);
  // empty when the reply gave none. engine/finish_reason.cpp judges it and, once judged,
  // replaces it with detour's word for it.
  std::string finish_reason;
  std::string refusal;       // OpenAI message.refusal: structured outputs' refusal text
  std::string block_reason;  // Gemini promptFeedback.blockReason: the prompt was refused
  std::string served_model;  // the model the reply says answered; empty when not given
  Usage usage;
};

// An error the provider reported, in the body of a non-2xx reply or as a stream event.
struct ProviderError {
  int status = 0;       // HTTP status (of the reply that carried it)
  std::string type;     // OpenAI error.type, Anthropic error.type, Gemini error.status
  std::string code;     // OpenAI error.code; Gemini ErrorInfo.reason (e.g. API_KEY_INVALID)
  std::string message;  // provider's message, for people
  std::optional<Millis> retry_delay;   // Gemini RetryInfo.retryDelay
  std::vector<std::string> quota_ids;  // Gemini QuotaFailure violations[].quotaId
  // The HTTP status the error object itself names (Gemini error.code, OpenRouter's numeric
  // error.code): what an error inside a 200 stream or body would have had as a reply.
  std::optional<int> named_status;
  bool recognised = false;  // the body was this protocol's error JSON
};

// Everything the rate-limit and retry headers of any provider said, in one place.
// Resets are relative to the `now` given to the parser.
struct RateLimitInfo {
  std::optional<int64_t> requests_limit, requests_remaining;
  std::optional<int64_t> tokens_limit, tokens_remaining;
  std::optional<int64_t> input_tokens_limit, input_tokens_remaining;    // Anthropic
  std::optional<int64_t> output_tokens_limit, output_tokens_remaining;  // Anthropic
  std::optional<Millis> requests_reset, tokens_reset;
  std::optional<Millis> retry_after;  // retry-after-ms, else retry-after (seconds or HTTP date)
  std::optional<bool> should_retry;   // x-should-retry
  std::string request_id;             // x-request-id / request-id
};

// Parses every rate-limit and retry header family (OpenAI x-ratelimit-*, Anthropic
// anthropic-ratelimit-*, retry-after-ms, retry-after, x-should-retry). Pure: `now` is used
// for HTTP dates and RFC 3339 resets. Unparseable values are ignored, never fatal.
RateLimitInfo parse_rate_limit_headers(const net::Headers& headers,
                                       std::chrono::system_clock::time_point now);

// What a streamed reply has said so far.
struct StreamState {
  ChatReply reply;        // content accumulated so far, finish reason and usage once known
  bool complete = false;  // the protocol's end was seen ([DONE], message_stop, final chunk)
  std::optional<ProviderError> error;  // an error event arrived mid-stream
  // Why the stream is not well formed (an event whose data does not parse); empty when it is.
  // A malformed stream never becomes complete, so the engine's invalid_response rule covers it.
  std::string problem;
};

// Decodes one streamed response body, fed in arbitrary pieces.
class StreamDecoder {
 public:
  virtual ~StreamDecoder() = default;
  // Feeds raw bytes; on_text is called with each new piece of answer text, in order.
  virtual void feed(std::string_view bytes,
                    const std::function<void(std::string_view)>& on_text) = 0;
  // The body ended: processes any last unterminated event.
  virtual void finish(const std::function<void(std::string_view)>& on_text) = 0;
  virtual const StreamState& state() const = 0;
};

struct Endpoint {
  std::string base_url;  // as configured, without trailing slash
  std::string api_key;   // may be empty (local OpenAI-compatible servers)
  // The key is a bearer token from api_key_cmd (Azure: Microsoft Entra ID) rather than the
  // provider's own kind of key.
  bool key_is_token = false;
  std::string api_version{};  // azure
  // What every request to the provider carries besides (README, "Providers"): extra headers,
  // which replace a protocol header of the same name; query parameters; the CAs to trust;
  // values never to show.
  net::Headers headers{};
  std::vector<std::pair<std::string, std::string>> query{};
  std::string ca_bundle{};
  std::string ca_path{};
  std::vector<std::string> secrets{};
};

struct ReplyResult {
  std::optional<ChatReply> reply;
  std::string problem;  // why the body is not a valid reply, when reply is empty
  // A 2xx body that is the protocol's error object (gateways and OpenRouter answer 200 with
  // an error once generation has started): classified like the same error in a reply.
  std::optional<ProviderError> error;
};

inline constexpr int64_t kAnthropicDefaultMaxTokens = 4096;

class Protocol {
 public:
  virtual ~Protocol() = default;
  virtual std::string_view name() const = 0;
  // Whose replies these are, for judging finish reasons: Azure answers in OpenAI's words.
  virtual std::string_view reply_family() const { return name(); }

  // What the engine sends: the protocol's request with the endpoint's extras applied.
  net::HttpRequest chat_request(const Endpoint& endpoint, const ChatRequest& request) const;
  net::HttpRequest models_request(const Endpoint& endpoint) const;

  virtual net::HttpRequest build_request(const Endpoint& endpoint,
                                         const ChatRequest& request) const = 0;
  // Parses a 2xx body (leading blank lines tolerated).
  virtual ReplyResult parse_reply(std::string_view body) const = 0;
  // Parses a non-2xx body; an unrecognised body gives recognised=false and the status.
  virtual ProviderError parse_error(int status, std::string_view body) const = 0;
  virtual std::unique_ptr<StreamDecoder> make_stream_decoder() const = 0;
  // GET the provider's model list (no tokens spent) and read the model ids from it.
  virtual net::HttpRequest build_models_request(const Endpoint& endpoint) const = 0;
  virtual std::vector<std::string> parse_models(std::string_view body) const = 0;
  // Whether the model list names what targets call (a deployment is not a model: Azure's list
  // cannot say whether one exists).
  virtual bool models_list_targets() const { return true; }
};

// The first ~max_bytes of a body on one line (whitespace runs collapsed, cut at a UTF-8
// character boundary), for messages that must show what a server said.
std::string body_excerpt(std::string_view body, size_t max_bytes = 200);

// Applies an endpoint's extra headers, query parameters, CA settings and secrets to a
// request a protocol built.
net::HttpRequest with_endpoint_extras(net::HttpRequest request, const Endpoint& endpoint);

// Percent-encodes a query parameter name or value (RFC 3986 unreserved characters pass).
std::string url_encode(std::string_view text);

// "openai", "anthropic", "gemini", "azure"; nullptr for anything else.
const Protocol* find_protocol(std::string_view name);

}  // namespace detour::providers
