#include "batch/input_line.hpp"

#include <cstring>
#include <limits>

#include "batch/id_scan.hpp"

namespace detour::batch {

namespace {

using ojson = nlohmann::ordered_json;

// A problem found while reading a line's fields; parse_line turns it into the BadLine.
struct Problem {
  std::string text;
};

[[noreturn]] void problem(std::string text) {
  throw Problem{std::move(text)};
}

std::string in_quotes(std::string_view name) {
  return "\"" + std::string(name) + "\"";
}

// A value as it appears in a message, cut short: enough to recognise it.
std::string shown(const ojson& value) {
  std::string text = value.dump(-1, ' ', false, ojson::error_handler_t::replace);
  if (text.size() > 60) {
    std::size_t cut = 57;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
      --cut;
    text = text.substr(0, cut) + "...";
  }
  return text;
}

// The field, or nullptr when it is absent or null: JSON writers often spell "not set" as null.
const ojson* field(const ojson& object, std::string_view key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string string_field(const ojson& value, const std::string& name) {
  if (!value.is_string()) problem(name + " must be a string");
  return value.get<std::string>();
}

std::int64_t positive_integer(const ojson& value, const std::string& name) {
  if (value.is_number_unsigned()) {
    const auto n = value.get<std::uint64_t>();
    if (n > 0 && n <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return static_cast<std::int64_t>(n);
  } else if (value.is_number_integer() && value.get<std::int64_t>() > 0) {
    return value.get<std::int64_t>();
  }
  problem(name + " must be a positive integer");
}

double number(const ojson& value, const std::string& name) {
  if (!value.is_number()) problem(name + " must be a number");
  return value.get<double>();
}

nlohmann::json schema_object(const ojson& value, const std::string& name) {
  if (!value.is_object()) problem(name + " must be a JSON Schema object");
  return nlohmann::json(value);
}

// Message content: a string, or OpenAI's array of parts of which only text parts are read;
// their texts are concatenated as the provider would read them, with nothing between.
std::string content_text(const ojson& content, const std::string& name) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) problem(name + " must be a string or an array of text parts");
  std::string text;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const ojson& part = content[i];
    const std::string at = name.substr(0, name.size() - 1) + "[" + std::to_string(i) + "]\"";
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      problem(at + " must be an object with a \"type\"");
    const auto type = part["type"].get<std::string>();
    if (type != "text") problem(at + " has type " + in_quotes(type) + "; only text parts are read");
    if (!part.contains("text") || !part["text"].is_string())
      problem(at + " must have a string \"text\"");
    text += part["text"].get<std::string>();
  }
  return text;
}

// Messages of either format. System and developer messages become the request's system
// text (after any "system" field), joined by blank lines; the rest must be user/assistant.
void read_messages(const ojson& messages, const std::string& name, providers::ChatRequest& req) {
  if (!messages.is_array() || messages.empty())
    problem(name + " must be a non-empty array of {\"role\", \"content\"} objects");
  const std::string path = name.substr(0, name.size() - 1);  // without the closing quote
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    const std::string at = path + "[" + std::to_string(i) + "]";
    if (!m.is_object()) problem(at + "\" must be an object with \"role\" and \"content\"");
    if (!m.contains("role") || !m["role"].is_string()) problem(at + ".role\" must be a string");
    const auto role = m["role"].get<std::string>();
    if (!m.contains("content")) problem(at + ".content\" is missing");
    std::string text = content_text(m["content"], at + ".content\"");
    if (role == "system" || role == "developer") {
      if (!req.system.empty()) req.system += "\n\n";
      req.system += text;
    } else if (role == "user" || role == "assistant") {
      req.messages.push_back({role, std::move(text)});
    } else {
      problem(at + ".role\" " + in_quotes(role) +
              " is not supported (system, developer, user or assistant)");
    }
  }
  if (req.messages.empty()) problem(name + " has no user or assistant message");
}

void read_simple(const ojson& line, LineRequest& out) {
  providers::ChatRequest& req = out.request;
  if (const ojson* v = field(line, "system")) req.system = string_field(*v, "\"system\"");
  const ojson* prompt = field(line, "prompt");
  const ojson* messages = field(line, "messages");
  if (prompt && messages) problem("both \"prompt\" and \"messages\"; give one of them");
  if (!prompt && !messages) problem("no \"prompt\" or \"messages\"");
  if (prompt) {
    std::string text = string_field(*prompt, "\"prompt\"");
    if (text.empty()) problem("\"prompt\" is empty");
    req.messages.push_back({"user", std::move(text)});
  } else {
    read_messages(*messages, "\"messages\"", req);
  }
  if (const ojson* v = field(line, "model")) out.model = string_field(*v, "\"model\"");
  if (const ojson* v = field(line, "max_tokens"))
    req.max_tokens = positive_integer(*v, "\"max_tokens\"");
  if (const ojson* v = field(line, "temperature")) req.temperature = number(*v, "\"temperature\"");
  if (const ojson* v = field(line, "schema")) req.schema = schema_object(*v, "\"schema\"");
}

void read_response_format(const ojson& format, providers::ChatRequest& req) {
  if (!format.is_object() || !format.contains("type") || !format["type"].is_string())
    problem("\"body.response_format\" must be an object with a string \"type\"");
  const auto type = format["type"].get<std::string>();
  if (type == "text") return;
  if (type == "json_object") {
    req.json_output = true;
  } else if (type == "json_schema") {
    const ojson* spec = field(format, "json_schema");
    if (!spec || !spec->is_object() || !field(*spec, "schema"))
      problem("\"body.response_format.json_schema.schema\" is missing");
    req.schema = schema_object((*spec)["schema"], "\"body.response_format.json_schema.schema\"");
  } else {
    problem("\"body.response_format.type\" " + in_quotes(type) +
            " is not supported (text, json_object or json_schema)");
  }
}

void read_openai(const ojson& line, LineRequest& out) {
  out.openai_format = true;
  const ojson* method = field(line, "method");
  if (!method) problem("\"method\" is missing (it must be \"POST\")");
  if (*method != "POST") problem("\"method\" must be \"POST\", not " + shown(*method));
  const ojson* url = field(line, "url");
  if (!url) problem("\"url\" is missing (it must be \"/v1/chat/completions\")");
  if (*url != "/v1/chat/completions")
    problem("\"url\" " + shown(*url) + " is not supported (only \"/v1/chat/completions\")");
  const ojson* body = field(line, "body");
  if (!body || !body->is_object()) problem("\"body\" must be an object");

  providers::ChatRequest& req = out.request;
  std::optional<std::int64_t> max_tokens, max_completion_tokens;
  bool has_messages = false;
  for (auto it = body->begin(); it != body->end(); ++it) {
    const std::string& key = it.key();
    const ojson& value = it.value();
    const std::string name = in_quotes("body." + key);
    if (key == "stream" || key == "stream_options") continue;  // detour decides streaming
    if (key == "messages") {
      read_messages(value, name, req);
      has_messages = true;
      continue;
    }
    const bool modelled = key == "model" || key == "max_tokens" || key == "max_completion_tokens" ||
                          key == "temperature" || key == "response_format";
    if (!modelled) {
      req.extra[key] = nlohmann::json(value);
    } else if (value.is_null()) {
      // not set
    } else if (key == "model") {
      out.model = string_field(value, name);
    } else if (key == "max_tokens") {
      max_tokens = positive_integer(value, name);
    } else if (key == "max_completion_tokens") {
      max_completion_tokens = positive_integer(value, name);
    } else if (key == "temperature") {
      req.temperature = number(value, name);
    } else {
      read_response_format(value, req);
    }
  }
  if (!has_messages) problem("\"body.messages\" is missing");
  // The newer name wins: it is what OpenAI reads when a body has both.
  req.max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
}

bool is_openai_line(const ojson& line) {
  return line.contains("custom_id") || line.contains("body");
}

// The id rule of both formats (see the header); `problem_text` is set when a given id is wrong.
std::string id_of(const ojson& line, std::uint64_t line_no, std::string& problem_text) {
  const char* key = is_openai_line(line) ? "custom_id" : "id";
  const ojson* id = field(line, key);
  if (!id) return std::to_string(line_no);
  if (id->is_string() && !id->get_ref<const std::string&>().empty()) return id->get<std::string>();
  if (id->is_number_unsigned()) return std::to_string(id->get<std::uint64_t>());
  if (id->is_number_integer()) return std::to_string(id->get<std::int64_t>());
  problem_text = id->is_string() ? in_quotes(key) + " is empty"
                                 : in_quotes(key) + " must be a string or an integer";
  return std::to_string(line_no);
}

// Every invalid byte becomes U+FFFD, so that a line with a stray byte still yields its id
// and metadata for the bad_input line. Only called on lines that failed invalid_utf8_at.
std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 16);
  while (!text.empty()) {
    const auto bad = invalid_utf8_at(text);
    out.append(text.substr(0, bad.value_or(text.size())));
    if (!bad) break;
    out += "\xEF\xBF\xBD";
    text.remove_prefix(*bad + 1);
  }
  return out;
}

// nlohmann's message without its prefix and the echo of the text read. Bytes are counted
// from 1 in messages, as nlohmann counts them.
std::string parse_reason(const nlohmann::json::parse_error& e) {
  std::string what = e.what();
  if (auto column = what.find("column "); column != std::string::npos) {
    if (auto colon = what.find(": ", column); colon != std::string::npos)
      what = what.substr(colon + 2);
  }
  if (auto last = what.find("; last read"); last != std::string::npos) what.resize(last);
  if (what.size() > 120) what.resize(120);
  return what + " at byte " + std::to_string(e.byte);
}

// Finds the id of a line as id_of would, without building the document: the top-level keys
// "id", "custom_id" and "body" are watched, everything else is only checked for validity by
// the same parser, so both functions agree on which lines are JSON objects. The last of
// repeated keys wins, as in the parsed document.
class IdSax {
 public:
  using json = nlohmann::json;

  bool null() { return value(std::nullopt); }
  bool boolean(bool) { return value(std::nullopt); }
  bool number_integer(json::number_integer_t n) { return value(std::to_string(n)); }
  bool number_unsigned(json::number_unsigned_t n) { return value(std::to_string(n)); }
  bool number_float(json::number_float_t, const json::string_t&) { return value(std::nullopt); }
  bool string(json::string_t& s) { return value(s.empty() ? std::nullopt : std::optional(s)); }
  bool binary(json::binary_t&) { return value(std::nullopt); }
  bool start_object(std::size_t) {
    if (depth_ == 0) object_ = true;
    value(std::nullopt);
    ++depth_;
    return true;
  }
  bool end_object() {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) {
    value(std::nullopt);
    ++depth_;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  bool key(json::string_t& k) {
    if (depth_ != 1) return true;
    watched_ = k == "id" ? &id_ : k == "custom_id" ? &custom_id_ : nullptr;
    if (k == "custom_id" || k == "body") openai_ = true;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

  // The id, once the whole line has parsed.
  std::string id(std::uint64_t line_no) const {
    const auto& text = openai_ ? custom_id_ : id_;
    return object_ && text ? *text : std::to_string(line_no);
  }

 private:
  // A value right under the top-level object belongs to the key just read.
  bool value(std::optional<std::string> text) {
    if (depth_ == 1 && watched_) *watched_ = std::move(text);
    watched_ = nullptr;
    return true;
  }

  int depth_ = 0;
  bool object_ = false;
  bool openai_ = false;  // a "custom_id" or "body" key: an OpenAI Batch API line
  std::optional<std::string> id_, custom_id_;
  std::optional<std::string>* watched_ = nullptr;
};

}  // namespace

std::optional<std::size_t> invalid_utf8_at(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // Eight ASCII bytes at a time: most of a JSONL file is ASCII.
    if (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, s + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlong forms
      if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // no overlong forms
      if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k)
      if ((s[i + k] & 0xC0) != 0x80) return i;
    i += len;
  }
  return std::nullopt;
}

bool is_blank(std::string_view text) {
  return text.find_first_not_of(" \t\r") == std::string_view::npos;
}

BadLine too_long_line(std::uint64_t line_no, std::size_t limit) {
  return BadLine{line_no, std::to_string(line_no),
                 "line " + std::to_string(line_no) + ": longer than the limit of " +
                     std::to_string(limit) + " bytes",
                 std::nullopt};
}

ParsedLine parse_line(std::string_view text, std::uint64_t line_no) {
  const std::string where = "line " + std::to_string(line_no) + ": ";
  BadLine bad{line_no, std::to_string(line_no), "", std::nullopt};

  const auto bad_byte = invalid_utf8_at(text);
  std::string repaired;
  if (bad_byte) {
    repaired = replace_invalid_utf8(text);
    text = repaired;
  }
  std::string problem_text;  // the first thing wrong with the line as a whole
  ojson line;
  try {
    line = ojson::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    problem_text = "not valid JSON: " + parse_reason(e);
  } catch (const nlohmann::json::out_of_range&) {
    // A number no double holds ("2e822"). It used to escape and end the whole batch with an
    // internal error (found by tests/fuzz/fuzz_batch_line.cpp).
    problem_text = "not valid JSON: a number is too large";
  }
  if (problem_text.empty() && !line.is_object())
    problem_text = std::string("a line must be a JSON object, not ") + line.type_name();
  if (problem_text.empty()) {
    bad.id = id_of(line, line_no, problem_text);
    if (const ojson* metadata = field(line, "metadata")) {
      if (metadata->is_object())
        bad.metadata = *metadata;
      else if (problem_text.empty())
        problem_text = "\"metadata\" must be an object";
    }
  }
  // A stray byte is named even when the repaired line parses: it is what the user must fix.
  if (bad_byte) problem_text = "not valid UTF-8 at byte " + std::to_string(*bad_byte + 1);
  if (!problem_text.empty()) {
    bad.message = where + problem_text;
    return bad;
  }

  LineRequest request;
  request.line_no = line_no;
  request.id = bad.id;
  try {
    if (is_openai_line(line))
      read_openai(line, request);
    else
      read_simple(line, request);
  } catch (const Problem& p) {
    bad.message = where + p.text;
    return bad;
  }
  request.metadata = std::move(bad.metadata);
  return request;
}

std::string line_id(std::string_view text, std::uint64_t line_no) {
  std::string repaired;
  if (invalid_utf8_at(text)) {
    repaired = replace_invalid_utf8(text);
    text = repaired;
  } else if (auto scanned = detail::scan_line_id(text)) {
    return scanned->id ? std::move(*scanned->id) : std::to_string(line_no);
  }
  IdSax sax;
  if (!nlohmann::json::sax_parse(text, &sax)) return std::to_string(line_no);
  return sax.id(line_no);
}

std::optional<ParsedLine> parse_input_line(const InputLine& line, std::size_t limit) {
  if (line.too_long) return too_long_line(line.number, limit);
  if (is_blank(line.text)) return std::nullopt;
  return parse_line(line.text, line.number);
}

}  // namespace detour::batch
