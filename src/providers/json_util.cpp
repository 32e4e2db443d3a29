#include "providers/json_util.hpp"

#include <cctype>

namespace detour::providers::detail {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

std::optional<json> parse_json(std::string_view body) {
  if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
  while (!body.empty() && is_space(body.front()))
    body.remove_prefix(1);
  if (body.empty()) return std::nullopt;
  try {
    json value = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return std::nullopt;
    return value;
  } catch (...) {
    return std::nullopt;  // allow_exceptions=false should make this unreachable; be sure
  }
}

const json* find(const json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end()) return nullptr;
  return &*it;
}

const json* find_object(const json& object, std::string_view key) {
  const json* value = find(object, key);
  return value && value->is_object() ? value : nullptr;
}

const json* find_array(const json& object, std::string_view key) {
  const json* value = find(object, key);
  return value && value->is_array() ? value : nullptr;
}

std::string get_string(const json& object, std::string_view key) {
  const json* value = find(object, key);
  if (!value || !value->is_string()) return {};
  return value->get_ref<const std::string&>();
}

std::optional<int64_t> get_int(const json& object, std::string_view key) {
  const json* value = find(object, key);
  if (!value) return std::nullopt;
  if (value->is_number_integer()) return value->get<int64_t>();
  if (value->is_number_unsigned()) {
    uint64_t u = value->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value->is_number_float()) {
    double d = value->get<double>();
    if (d >= 0 && d < 9.0e18 && d == static_cast<double>(static_cast<int64_t>(d))) {
      return static_cast<int64_t>(d);
    }
  }
  return std::nullopt;
}

std::string get_string_or_number(const json& object, std::string_view key) {
  const json* value = find(object, key);
  if (!value) return {};
  if (value->is_string()) return value->get_ref<const std::string&>();
  if (value->is_number_integer() || value->is_number_unsigned()) return value->dump();
  return {};
}

std::string dump(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

void merge_extra(json& body, const json& extra) {
  if (!extra.is_object()) return;
  for (auto it = extra.begin(); it != extra.end(); ++it)
    body[it.key()] = it.value();
}

std::string trim_base(std::string_view base_url) {
  while (!base_url.empty() && base_url.back() == '/')
    base_url.remove_suffix(1);
  return std::string(base_url);
}

std::string snippet(std::string_view body, size_t max_bytes) {
  std::string out;
  bool pending_space = false;
  for (char c : body) {
    if (is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) {
      if (out.size() + 1 >= max_bytes) break;
      out.push_back(' ');
      pending_space = false;
    }
    if (out.size() >= max_bytes) break;
    out.push_back(c);
  }
  if (out.size() >= max_bytes) {
    // Do not leave half a UTF-8 character at the end: drop continuation bytes and the lead
    // byte they belong to.
    size_t end = out.size();
    size_t i = end;
    while (i > 0 && (static_cast<unsigned char>(out[i - 1]) & 0xC0) == 0x80)
      --i;
    if (i > 0 && (static_cast<unsigned char>(out[i - 1]) & 0x80)) {
      unsigned char lead = static_cast<unsigned char>(out[i - 1]);
      size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
      if (end - (i - 1) < need) out.resize(i - 1);
    }
  }
  return out;
}

ProviderError unrecognised_error(int status, std::string_view body) {
  ProviderError error;
  error.status = status;
  error.message = snippet(body);
  error.recognised = false;
  return error;
}

bool contains_icase(std::string_view haystack, std::string_view needle) {
  if (needle.empty()) return true;
  if (haystack.size() < needle.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    size_t j = 0;
    while (j < needle.size() && std::tolower(static_cast<unsigned char>(haystack[i + j])) ==
                                    std::tolower(static_cast<unsigned char>(needle[j]))) {
      ++j;
    }
    if (j == needle.size()) return true;
  }
  return false;
}

std::string json_instruction(const std::optional<json>& schema) {
  std::string text =
      "Respond with a single JSON object and nothing else: no prose, no Markdown code fences.";
  if (schema) {
    text += " The JSON object must conform to this JSON Schema:\n";
    text += dump(*schema);
  }
  return text;
}

void SseStreamDecoder::feed(std::string_view bytes, const TextFn& on_text) {
  parser_.feed(
      bytes, [&](const net::SseEvent& event) { on_event(event, on_text); },
      [&](std::string_view line) { on_other_line(line, on_text); });
}

void SseStreamDecoder::finish(const TextFn& on_text) {
  parser_.finish([&](const net::SseEvent& event) { on_event(event, on_text); },
                 [&](std::string_view line) { on_other_line(line, on_text); });
  on_finish(on_text);
}

void SseStreamDecoder::emit_text(std::string_view text, const TextFn& on_text) {
  if (text.empty()) return;
  state_.reply.content.append(text);
  if (on_text) on_text(text);
}

void SseStreamDecoder::mark_malformed(std::string_view what) {
  malformed_ = true;
  state_.complete = false;
  if (state_.problem.empty()) state_.problem = std::string(what);
}

net::HttpRequest json_get(std::string url, net::Headers headers) {
  net::HttpRequest http;
  http.method = "GET";
  http.url = std::move(url);
  http.headers = std::move(headers);
  http.headers.emplace_back("accept", "application/json");
  return http;
}

std::vector<std::string> strings_in_list(std::string_view body, std::string_view array_key,
                                         std::string_view field) {
  std::vector<std::string> values;
  auto doc = parse_json(body);
  if (!doc) return values;
  if (const json* list = find_array(*doc, array_key)) {
    for (const auto& item : *list) {
      std::string value = get_string(item, field);
      if (!value.empty()) values.push_back(std::move(value));
    }
  }
  return values;
}

}  // namespace detour::providers::detail

namespace detour::providers {

std::string body_excerpt(std::string_view body, size_t max_bytes) {
  return detail::snippet(body, max_bytes);
}

}  // namespace detour::providers
