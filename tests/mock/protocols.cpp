#include "protocols.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <stdexcept>

namespace detour::mock {

namespace {

using nlohmann::json;

constexpr std::string_view kReplyPrefix = "mock reply to: ";
constexpr std::string_view kRefusal = "I'm sorry, but I can't help with that.";

// Text of a message content: a string, or an array of parts/blocks with "text" fields.
std::string text_of(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (!content.is_array()) return out;
  for (const auto& part : content) {
    if (!part.is_object() || !part.contains("text") || !part["text"].is_string()) continue;
    if (!out.empty()) out += "\n";
    out += part["text"].get<std::string>();
  }
  return out;
}

// Characters, not bytes: UTF-8 continuation bytes are not counted.
std::int64_t count_chars(std::string_view s) {
  std::int64_t n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

bool contains_json_word(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s.find("json") != std::string::npos;
}

const json* find_either(const json& obj, const char* camel, const char* snake) {
  if (!obj.is_object()) return nullptr;
  if (obj.contains(camel)) return &obj[camel];
  if (obj.contains(snake)) return &obj[snake];
  return nullptr;
}

std::optional<std::int64_t> int_field(const json& obj, const char* key) {
  if (obj.is_object() && obj.contains(key) && obj[key].is_number_integer())
    return obj[key].get<std::int64_t>();
  return std::nullopt;
}

json params_of(const json& body) {
  json p = json::object();
  for (const auto& [k, v] : body.items())
    if (k != "messages" && k != "contents" && k != "system" && k != "systemInstruction" &&
        k != "system_instruction")
      p[k] = v;
  return p;
}

std::string parse_openai(const json& body, ChatRequest& r) {
  if (!body.contains("model") || !body["model"].is_string())
    return "you must provide a model parameter";
  if (!body.contains("messages") || !body["messages"].is_array())
    return "Missing required parameter: 'messages'.";
  if (body["messages"].empty()) return "[] is too short - 'messages'";
  r.model = body["model"].get<std::string>();
  std::int64_t chars = 0;
  for (const auto& m : body["messages"]) {
    if (!m.is_object() || !m.contains("role"))
      return "Missing required parameter: 'messages[].role'.";
    std::string text = m.contains("content") ? text_of(m["content"]) : "";
    chars += count_chars(text);
    std::string role = m["role"].is_string() ? m["role"].get<std::string>() : "";
    if (role == "system" || role == "developer") r.system += (r.system.empty() ? "" : "\n") + text;
    if (role == "user") r.prompt = text;
  }
  r.input_tokens = (chars + 3) / 4;
  r.stream = body.contains("stream") && body["stream"].is_boolean() && body["stream"].get<bool>();
  if (body.contains("stream_options") && body["stream_options"].is_object())
    r.include_usage = body["stream_options"].value("include_usage", false);
  r.max_tokens = int_field(body, "max_completion_tokens");
  if (!r.max_tokens) r.max_tokens = int_field(body, "max_tokens");
  if (body.contains("response_format") && body["response_format"].is_object()) {
    std::string type = body["response_format"].value("type", "");
    r.json_mode = type == "json_object" || type == "json_schema";
  }
  return {};
}

std::string parse_anthropic(const json& body, ChatRequest& r) {
  if (!body.contains("model") || !body["model"].is_string()) return "model: Field required";
  if (!body.contains("max_tokens")) return "max_tokens: Field required";
  if (!body.contains("messages") || !body["messages"].is_array()) return "messages: Field required";
  r.model = body["model"].get<std::string>();
  if (body.contains("system")) r.system = text_of(body["system"]);
  std::int64_t chars = count_chars(r.system);
  for (const auto& m : body["messages"]) {
    if (!m.is_object() || !m.contains("role")) return "messages.0.role: Field required";
    std::string text = m.contains("content") ? text_of(m["content"]) : "";
    chars += count_chars(text);
    if (m["role"] == "user") r.prompt = text;
  }
  r.input_tokens = (chars + 3) / 4;
  r.stream = body.contains("stream") && body["stream"].is_boolean() && body["stream"].get<bool>();
  r.max_tokens = int_field(body, "max_tokens");
  // Anthropic has no JSON mode: callers ask for JSON in the system prompt.
  r.json_mode = contains_json_word(r.system) || body.contains("output_format");
  return {};
}

std::string parse_gemini(const json& body, ChatRequest& r, const GeminiTarget& target) {
  const json* contents = find_either(body, "contents", "contents");
  if (!contents || !contents->is_array() || contents->empty())
    return "* GenerateContentRequest.contents: contents is not specified";
  if (!is_utf8(target.model)) return "Invalid model name: the model in the URL is not valid UTF-8.";
  r.model = target.model;
  r.stream = target.stream && target.sse;
  r.gemini_array = target.stream && !target.sse;
  if (const json* si = find_either(body, "systemInstruction", "system_instruction"))
    if (si->is_object() && si->contains("parts")) r.system = text_of((*si)["parts"]);
  std::int64_t chars = count_chars(r.system);
  for (const auto& c : *contents) {
    if (!c.is_object()) continue;
    std::string text = c.contains("parts") ? text_of(c["parts"]) : "";
    chars += count_chars(text);
    // A role that is not a string is Gemini's 400 (below); a missing one means the user.
    if (c.contains("role") && !c["role"].is_string())
      return "Invalid value at 'contents[].role' (TYPE_STRING)";
    if (c.value("role", "user") == "user") r.prompt = text;
  }
  r.input_tokens = (chars + 3) / 4;
  if (const json* gc = find_either(body, "generationConfig", "generation_config")) {
    if (const json* mt = find_either(*gc, "maxOutputTokens", "max_output_tokens"))
      if (mt->is_number_integer()) r.max_tokens = mt->get<std::int64_t>();
    if (const json* mime = find_either(*gc, "responseMimeType", "response_mime_type"))
      r.json_mode = mime->is_string() && mime->get<std::string>() == "application/json";
  }
  return {};
}

// Splits text into pieces, one per word, each keeping the whitespace before it, so the pieces
// concatenate back to exactly the text (trailing whitespace rides on the last piece).
std::vector<std::string> split_pieces(const std::string& text) {
  auto space = [&](std::size_t i) {
    return std::isspace(static_cast<unsigned char>(text[i])) != 0;
  };
  std::vector<std::string> pieces;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && space(i))
      ++i;
    while (i < text.size() && !space(i))
      ++i;
    pieces.push_back(text.substr(start, i - start));
  }
  if (pieces.size() > 1 && count_words(pieces.back()) == 0) {
    std::string tail = std::move(pieces.back());
    pieces.pop_back();
    pieces.back() += tail;
  }
  return pieces;
}

std::int64_t now_s() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

json openai_usage(const Reply& reply) {
  return {{"prompt_tokens", reply.input_tokens},
          {"completion_tokens", reply.output_tokens},
          {"total_tokens", reply.input_tokens + reply.output_tokens},
          {"prompt_tokens_details", {{"cached_tokens", 0}}},
          {"completion_tokens_details", {{"reasoning_tokens", 0}}}};
}

json gemini_chunk(const ChatRequest& req, const Reply& reply, const std::string& text, bool last,
                  const std::string& id) {
  json candidate = {{"content", {{"parts", json::array({{{"text", text}}})}, {"role", "model"}}},
                    {"index", 0}};
  json usage = {{"promptTokenCount", reply.input_tokens}, {"totalTokenCount", reply.input_tokens}};
  if (last) {
    candidate["finishReason"] = finish_reason(Protocol::gemini, reply);
    // A candidate stopped for safety names the category that stopped it.
    if (candidate["finishReason"] == "SAFETY")
      candidate["safetyRatings"] = json::array({{{"category", "HARM_CATEGORY_DANGEROUS_CONTENT"},
                                                 {"probability", "HIGH"},
                                                 {"blocked", true}}});
    usage = {{"promptTokenCount", reply.input_tokens},
             {"candidatesTokenCount", reply.output_tokens},
             {"totalTokenCount", reply.input_tokens + reply.output_tokens}};
  }
  return {{"candidates", json::array({candidate})},
          {"usageMetadata", usage},
          {"modelVersion", req.model},
          {"responseId", id}};
}

SseEvent anthropic_event(const std::string& name, const json& data, bool delta = false,
                         bool final = false) {
  return {"event: " + name + "\ndata: " + data.dump() + "\n\n", delta, final};
}

std::string anthropic_list(const std::vector<std::string>& models, bool has_more) {
  json data = json::array();
  for (const auto& m : models)
    data.push_back(json::parse(model_body(Protocol::anthropic, m)));
  return json{{"data", data},
              {"has_more", has_more},
              {"first_id", models.empty() ? json(nullptr) : json(models.front())},
              {"last_id", models.empty() ? json(nullptr) : json(models.back())}}
      .dump();
}

}  // namespace

bool is_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= text.size()) return false;
      const auto d = static_cast<unsigned char>(text[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8 (RFC 3629).
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

std::string utf8_prefix(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t end = max;
  // Back off continuation bytes to the start of the character that crosses `max`.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
    --end;
  return std::string(text.substr(0, end));
}

std::string_view to_string(Protocol protocol) {
  switch (protocol) {
    case Protocol::openai:
      return "openai";
    case Protocol::anthropic:
      return "anthropic";
    case Protocol::gemini:
      return "gemini";
  }
  return "openai";
}

std::int64_t count_words(std::string_view text) {
  std::int64_t n = 0;
  bool in_word = false;
  for (char c : text) {
    bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

std::variant<ChatRequest, std::string> parse_chat(Protocol protocol, const std::string& body,
                                                  const GeminiTarget& gemini) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    switch (protocol) {
      case Protocol::openai:
        return std::string(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)");
      case Protocol::anthropic:
        return std::string("There was an issue with your request body: invalid JSON");
      case Protocol::gemini:
        return std::string("Invalid JSON payload received.");
    }
  }
  ChatRequest r;
  r.protocol = protocol;
  std::string error;
  // A field of an unexpected type that a parser above does not check is a 400, as a provider's
  // schema validation would give, never an exception out of the mock (tests/fuzz found two).
  try {
    switch (protocol) {
      case Protocol::openai:
        error = parse_openai(j, r);
        break;
      case Protocol::anthropic:
        error = parse_anthropic(j, r);
        break;
      case Protocol::gemini:
        error = parse_gemini(j, r, gemini);
        break;
    }
  } catch (const json::exception& e) {
    error = std::string("Invalid request body: ") + e.what();
  }
  if (!error.empty()) return error;
  r.params = params_of(j);
  return r;
}

Reply make_reply(const ChatRequest& request, ContentFault fault) {
  std::string text = std::string(kReplyPrefix) + request.prompt;
  if (request.json_mode) text = json{{"reply", text}}.dump();
  switch (fault) {
    case ContentFault::none:
      break;
    case ContentFault::empty:
      text.clear();
      break;
    case ContentFault::refusal:
      text = kRefusal;
      break;
    case ContentFault::wrong_schema:
      text = R"({"unexpected": true})";
      break;
  }
  Reply reply;
  reply.pieces = split_pieces(text);
  if (request.max_tokens && *request.max_tokens >= 0 &&
      static_cast<std::size_t>(*request.max_tokens) < reply.pieces.size()) {
    reply.pieces.resize(static_cast<std::size_t>(*request.max_tokens));
    reply.truncated = true;
  }
  for (const auto& p : reply.pieces)
    reply.content += p;
  reply.input_tokens = request.input_tokens;
  reply.output_tokens = count_words(reply.content);
  return reply;
}

void cut_short(Reply& reply) {
  if (reply.pieces.size() > 1) reply.pieces.resize(reply.pieces.size() / 2);
  reply.content.clear();
  for (const auto& p : reply.pieces)
    reply.content += p;
  reply.output_tokens = count_words(reply.content);
}

std::string finish_reason(Protocol protocol, const Reply& reply) {
  return reply.finish.empty() ? finish_reason(protocol, reply.truncated) : reply.finish;
}

std::string finish_reason(Protocol protocol, bool truncated) {
  switch (protocol) {
    case Protocol::openai:
      return truncated ? "length" : "stop";
    case Protocol::anthropic:
      return truncated ? "max_tokens" : "end_turn";
    case Protocol::gemini:
      return truncated ? "MAX_TOKENS" : "STOP";
  }
  return "stop";
}

std::string reply_body(const ChatRequest& req, const Reply& reply, const std::string& id) {
  switch (req.protocol) {
    case Protocol::openai: {
      json message = {{"role", "assistant"},
                      {"content", reply.content},
                      {"refusal", nullptr},
                      {"annotations", json::array()}};
      return json{
          {"id", "chatcmpl-" + id},
          {"object", "chat.completion"},
          {"created", now_s()},
          {"model", req.model},
          {"choices", json::array({{{"index", 0},
                                    {"message", message},
                                    {"logprobs", nullptr},
                                    {"finish_reason", finish_reason(req.protocol, reply)}}})},
          {"usage", openai_usage(reply)},
          {"system_fingerprint", "fp_mock"}}
          .dump();
    }
    case Protocol::anthropic:
      return json{{"id", "msg_" + id},
                  {"type", "message"},
                  {"role", "assistant"},
                  {"model", req.model},
                  {"content", json::array({{{"type", "text"}, {"text", reply.content}}})},
                  {"stop_reason", finish_reason(req.protocol, reply)},
                  {"stop_sequence", nullptr},
                  {"usage",
                   {{"input_tokens", reply.input_tokens},
                    {"output_tokens", reply.output_tokens},
                    {"cache_creation_input_tokens", 0},
                    {"cache_read_input_tokens", 0}}}}
          .dump();
    case Protocol::gemini: {
      if (!req.gemini_array) return gemini_chunk(req, reply, reply.content, true, id).dump();
      // streamGenerateContent without alt=sse: the same chunks as the stream, as one array.
      json arr = json::array();
      for (const auto& ev : stream_events(req, reply, id))
        arr.push_back(json::parse(ev.text.substr(6)));
      return arr.dump();
    }
  }
  return "{}";
}

std::string sse_data(Protocol protocol, const std::string& json_text) {
  // Gemini's SSE really is CRLF-framed; a client must accept both.
  return "data: " + json_text + (protocol == Protocol::gemini ? "\r\n\r\n" : "\n\n");
}

std::vector<SseEvent> stream_events(const ChatRequest& req, const Reply& reply,
                                    const std::string& id) {
  std::vector<SseEvent> events;
  std::string finish = finish_reason(req.protocol, reply);
  switch (req.protocol) {
    case Protocol::openai: {
      std::int64_t created = now_s();
      auto chunk = [&](json delta, json fin) {
        json c = {{"id", "chatcmpl-" + id},
                  {"object", "chat.completion.chunk"},
                  {"created", created},
                  {"model", req.model},
                  {"system_fingerprint", "fp_mock"},
                  {"choices", json::array({{{"index", 0},
                                            {"delta", std::move(delta)},
                                            {"logprobs", nullptr},
                                            {"finish_reason", std::move(fin)}}})}};
        if (req.include_usage) c["usage"] = nullptr;
        return c;
      };
      events.push_back(
          {sse_data(req.protocol,
                    chunk({{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}, nullptr)
                        .dump()),
           false, false});
      for (const auto& p : reply.pieces)
        events.push_back(
            {sse_data(req.protocol, chunk({{"content", p}}, nullptr).dump()), true, false});
      events.push_back({sse_data(req.protocol, chunk(json::object(), finish).dump()), false, true});
      if (req.include_usage) {
        json u = chunk(json::object(), nullptr);
        u["choices"] = json::array();
        u["usage"] = openai_usage(reply);
        events.push_back({sse_data(req.protocol, u.dump()), false, true});
      }
      events.push_back({"data: [DONE]\n\n", false, true});
      break;
    }
    case Protocol::anthropic: {
      json message = {{"id", "msg_" + id},
                      {"type", "message"},
                      {"role", "assistant"},
                      {"model", req.model},
                      {"content", json::array()},
                      {"stop_reason", nullptr},
                      {"stop_sequence", nullptr},
                      {"usage", {{"input_tokens", reply.input_tokens}, {"output_tokens", 1}}}};
      events.push_back(
          anthropic_event("message_start", {{"type", "message_start"}, {"message", message}}));
      events.push_back(anthropic_event("content_block_start",
                                       {{"type", "content_block_start"},
                                        {"index", 0},
                                        {"content_block", {{"type", "text"}, {"text", ""}}}}));
      events.push_back(anthropic_event("ping", {{"type", "ping"}}));
      for (const auto& p : reply.pieces)
        events.push_back(anthropic_event("content_block_delta",
                                         {{"type", "content_block_delta"},
                                          {"index", 0},
                                          {"delta", {{"type", "text_delta"}, {"text", p}}}},
                                         true));
      events.push_back(anthropic_event(
          "content_block_stop", {{"type", "content_block_stop"}, {"index", 0}}, false, true));
      events.push_back(
          anthropic_event("message_delta",
                          {{"type", "message_delta"},
                           {"delta", {{"stop_reason", finish}, {"stop_sequence", nullptr}}},
                           {"usage", {{"output_tokens", reply.output_tokens}}}},
                          false, true));
      events.push_back(anthropic_event("message_stop", {{"type", "message_stop"}}, false, true));
      break;
    }
    case Protocol::gemini: {
      // No terminator: the last chunk carries the last text, finishReason and full usage.
      if (reply.pieces.empty()) {
        events.push_back(
            {sse_data(req.protocol, gemini_chunk(req, reply, "", true, id).dump()), true, true});
        break;
      }
      for (std::size_t i = 0; i < reply.pieces.size(); ++i) {
        bool last = i + 1 == reply.pieces.size();
        events.push_back(
            {sse_data(req.protocol, gemini_chunk(req, reply, reply.pieces[i], last, id).dump()),
             true, last});
      }
      break;
    }
  }
  return events;
}

std::string models_body(Protocol protocol, const std::vector<std::string>& models) {
  json data = json::array();
  for (const auto& m : models)
    data.push_back(json::parse(model_body(protocol, m)));
  switch (protocol) {
    case Protocol::openai:
      return json{{"object", "list"}, {"data", data}}.dump();
    case Protocol::anthropic:
      return anthropic_list(models, false);
    case Protocol::gemini:
      return json{{"models", data}}.dump();
  }
  return "{}";
}

std::string model_body(Protocol protocol, const std::string& model) {
  switch (protocol) {
    case Protocol::openai:
      return json{
          {"id", model}, {"object", "model"}, {"created", 1700000000}, {"owned_by", "detour-mock"}}
          .dump();
    case Protocol::anthropic:
      return json{{"type", "model"},
                  {"id", model},
                  {"display_name", model},
                  {"created_at", "2025-01-01T00:00:00Z"}}
          .dump();
    case Protocol::gemini:
      return json{{"name", "models/" + model},
                  {"version", "001"},
                  {"displayName", model},
                  {"inputTokenLimit", 1048576},
                  {"outputTokenLimit", 8192},
                  {"supportedGenerationMethods", {"generateContent", "countTokens"}}}
          .dump();
  }
  return "{}";
}

ModelsPage anthropic_models_page(const std::vector<std::string>& models,
                                 const std::optional<std::string>& limit,
                                 const std::optional<std::string>& after_id,
                                 const std::optional<std::string>& before_id) {
  // Anthropic's limits and its validation wording (platform.claude.com, "List Models").
  long long n = 20;
  if (limit) {
    std::size_t used = 0;
    try {
      n = std::stoll(*limit, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != limit->size())
      return {{}, "limit: Input should be a valid integer, unable to parse string as an integer"};
    if (n < 1) return {{}, "limit: Input should be greater than or equal to 1"};
    if (n > 1000) return {{}, "limit: Input should be less than or equal to 1000"};
  }
  if (after_id && before_id) return {{}, "after_id and before_id cannot both be given"};
  auto size = static_cast<std::size_t>(n);
  // The listing is sorted, so "after x" is everything greater than x, listed or not.
  auto first = models.begin();
  auto last = models.end();
  if (after_id) first = std::upper_bound(models.begin(), models.end(), *after_id);
  if (before_id) last = std::lower_bound(models.begin(), models.end(), *before_id);
  auto available = static_cast<std::size_t>(last - first);
  bool has_more = available > size;  // more in the direction the page was asked for
  if (has_more) {
    // Before a cursor, the page is the one right before it: the last `limit` of those.
    if (before_id)
      first = last - static_cast<std::ptrdiff_t>(size);
    else
      last = first + static_cast<std::ptrdiff_t>(size);
  }
  return {anthropic_list({first, last}, has_more), {}};
}

}  // namespace detour::mock
