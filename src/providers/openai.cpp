// OpenAI chat completions, and every server that speaks it (vLLM, Ollama, llama.cpp,
// LM Studio, OpenRouter, DeepSeek, Groq, Mistral).
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

// The lower-cased host of a URL: "https://API.openai.com:443/v1" -> "api.openai.com".
std::string url_host(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find_first_of("/?#"));
  size_t at = url.rfind('@');
  if (at != std::string_view::npos) url.remove_prefix(at + 1);
  if (!url.empty() && url.front() == '[') {
    url = url.substr(0, url.find(']') + 1);  // IPv6 literal; keep the brackets
  } else {
    url = url.substr(0, url.find(':'));
  }
  std::string host(url);
  for (char& c : host)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return host;
}

// OpenAI deprecated max_tokens for max_completion_tokens (the o-series reject max_tokens),
// but the compatible servers (vLLM, Ollama, llama.cpp, most proxies) only know max_tokens and
// ignore or reject the new name. So the new name goes to OpenAI itself and the old one to
// everyone else; `-o` can still force either.
bool uses_max_completion_tokens(std::string_view base_url) {
  return url_host(base_url) == "api.openai.com";
}

// "Please try again in 644ms." (OpenAI 429s), "Please retry after 37 seconds" (Azure): the
// message is the only place some of these servers put the wait.
std::optional<Millis> openai_retry_hint(std::string_view message) {
  static constexpr std::string_view kTryAgain = "try again in ";
  size_t at = message.find(kTryAgain);
  if (at != std::string_view::npos) {
    std::string_view rest = message.substr(at + kTryAgain.size());
    size_t n = 0;
    while (n < rest.size() && (std::isalnum(static_cast<unsigned char>(rest[n])) || rest[n] == '.'))
      ++n;
    std::string_view token = rest.substr(0, n);
    while (!token.empty() && token.back() == '.')
      token.remove_suffix(1);
    if (auto d = parse_duration(token)) return d;
  }
  static constexpr std::string_view kRetryAfter = "retry after ";
  at = message.find(kRetryAfter);
  if (at != std::string_view::npos) {
    std::string_view rest = message.substr(at + kRetryAfter.size());
    size_t n = 0;
    while (n < rest.size() && std::isdigit(static_cast<unsigned char>(rest[n])))
      ++n;
    if (n > 0 && rest.substr(n).substr(0, 7) == " second") return parse_duration(rest.substr(0, n));
  }
  return std::nullopt;
}

// {"message","type","param","code"}: OpenAI's error object, OpenRouter's (code is a number
// there) and Mistral's top-level error body alike.
ProviderError openai_error(int status, const json& error) {
  ProviderError out;
  out.status = status;
  out.type = get_string(error, "type");
  out.code = detail::get_string_or_number(error, "code");
  // OpenRouter's code is the HTTP status the error stands for (402, 502, …).
  if (auto number = get_int(error, "code"); number && *number >= 400 && *number <= 599)
    out.named_status = static_cast<int>(*number);
  out.message = get_string(error, "message");
  out.retry_delay = openai_retry_hint(out.message);
  out.recognised = true;
  return out;
}

// An error that arrived inside a 200 stream: `data: {"error":{...}}` or `event: error`.
ProviderError stream_error(const json* doc, std::string_view raw) {
  if (doc) {
    if (const json* error = find_object(*doc, "error")) return openai_error(200, *error);
    if (doc->is_object() && detail::find(*doc, "message")) return openai_error(200, *doc);
  }
  return detail::unrecognised_error(200, raw);
}

bool mentions_json(const ChatRequest& request) {
  if (detail::contains_icase(request.system, "json")) return true;
  for (const auto& m : request.messages) {
    if (detail::contains_icase(m.content, "json")) return true;
  }
  return false;
}

// prompt_tokens includes prompt_tokens_details.cached_tokens (the OpenAI spec, CompletionUsage).
Usage openai_usage(const json& usage) {
  Usage out{get_int(usage, "prompt_tokens"), get_int(usage, "completion_tokens"), std::nullopt};
  if (const json* details = find_object(usage, "prompt_tokens_details"))
    out.cached_input_tokens = get_int(*details, "cached_tokens");
  return out;
}

// Text of a message's content: a string, null (tool calls, refusals), or the content-part
// array some compatible servers return.
std::optional<std::string> content_text(const json& message) {
  const json* content = detail::find(message, "content");
  if (!content || content->is_null()) return std::string();
  if (content->is_string()) return content->get<std::string>();
  if (content->is_array()) {
    std::string text;
    for (const auto& part : *content)
      text += get_string(part, "text");
    return text;
  }
  return std::nullopt;
}

// The choice with index 0 (n>1 replies carry several), else the first.
const json* first_choice(const json& doc) {
  const json* choices = find_array(doc, "choices");
  if (!choices || choices->empty()) return nullptr;
  for (const auto& choice : *choices) {
    if (get_int(choice, "index").value_or(0) == 0) return &choice;
  }
  return &(*choices)[0];
}

class OpenAiStreamDecoder final : public detail::SseStreamDecoder {
 protected:
  void on_event(const net::SseEvent& event, const TextFn& on_text) override {
    if (stopped()) return;
    std::string_view data = event.data;
    while (!data.empty() && std::isspace(static_cast<unsigned char>(data.back()))) {
      data.remove_suffix(1);
    }
    auto doc = parse_json(data);
    if (event.event == "error") {
      state_.error = stream_error(doc ? &*doc : nullptr, data);
      return;
    }
    while (!data.empty() && std::isspace(static_cast<unsigned char>(data.front()))) {
      data.remove_prefix(1);
    }
    if (data.empty()) return;
    if (data == "[DONE]") {
      mark_complete();
      return;
    }
    if (!doc || !doc->is_object()) {
      mark_malformed("stream event is not a JSON object: " + snippet(data, 80));
      return;
    }
    if (find_object(*doc, "error")) {
      state_.error = stream_error(&*doc, data);
      return;
    }
    if (state_.reply.served_model.empty()) state_.reply.served_model = get_string(*doc, "model");
    if (const json* choice = first_choice(*doc)) {
      if (const json* delta = find_object(*choice, "delta")) {
        emit_text(get_string(*delta, "content"), on_text);
      }
      std::string reason = get_string(*choice, "finish_reason");
      if (!reason.empty()) state_.reply.finish_reason = std::move(reason);
    }
    // Every chunk has "usage": null but the last one before [DONE] (include_usage).
    if (const json* usage = find_object(*doc, "usage")) state_.reply.usage = openai_usage(*usage);
  }
};

}  // namespace

json openai_chat_body(const ChatRequest& request, bool max_completion_tokens) {
  json body = json::object();
  body["model"] = request.model;

  std::string system = request.system;
  // JSON mode (json_object) is refused with a 400 unless the word "JSON" appears in the
  // messages, so say it when the caller did not. (json_schema mode has no such rule.)
  if (request.json_output && !request.schema && !mentions_json(request)) {
    if (!system.empty()) system += "\n\n";
    system += detail::json_instruction(std::nullopt);
  }
  json messages = json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  for (const auto& m : request.messages) {
    messages.push_back({{"role", m.role}, {"content", m.content}});
  }
  body["messages"] = std::move(messages);

  if (request.max_tokens) {
    const char* key = max_completion_tokens ? "max_completion_tokens" : "max_tokens";
    body[key] = *request.max_tokens;
  }
  if (request.temperature) body["temperature"] = *request.temperature;
  if (request.schema) {
    // strict:false because strict mode rejects ordinary schemas (every property required,
    // additionalProperties:false everywhere); detour validates the answer itself.
    body["response_format"] = {
        {"type", "json_schema"},
        {"json_schema", {{"name", "answer"}, {"schema", *request.schema}, {"strict", false}}}};
  } else if (request.json_output) {
    body["response_format"] = {{"type", "json_object"}};
  }
  if (request.stream) {
    body["stream"] = true;
    // Without this a stream never reports usage, and the limiter needs it.
    body["stream_options"] = {{"include_usage", true}};
  }
  detail::merge_extra(body, request.extra);
  return body;
}

namespace {

class OpenAiProtocol final : public Protocol {
 public:
  std::string_view name() const override { return "openai"; }

  net::HttpRequest build_request(const Endpoint& endpoint,
                                 const ChatRequest& request) const override {
    json body = openai_chat_body(request, uses_max_completion_tokens(endpoint.base_url));

    net::HttpRequest http;
    http.method = "POST";
    http.url = detail::trim_base(endpoint.base_url) + "/chat/completions";
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
    if (const json* error = find_object(*doc, "error")) {
      result.error = openai_error(200, *error);
      result.problem = "the reply carries an error: " + result.error->message;
      return result;
    }
    const json* choice = first_choice(*doc);
    if (!choice) {
      result.problem = "the reply has no choices";
      return result;
    }
    const json* message = find_object(*choice, "message");
    if (!message) {
      result.problem = "the reply's choice has no message";
      return result;
    }
    auto content = content_text(*message);
    if (!content) {
      result.problem = "the reply's message content is neither text nor null";
      return result;
    }
    ChatReply reply;
    reply.content = std::move(*content);
    reply.finish_reason = get_string(*choice, "finish_reason");
    // Structured outputs put a refusal in message.refusal with content null and
    // finish_reason "stop".
    if (reply.content.empty()) reply.refusal = get_string(*message, "refusal");
    reply.served_model = get_string(*doc, "model");
    if (const json* usage = find_object(*doc, "usage")) reply.usage = openai_usage(*usage);
    result.reply = std::move(reply);
    return result;
  }

  ProviderError parse_error(int status, std::string_view body) const override {
    try {
      auto doc = parse_json(body);
      if (!doc || !doc->is_object()) return detail::unrecognised_error(status, body);
      if (const json* error = find_object(*doc, "error")) return openai_error(status, *error);
      // {"error": "model not found"}: Ollama and some proxies.
      std::string text = get_string(*doc, "error");
      if (!text.empty()) {
        ProviderError out;
        out.status = status;
        out.message = std::move(text);
        out.recognised = true;
        return out;
      }
      // Mistral: {"object":"error","message":…,"type":…,"param":…,"code":…}.
      if (get_string(*doc, "object") == "error") return openai_error(status, *doc);
    } catch (...) {
      // Field access is guarded; this only keeps an unexpected library throw in.
    }
    return detail::unrecognised_error(status, body);
  }

  std::unique_ptr<StreamDecoder> make_stream_decoder() const override {
    return std::make_unique<OpenAiStreamDecoder>();
  }

  net::HttpRequest build_models_request(const Endpoint& endpoint) const override {
    return detail::json_get(detail::trim_base(endpoint.base_url) + "/models",
                            auth_headers(endpoint));
  }

  std::vector<std::string> parse_models(std::string_view body) const override {
    return detail::strings_in_list(body, "data", "id");
  }

 private:
  // No key, no header: local servers (Ollama, llama.cpp) need none, and some reject a
  // malformed "Bearer " with nothing after it.
  static net::Headers auth_headers(const Endpoint& endpoint) {
    net::Headers headers;
    if (!endpoint.api_key.empty()) {
      headers.emplace_back("authorization", "Bearer " + endpoint.api_key);
    }
    return headers;
  }
};

}  // namespace

const Protocol& openai_protocol() {
  static const OpenAiProtocol protocol;
  return protocol;
}

}  // namespace detour::providers
