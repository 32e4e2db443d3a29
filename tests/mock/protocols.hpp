#pragma once
// The three wire formats detour-mock speaks: OpenAI chat completions, Anthropic Messages and
// Gemini generateContent. Pure functions from request bodies to reply bodies and SSE events;
// no sockets, no sleeping (server.cpp does the timing).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace detour::mock {

enum class Protocol { openai, anthropic, gemini };

std::string_view to_string(Protocol protocol);

// Whether `text` is well-formed UTF-8. JSON bodies are checked by the parser; a model name in
// a Gemini URL path (percent-decoded by the server) is not, and nlohmann's dump throws on it.
bool is_utf8(std::string_view text);

// The first `max` bytes of `text` or fewer, never ending inside a UTF-8 character.
std::string utf8_prefix(std::string_view text, std::size_t max);

// What the mock needs from a chat request, whatever the protocol.
struct ChatRequest {
  Protocol protocol = Protocol::openai;
  std::string model;
  bool stream = false;         // the reply is an SSE stream
  bool include_usage = false;  // OpenAI stream_options.include_usage
  bool gemini_array = false;   // Gemini streamGenerateContent without alt=sse: one JSON array
  std::optional<std::int64_t> max_tokens;
  bool json_mode = false;  // the caller asked for JSON output
  std::string prompt;      // text of the last user message
  std::string system;
  std::int64_t input_tokens = 0;  // ceil(chars of system + all messages / 4)
  nlohmann::json params;          // top-level body fields except messages/system, for stats
};

struct GeminiTarget {
  std::string model;
  bool stream = false;
  bool sse = false;
};

// Parses a chat request body. Returns the reason (worded like the provider's 400) when the
// body is unusable. For Gemini the model and stream flag come from the URL.
std::variant<ChatRequest, std::string> parse_chat(Protocol protocol, const std::string& body,
                                                  const GeminiTarget& gemini = {});

// Content-level faults that still answer 200.
enum class ContentFault { none, empty, refusal, wrong_schema };

struct Reply {
  std::string content;              // exactly the concatenation of pieces
  std::vector<std::string> pieces;  // one per word (with its leading whitespace)
  bool truncated = false;           // cut at max_tokens
  std::string finish;               // when set, the finish reason instead of the usual one
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
};

// The deterministic reply: "mock reply to: <prompt>" (or {"reply": ...} in JSON mode), cut to
// max_tokens words.
Reply make_reply(const ChatRequest& request, ContentFault fault);

// Keeps the first half of the reply's pieces (at least one): an answer that stopped early.
void cut_short(Reply& reply);

// The provider's finish reason for a reply ("stop"/"length", "end_turn"/"max_tokens", ...).
std::string finish_reason(Protocol protocol, bool truncated);
// The finish reason a reply is sent with: its override, else the usual one.
std::string finish_reason(Protocol protocol, const Reply& reply);

// A complete non-streaming reply body.
std::string reply_body(const ChatRequest& request, const Reply& reply, const std::string& id);

struct SseEvent {
  std::string text;    // complete, with its blank-line terminator
  bool delta = false;  // carries a piece of text: the per-token delay goes before these
  bool final = false;  // part of the normal ending (finish, usage, terminator)
};

// The whole stream of a successful reply, in order.
std::vector<SseEvent> stream_events(const ChatRequest& request, const Reply& reply,
                                    const std::string& id);
// Wraps a complete JSON object as one SSE data event in the protocol's framing.
std::string sse_data(Protocol protocol, const std::string& json_text);

// Model listings: OpenAI {"object":"list","data":[...]}, Anthropic {"data":[{"type":"model"}]},
// Gemini {"models":[{"name":"models/x"}]}; and one model.
std::string models_body(Protocol protocol, const std::vector<std::string>& models);
std::string model_body(Protocol protocol, const std::string& model);

// One page of Anthropic's cursor-paged listing: `limit` (1..1000, default 20) models after
// `after_id` or before `before_id`, with has_more, first_id and last_id. The listing is sorted,
// so a cursor need not be a listed model.
struct ModelsPage {
  std::string body;
  std::string error;  // set instead of body: the 400 message for bad parameters
};
ModelsPage anthropic_models_page(const std::vector<std::string>& models,
                                 const std::optional<std::string>& limit,
                                 const std::optional<std::string>& after_id,
                                 const std::optional<std::string>& before_id);

// The number of whitespace-separated words.
std::int64_t count_words(std::string_view text);

}  // namespace detour::mock
