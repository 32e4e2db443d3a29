// Google Gemini API (generativelanguage, v1beta generateContent / streamGenerateContent).
#include <cctype>

#include "core/duration.hpp"
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

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string_view strip_models_prefix(std::string_view name) {
  if (name.substr(0, 7) == "models/") name.remove_prefix(7);
  return name;
}

// "Please retry in 10h17m5.72s." is the only hint when a 429 has no RetryInfo.
std::optional<Millis> gemini_retry_hint(std::string_view message) {
  static constexpr std::string_view kRetryIn = "retry in ";
  size_t at = message.find(kRetryIn);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = message.substr(at + kRetryIn.size());
  size_t n = 0;
  while (n < rest.size() && (std::isalnum(static_cast<unsigned char>(rest[n])) || rest[n] == '.'))
    ++n;
  std::string_view token = rest.substr(0, n);
  while (!token.empty() && token.back() == '.')
    token.remove_suffix(1);
  return parse_duration(token);
}

// {"code":429,"message":…,"status":"RESOURCE_EXHAUSTED","details":[…]}.
ProviderError gemini_error(int status, const json& error) {
  ProviderError out;
  out.status = status;
  out.type = get_string(error, "status");
  out.message = get_string(error, "message");
  out.recognised = true;
  if (auto code = get_int(error, "code"); code && *code >= 400 && *code <= 599)
    out.named_status = static_cast<int>(*code);
  if (const json* details = find_array(error, "details")) {
    for (const auto& detail : *details) {
      std::string type = get_string(detail, "@type");
      if (ends_with(type, "google.rpc.RetryInfo")) {
        // A protobuf Duration: "37s", "34.074824224s".
        if (auto delay = parse_duration(get_string(detail, "retryDelay"))) out.retry_delay = delay;
      } else if (ends_with(type, "google.rpc.QuotaFailure")) {
        if (const json* violations = find_array(detail, "violations")) {
          for (const auto& v : *violations) {
            std::string id = get_string(v, "quotaId");
            if (!id.empty()) out.quota_ids.push_back(std::move(id));
          }
        }
      } else if (ends_with(type, "google.rpc.ErrorInfo")) {
        // API_KEY_INVALID arrives as a 400: the reason is what tells auth from bad_request.
        out.code = get_string(detail, "reason");
      }
    }
  }
  if (!out.retry_delay) out.retry_delay = gemini_retry_hint(out.message);
  return out;
}

// Without alt=sse the API answers with a JSON array of responses; errors then come wrapped
// the same way. Unwrap so both forms read alike.
const json& unwrap_array(const json& doc) {
  if (doc.is_array() && !doc.empty()) return doc[0];
  return doc;
}

Usage gemini_usage(const json& metadata) {
  Usage usage;
  usage.input_tokens = get_int(metadata, "promptTokenCount");
  usage.output_tokens = get_int(metadata, "candidatesTokenCount");
  // Part of promptTokenCount: the tokens read from a cachedContent.
  usage.cached_input_tokens = get_int(metadata, "cachedContentTokenCount");
  // Thinking tokens are billed as output (as OpenAI's completion_tokens include reasoning
  // tokens), so they count as output for cost and limits.
  if (auto thoughts = get_int(metadata, "thoughtsTokenCount")) {
    usage.output_tokens = usage.output_tokens.value_or(0) + *thoughts;
  }
  return usage;
}

// The answer text of one candidate; thought summaries (thought:true) are not the answer.
std::string candidate_text(const json& candidate) {
  std::string text;
  const json* content = find_object(candidate, "content");
  const json* parts = content ? find_array(*content, "parts") : nullptr;
  if (!parts) return text;
  for (const auto& part : *parts) {
    const json* thought = detail::find(part, "thought");
    if (thought && thought->is_boolean() && thought->get<bool>()) continue;
    text += get_string(part, "text");
  }
  return text;
}

std::string block_reason(const json& doc) {
  const json* feedback = find_object(doc, "promptFeedback");
  return feedback ? get_string(*feedback, "blockReason") : std::string();
}

// Gemini's REST API takes snake_case names as well as camelCase.
bool is_top_level_field(std::string_view key) {
  static constexpr std::string_view kFields[] = {
      "contents",    "systemInstruction", "system_instruction", "tools",         "toolConfig",
      "tool_config", "safetySettings",    "safety_settings",    "cachedContent", "cached_content",
      "labels"};
  for (auto field : kFields) {
    if (key == field) return true;
  }
  return false;
}

// `-o` keys: top-level request fields stay top-level; a generationConfig object is merged into
// the one detour built (so maxOutputTokens survives); anything else (temperature, topK,
// thinkingConfig, …) is a generation parameter, which is where users mean it to go.
void merge_gemini_extra(json& body, const json& extra) {
  if (!extra.is_object()) return;
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    const std::string& key = it.key();
    if (key == "generationConfig" || key == "generation_config") {
      if (it.value().is_object()) {
        for (auto g = it.value().begin(); g != it.value().end(); ++g) {
          body["generationConfig"][g.key()] = g.value();
        }
      } else {
        body["generationConfig"] = it.value();
      }
    } else if (is_top_level_field(key)) {
      body[key] = it.value();
    } else {
      body["generationConfig"][key] = it.value();
    }
  }
}

class GeminiStreamDecoder final : public detail::SseStreamDecoder {
 protected:
  void on_event(const net::SseEvent& event, const TextFn& on_text) override {
    if (stopped()) return;
    auto doc = parse_json(event.data);
    if (!doc || !(doc->is_object() || doc->is_array())) {
      mark_malformed("stream event is not a JSON object: " + snippet(event.data, 80));
      return;
    }
    apply(unwrap_array(*doc), on_text);
  }

  // Errors can arrive as raw, often multi-line, JSON without a data: prefix. Collect such
  // lines until the braces balance (as the official SDK does), then read the object.
  void on_other_line(std::string_view line, const TextFn& on_text) override {
    if (stopped()) return;
    if (raw_.empty()) {
      std::string_view t = line;
      while (!t.empty() && (std::isspace(static_cast<unsigned char>(t.front())) ||
                            t.front() == '[' || t.front() == ',')) {
        t.remove_prefix(1);
      }
      if (t.empty() || t.front() == ']') return;  // the array framing of a non-SSE stream
      if (t.front() != '{') {
        mark_malformed("unexpected line in stream: " + snippet(line, 80));
        return;
      }
      line = t;
    }
    raw_.append(line);
    raw_.push_back('\n');
    if (!braces_balanced(raw_)) {
      if (raw_.size() > kMaxRawBytes) {
        mark_malformed("unterminated JSON in stream");
        raw_.clear();
      }
      return;
    }
    flush_raw(on_text);
  }

  void on_finish(const TextFn& on_text) override {
    if (!raw_.empty() && !stopped()) flush_raw(on_text);
  }

 private:
  static constexpr size_t kMaxRawBytes = 1 << 20;

  void flush_raw(const TextFn& on_text) {
    std::string text = std::move(raw_);
    raw_.clear();
    auto doc = parse_json(text);
    if (!doc || !doc->is_object()) {
      mark_malformed("unparseable JSON in stream: " + snippet(text, 80));
      return;
    }
    apply(*doc, on_text);
  }

  // True once every '{' opened after the start has been closed (strings skipped).
  static bool braces_balanced(std::string_view text) {
    int depth = 0;
    bool in_string = false, escaped = false, opened = false;
    for (char c : text) {
      if (in_string) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          in_string = false;
        }
        continue;
      }
      if (c == '"') {
        in_string = true;
      } else if (c == '{') {
        ++depth;
        opened = true;
      } else if (c == '}') {
        --depth;
        if (opened && depth == 0) return true;
      }
    }
    return false;
  }

  // One GenerateContentResponse (or an error object).
  void apply(const json& doc, const TextFn& on_text) {
    if (const json* error = find_object(doc, "error")) {
      state_.error = gemini_error(200, *error);
      return;
    }
    std::string model = get_string(doc, "modelVersion");
    if (!model.empty()) state_.reply.served_model = std::move(model);
    if (const json* metadata = find_object(doc, "usageMetadata")) {
      state_.reply.usage = gemini_usage(*metadata);
    }
    const json* candidates = find_array(doc, "candidates");
    if (candidates && !candidates->empty()) {
      const json& candidate = (*candidates)[0];
      emit_text(candidate_text(candidate), on_text);
      std::string reason = get_string(candidate, "finishReason");
      // There is no terminator: the chunk that carries a finishReason is the last one.
      if (!reason.empty()) {
        state_.reply.finish_reason = std::move(reason);
        mark_complete();
      }
    } else if (std::string blocked = block_reason(doc); !blocked.empty()) {
      state_.reply.block_reason = std::move(blocked);
      mark_complete();
    }
  }

  std::string raw_;
};

class GeminiProtocol final : public Protocol {
 public:
  std::string_view name() const override { return "gemini"; }

  net::HttpRequest build_request(const Endpoint& endpoint,
                                 const ChatRequest& request) const override {
    json body = json::object();
    std::string system = request.system;
    json contents = json::array();
    for (const auto& m : request.messages) {
      if (m.role == "system") {
        if (!system.empty()) system += "\n\n";
        system += m.content;
        continue;
      }
      // Gemini calls the assistant "model".
      std::string role = m.role == "assistant" ? "model" : m.role;
      contents.push_back({{"role", role}, {"parts", json::array({{{"text", m.content}}})}});
    }
    body["contents"] = std::move(contents);
    if (!system.empty()) {
      body["systemInstruction"] = {{"parts", json::array({{{"text", system}}})}};
    }

    json config = json::object();
    if (request.max_tokens) config["maxOutputTokens"] = *request.max_tokens;
    if (request.temperature) config["temperature"] = *request.temperature;
    if (request.json_output || request.schema) config["responseMimeType"] = "application/json";
    // responseJsonSchema takes JSON Schema as written; responseSchema only an OpenAPI subset.
    if (request.schema) config["responseJsonSchema"] = *request.schema;
    if (!config.empty()) body["generationConfig"] = std::move(config);
    merge_gemini_extra(body, request.extra);

    net::HttpRequest http;
    http.method = "POST";
    http.url = detail::trim_base(endpoint.base_url) + "/v1beta/models/" +
               std::string(strip_models_prefix(request.model)) +
               (request.stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
    http.headers = auth_headers(endpoint);
    http.headers.emplace_back("content-type", "application/json");
    http.headers.emplace_back("accept", request.stream ? "text/event-stream" : "application/json");
    http.body = detail::dump(body);
    return http;
  }

  ReplyResult parse_reply(std::string_view body) const override {
    ReplyResult result;
    auto parsed = parse_json(body);
    if (!parsed || !(parsed->is_object() || parsed->is_array())) {
      result.problem = "the reply is not a JSON object: " + snippet(body, 80);
      return result;
    }
    const json& doc = unwrap_array(*parsed);
    if (const json* error = find_object(doc, "error")) {
      result.error = gemini_error(200, *error);
      result.problem = "the reply carries an error: " + result.error->message;
      return result;
    }
    ChatReply reply;
    reply.served_model = get_string(doc, "modelVersion");
    if (const json* metadata = find_object(doc, "usageMetadata"))
      reply.usage = gemini_usage(*metadata);
    const json* candidates = find_array(doc, "candidates");
    if (!candidates || candidates->empty()) {
      // A blocked prompt is a 200 with promptFeedback.blockReason and no candidates.
      reply.block_reason = block_reason(doc);
      if (!reply.block_reason.empty()) {
        result.reply = std::move(reply);
      } else {
        result.problem = "the reply has no candidates";
      }
      return result;
    }
    const json& candidate = (*candidates)[0];
    reply.content = candidate_text(candidate);
    reply.finish_reason = get_string(candidate, "finishReason");
    result.reply = std::move(reply);
    return result;
  }

  ProviderError parse_error(int status, std::string_view body) const override {
    try {
      auto doc = parse_json(body);
      if (doc) {
        if (const json* error = find_object(unwrap_array(*doc), "error")) {
          return gemini_error(status, *error);
        }
      }
    } catch (...) {
      // Field access is guarded; this only keeps an unexpected library throw in.
    }
    return detail::unrecognised_error(status, body);
  }

  std::unique_ptr<StreamDecoder> make_stream_decoder() const override {
    return std::make_unique<GeminiStreamDecoder>();
  }

  net::HttpRequest build_models_request(const Endpoint& endpoint) const override {
    // Paginated, 50 per page by default; 1000 is the maximum and covers every model.
    return detail::json_get(detail::trim_base(endpoint.base_url) + "/v1beta/models?pageSize=1000",
                            auth_headers(endpoint));
  }

  std::vector<std::string> parse_models(std::string_view body) const override {
    std::vector<std::string> ids;
    for (const auto& full : detail::strings_in_list(body, "models", "name")) {
      std::string_view name = strip_models_prefix(full);
      if (!name.empty()) ids.emplace_back(name);
    }
    return ids;
  }

 private:
  static net::Headers auth_headers(const Endpoint& endpoint) {
    net::Headers headers;
    if (!endpoint.api_key.empty()) headers.emplace_back("x-goog-api-key", endpoint.api_key);
    return headers;
  }
};

}  // namespace

const Protocol& gemini_protocol() {
  static const GeminiProtocol protocol;
  return protocol;
}

}  // namespace detour::providers
