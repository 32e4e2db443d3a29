// Anthropic Messages API (POST /v1/messages).
#include <cctype>

#include "providers/json_util.hpp"
#include "providers/protocols.hpp"

namespace detour::providers {

namespace {

using detail::find_array;
using detail::find_object;
using detail::get_int;
using detail::get_string;
using detail::json;
using detail::parse_json;
using detail::snippet;
using detail::TextFn;

// Hard-coded by the official SDKs; the version selects the wire format, not the model.
constexpr const char* kAnthropicVersion = "2023-06-01";

// {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}; the inner
// object is what matters.
ProviderError anthropic_error(int status, const json& error) {
  ProviderError out;
  out.status = status;
  out.type = get_string(error, "type");
  out.message = get_string(error, "message");
  out.recognised = true;
  return out;
}

// Takes the cumulative counters Anthropic reports (message_start, message_delta, replies).
// Its input_tokens leaves out the prompt tokens read from the cache (cache_read_input_tokens)
// and written to it (cache_creation_input_tokens); detour's input_tokens is the whole prompt, as
// OpenAI's and Gemini's are. A message_delta may repeat only some of the counters: the cache
// counts of an earlier event stand.
void read_usage(const json& usage, Usage& into, std::int64_t& cache_written) {
  if (auto n = get_int(usage, "cache_read_input_tokens")) into.cached_input_tokens = n;
  if (auto n = get_int(usage, "cache_creation_input_tokens")) cache_written = *n;
  if (auto n = get_int(usage, "input_tokens"))
    into.input_tokens = *n + into.cached_input_tokens.value_or(0) + cache_written;
  if (auto n = get_int(usage, "output_tokens")) into.output_tokens = n;
}

void append_system(std::string& system, std::string_view text) {
  if (text.empty()) return;
  if (!system.empty()) system += "\n\n";
  system += text;
}

class AnthropicStreamDecoder final : public detail::SseStreamDecoder {
 protected:
  void on_event(const net::SseEvent& event, const TextFn& on_text) override {
    if (stopped()) return;
    auto doc = parse_json(event.data);
    if (!doc || !doc->is_object()) {
      if (event.event == "error") {
        state_.error = detail::unrecognised_error(200, event.data);
      } else if (event.event != "ping" || !event.data.empty()) {
        mark_malformed("stream event is not a JSON object: " + snippet(event.data, 80));
      }
      return;
    }
    // The data repeats the event name in "type"; prefer it, since that is what the SDKs
    // switch on, and fall back to the SSE name.
    std::string type = get_string(*doc, "type");
    if (type.empty()) type = event.event;

    if (type == "content_block_delta") {
      const json* delta = find_object(*doc, "delta");
      // thinking_delta, input_json_delta, signature_delta, citations_delta are not answer
      // text.
      if (delta && get_string(*delta, "type") == "text_delta") {
        emit_text(get_string(*delta, "text"), on_text);
      }
    } else if (type == "message_start") {
      if (const json* message = find_object(*doc, "message")) {
        state_.reply.served_model = get_string(*message, "model");
        if (const json* usage = find_object(*message, "usage"))
          read_usage(*usage, state_.reply.usage, cache_written_);
      }
    } else if (type == "message_delta") {
      if (const json* delta = find_object(*doc, "delta")) {
        std::string reason = get_string(*delta, "stop_reason");
        if (!reason.empty()) state_.reply.finish_reason = std::move(reason);
      }
      if (const json* usage = find_object(*doc, "usage"))
        read_usage(*usage, state_.reply.usage, cache_written_);
    } else if (type == "message_stop") {
      mark_complete();
    } else if (type == "error" || event.event == "error") {
      const json* error = find_object(*doc, "error");
      state_.error =
          error ? anthropic_error(200, *error) : detail::unrecognised_error(200, event.data);
    }
    // ping, content_block_start, content_block_stop and future event types: nothing to do.
  }

 private:
  std::int64_t cache_written_ = 0;  // cache_creation_input_tokens, once reported
};

class AnthropicProtocol final : public Protocol {
 public:
  std::string_view name() const override { return "anthropic"; }

  net::HttpRequest build_request(const Endpoint& endpoint,
                                 const ChatRequest& request) const override {
    json body = json::object();
    body["model"] = request.model;
    body["max_tokens"] = request.max_tokens.value_or(kAnthropicDefaultMaxTokens);

    // The Messages API has no system role: system text goes top-level, including any
    // "system" message a batch line carried in OpenAI form.
    std::string system = request.system;
    json messages = json::array();
    for (const auto& m : request.messages) {
      if (m.role == "system") {
        append_system(system, m.content);
        continue;
      }
      messages.push_back({{"role", m.role}, {"content", m.content}});
    }
    // No JSON mode on this API: ask in words, with the schema, and validate the answer.
    if (request.json_output || request.schema) {
      append_system(system, detail::json_instruction(request.schema));
    }
    if (!system.empty()) body["system"] = system;
    body["messages"] = std::move(messages);
    if (request.temperature) body["temperature"] = *request.temperature;
    if (request.stream) body["stream"] = true;
    detail::merge_extra(body, request.extra);

    net::HttpRequest http;
    http.method = "POST";
    http.url = detail::trim_base(endpoint.base_url) + "/v1/messages";
    http.headers = auth_headers(endpoint);
    http.headers.emplace_back("content-type", "application/json");
    http.headers.emplace_back("accept", request.stream ? "text/event-stream" : "application/json");
    http.body = detail::dump(body);
    return http;
  }

  ReplyResult parse_reply(std::string_view body) const override {
    ReplyResult result;
    auto doc = parse_json(body);
    if (!doc || !doc->is_object()) {
      result.problem = "the reply is not a JSON object: " + snippet(body, 80);
      return result;
    }
    if (get_string(*doc, "type") == "error") {
      const json* error = find_object(*doc, "error");
      result.error = error ? anthropic_error(200, *error) : detail::unrecognised_error(200, body);
      result.problem = "the reply carries an error: " + result.error->message;
      return result;
    }
    const json* content = find_array(*doc, "content");
    if (!content) {
      result.problem = "the reply has no content array";
      return result;
    }
    ChatReply reply;
    // Only text blocks are the answer; thinking and tool_use blocks are not.
    for (const auto& block : *content) {
      if (get_string(block, "type") == "text") reply.content += get_string(block, "text");
    }
    reply.finish_reason = get_string(*doc, "stop_reason");
    reply.served_model = get_string(*doc, "model");
    std::int64_t cache_written = 0;
    if (const json* usage = find_object(*doc, "usage"))
      read_usage(*usage, reply.usage, cache_written);
    result.reply = std::move(reply);
    return result;
  }

  ProviderError parse_error(int status, std::string_view body) const override {
    try {
      auto doc = parse_json(body);
      if (doc && doc->is_object()) {
        // The documented shape has "type":"error"; accept the inner object alone too, since
        // some gateways drop the wrapper's type.
        const json* error = find_object(*doc, "error");
        if (error && (get_string(*doc, "type") == "error" || !get_string(*error, "type").empty())) {
          return anthropic_error(status, *error);
        }
      }
    } catch (...) {
      // Field access is guarded; this only keeps an unexpected library throw in.
    }
    return detail::unrecognised_error(status, body);
  }

  std::unique_ptr<StreamDecoder> make_stream_decoder() const override {
    return std::make_unique<AnthropicStreamDecoder>();
  }

  net::HttpRequest build_models_request(const Endpoint& endpoint) const override {
    // The list is paginated (20 by default); 1000 is the maximum and covers every model, so
    // a health check never misses one on a later page.
    return detail::json_get(detail::trim_base(endpoint.base_url) + "/v1/models?limit=1000",
                            auth_headers(endpoint));
  }

  std::vector<std::string> parse_models(std::string_view body) const override {
    return detail::strings_in_list(body, "data", "id");
  }

 private:
  static net::Headers auth_headers(const Endpoint& endpoint) {
    net::Headers headers;
    if (!endpoint.api_key.empty()) headers.emplace_back("x-api-key", endpoint.api_key);
    headers.emplace_back("anthropic-version", kAnthropicVersion);
    return headers;
  }
};

}  // namespace

const Protocol& anthropic_protocol() {
  static const AnthropicProtocol protocol;
  return protocol;
}

}  // namespace detour::providers
