#pragma once
// Internal helpers shared by the protocol adapters: lenient body parsing, type-safe field
// access (nlohmann throws on a wrong type; provider bodies are untrusted input), body
// snippets for messages, and the SSE-based stream decoder skeleton.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "net/sse.hpp"
#include "providers/types.hpp"

namespace detour::providers::detail {

using json = nlohmann::json;
using TextFn = std::function<void(std::string_view)>;

// Parses a JSON body, skipping a UTF-8 BOM and leading whitespace (DeepSeek sends blank lines
// while it waits). Never throws; nullopt when the text is not exactly one JSON value.
std::optional<json> parse_json(std::string_view body);

// Field access that never throws: a missing field or one of another type reads as absent.
const json* find(const json& object, std::string_view key);
const json* find_object(const json& object, std::string_view key);
const json* find_array(const json& object, std::string_view key);
std::string get_string(const json& object, std::string_view key);
std::optional<int64_t> get_int(const json& object, std::string_view key);
// A string field, or an integer one written as text (OpenRouter's error.code is a number).
std::string get_string_or_number(const json& object, std::string_view key);

// Serialises a request body; invalid UTF-8 in a prompt is replaced rather than thrown on.
std::string dump(const json& body);

// Sets each key of `extra` on `body`, replacing what was there: -o wins over detour's choices.
void merge_extra(json& body, const json& extra);

// The base URL without trailing slashes, so "http://host/v1/" + "/models" stays well formed.
std::string trim_base(std::string_view base_url);

// A GET asking for JSON (the model lists), with the protocol's auth headers.
net::HttpRequest json_get(std::string url, net::Headers headers);

// The non-empty string `field` of each object in the top-level array `array_key`:
// {"data":[{"id":…}]} for OpenAI and Anthropic model lists, {"models":[{"name":…}]} for Gemini.
std::vector<std::string> strings_in_list(std::string_view body, std::string_view array_key,
                                         std::string_view field);

// The first ~max_bytes of a body, whitespace runs collapsed to one space and trimmed, cut at a
// UTF-8 character boundary: enough of an HTML error page to say who answered.
std::string snippet(std::string_view body, size_t max_bytes = 200);

// recognised=false with the status and a snippet of the body.
ProviderError unrecognised_error(int status, std::string_view body);

// True when `haystack` contains `needle`, ignoring ASCII case.
bool contains_icase(std::string_view haystack, std::string_view needle);

// The instruction that asks for a bare JSON object, for protocols without (or in addition to)
// a JSON mode; with the schema's text when one is given.
std::string json_instruction(const std::optional<json>& schema);

// The SSE-based skeleton every protocol's stream decoder shares: it owns the parser and the
// state, and hands events to the protocol.
class SseStreamDecoder : public StreamDecoder {
 public:
  void feed(std::string_view bytes, const TextFn& on_text) override;
  void finish(const TextFn& on_text) override;
  const StreamState& state() const override { return state_; }

 protected:
  virtual void on_event(const net::SseEvent& event, const TextFn& on_text) = 0;
  virtual void on_other_line(std::string_view /*line*/, const TextFn& /*on_text*/) {}
  virtual void on_finish(const TextFn& /*on_text*/) {}

  // Appends answer text to the reply and passes it on.
  void emit_text(std::string_view text, const TextFn& on_text);
  // The protocol's end marker arrived; ignored once the stream was found malformed.
  void mark_complete() { state_.complete = !malformed_; }
  // A data event did not parse: some of the answer may be lost, so the stream can no longer
  // count as complete even if its end marker arrives (the engine treats that as
  // invalid_response).
  void mark_malformed(std::string_view what);
  // Once the provider reported an error, the stream is over for detour whatever follows.
  bool stopped() const { return state_.error.has_value(); }

  StreamState state_;

 private:
  net::SseParser parser_;
  bool malformed_ = false;
};

}  // namespace detour::providers::detail
