#include "engine/validate.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <exception>
#include <regex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/text.hpp"

// Without this valijson reports a bad schema by printing to stderr and calling abort().
#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "core/error.hpp"

// Draft-07 keywords this validator is tested for, case by case, against the official
// JSON-Schema-Test-Suite (tests/unit/test_schema_suite.cpp): type, enum, const, properties,
// required, additionalProperties, patternProperties, items, additionalItems, minItems, maxItems,
// uniqueItems, contains, minLength, maxLength, pattern, minimum, maximum, exclusiveMinimum,
// exclusiveMaximum, multipleOf, minProperties, maxProperties, propertyNames, dependencies, allOf,
// anyOf, oneOf, not, if/then/else, boolean schemas, default, definitions and local $ref.
//
// Remote $refs (anything outside the schema document) are rejected when the schema is loaded:
// an answer validator must never reach out to the network, and a schema that silently ignored
// part of itself would accept answers the user meant to refuse.

namespace detour::engine {

namespace {

constexpr std::size_t kMaxViolations = 3;
// Longer answers are real answers, even when they open with an apology.
constexpr std::size_t kMaxRefusalLength = 200;
// How much of a refusal to quote back in the message.
constexpr std::size_t kMaxQuoted = 120;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  }
  return true;
}

// One JSON Pointer reference token (RFC 6901): "~" and "/" are escaped.
void append_pointer_token(std::string& out, std::string_view token) {
  out += '/';
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
}

// valijson names the place of an error as {"<root>", "[name]", "[0]", ...}.
std::string pointer_of(const std::vector<std::string>& context) {
  std::string out;
  for (const auto& part : context) {
    if (part == "<root>") continue;
    std::string_view token = part;
    if (token.size() >= 2 && token.front() == '[' && token.back() == ']')
      token = token.substr(1, token.size() - 2);
    append_pointer_token(out, token);
  }
  return out.empty() ? "/" : out;
}

// Errors that only say "something below me failed"; the error below says what.
// (valijson pushes them after the nested errors they sum up.)
bool is_summary(const std::string& description) {
  static constexpr std::array<std::string_view, 7> kSummaries = {
      "Failed to validate against schema associated with property name",
      "Failed to validate against schema associated with pattern",
      "Failed to validate item #",
      "Failed to validate against child schema #",
      "Failed to validate against additional properties schema",
      "Failed to validate against additional items schema",
      "Cannot validate item #",
  };
  return std::any_of(kSummaries.begin(), kSummaries.end(), [&](std::string_view s) {
    return std::string_view(description).substr(0, s.size()) == s;
  });
}

// Keys whose value is data, not a schema: nothing in them is a keyword.
bool is_data_keyword(std::string_view key) {
  return key == "const" || key == "enum" || key == "default" || key == "examples";
}

// Keys whose value maps names (of properties or definitions) to schemas: the names are not
// keywords, even when a property is called "pattern" or "$ref".
bool is_name_map(std::string_view key) {
  return key == "properties" || key == "patternProperties" || key == "definitions" ||
         key == "dependencies";
}

// Calls visit(key, value, pointer) for every keyword in the schema, at any depth.
template <typename Visit>
void walk_keywords(const nlohmann::json& node, const std::string& at, bool names, Visit& visit) {
  if (node.is_array()) {
    for (std::size_t i = 0; i < node.size(); ++i)
      walk_keywords(node[i], at + "/" + std::to_string(i), false, visit);
    return;
  }
  if (!node.is_object()) return;
  for (const auto& [key, value] : node.items()) {
    std::string child = at;
    append_pointer_token(child, key);
    if (!names) {
      if (is_data_keyword(key)) continue;
      visit(key, value, child);
    }
    walk_keywords(value, child, !names && is_name_map(key), visit);
  }
}

void compile_regex(const std::string& pattern, const std::string& at) {
  try {
    std::regex re(pattern);
  } catch (const std::regex_error& e) {
    throw std::runtime_error("invalid regular expression \"" + pattern + "\" at " + at + ": " +
                             e.what());
  }
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The node a "#/a/b" reference names, or nullptr when there is none (or it is not a pointer).
const nlohmann::json* resolve_local(const nlohmann::json& root, std::string_view ref) {
  const std::string pointer = percent_decode(ref.substr(1));
  if (pointer.empty()) return &root;
  if (pointer.front() != '/') return nullptr;
  const nlohmann::json* node = &root;
  std::size_t pos = 1;
  while (true) {
    const std::size_t slash = pointer.find('/', pos);
    std::string token = pointer.substr(pos, slash == std::string::npos ? slash : slash - pos);
    std::string key;
    for (std::size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
        key += token[i + 1] == '0' ? '~' : '/';
        ++i;
      } else {
        key += token[i];
      }
    }
    if (node->is_object()) {
      const auto it = node->find(key);
      if (it == node->end()) return nullptr;
      node = &*it;
    } else if (node->is_array()) {
      if (key.empty() || key.find_first_not_of("0123456789") != std::string::npos) return nullptr;
      const std::size_t index = std::stoul(key);
      if (index >= node->size()) return nullptr;
      node = &(*node)[index];
    } else {
      return nullptr;
    }
    if (slash == std::string::npos) return node;
    pos = slash + 1;
  }
}

// Checks what valijson 1.0 does not check at load time, or handles by crashing:
//  - 'pattern' and 'patternProperties' are compiled by std::regex only while validating, so a
//    broken regular expression would otherwise surface on the first answer, not at --schema;
//  - a $ref outside the document would need fetching (we never fetch), and a relative one
//    ("other.json") sends valijson into endless recursion;
//  - a cycle of references that never reaches a real schema ({"$ref": "#"} at the root, or
//    a -> b -> a) also recurses until the stack overflows.
void precheck(const nlohmann::json& root) {
  auto visit = [&](const std::string& key, const nlohmann::json& value, const std::string& at) {
    if (key == "pattern" && value.is_string()) compile_regex(value.get<std::string>(), at);
    if (key == "patternProperties" && value.is_object()) {
      for (const auto& [pattern, sub] : value.items()) {
        std::string sub_at = at;
        append_pointer_token(sub_at, pattern);
        compile_regex(pattern, sub_at);
      }
    }
    if (key != "$ref" || !value.is_string()) return;
    std::string ref = value.get<std::string>();
    if (ref.empty() || ref.front() != '#') {
      throw std::runtime_error("$ref \"" + ref + "\" at " + at +
                               " is not supported: only references inside the schema (\"#...\") "
                               "are followed, nothing is fetched");
    }
    if (ref.size() > 1 && ref[1] != '/') {
      throw std::runtime_error("$ref \"" + ref + "\" at " + at +
                               " is not supported: name a schema by JSON pointer (\"#/...\")");
    }
    std::vector<std::string> seen;
    while (true) {
      if (std::find(seen.begin(), seen.end(), ref) != seen.end())
        throw std::runtime_error("$ref \"" + value.get<std::string>() + "\" at " + at +
                                 " is circular: it never reaches a schema");
      seen.push_back(ref);
      const nlohmann::json* target = resolve_local(root, ref);
      if (!target) {
        throw std::runtime_error("$ref \"" + ref + "\" at " + at +
                                 " does not point to anything in the schema");
      }
      if (!target->is_object()) break;
      const auto next = target->find("$ref");
      if (next == target->end() || !next->is_string()) break;
      ref = next->get<std::string>();
      if (ref.empty() || ref.front() != '#') break;  // reported when the walk reaches it
    }
  };
  walk_keywords(root, "", false, visit);
}

std::string quote(std::string_view text) {
  if (text.size() <= kMaxQuoted) return "\"" + std::string(text) + "\"";
  std::size_t cut = kMaxQuoted;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
    --cut;  // not inside a UTF-8 character
  return "\"" + std::string(text.substr(0, cut)) + "...\"";
}

// nlohmann's messages start with "[json.exception.parse_error.101] ", which tells people
// nothing.
std::string parse_reason(const nlohmann::json::exception& e) {
  std::string what = e.what();
  if (!what.empty() && what.front() == '[') {
    auto close = what.find("] ");
    if (close != std::string::npos) what.erase(0, close + 2);
  }
  return what;
}

// The text inside one ``` or ```json fence spanning the whole (trimmed) content; nullopt when
// the content is not exactly one such fence.
std::optional<std::string_view> fence_body(std::string_view s) {
  constexpr std::string_view kFence = "```";
  if (s.size() < 2 * kFence.size() || s.substr(0, kFence.size()) != kFence ||
      s.substr(s.size() - kFence.size()) != kFence)
    return std::nullopt;
  std::string_view inner = s.substr(kFence.size(), s.size() - 2 * kFence.size());
  const auto newline = inner.find('\n');
  if (newline == std::string_view::npos) return std::nullopt;
  const std::string_view tag = trim(inner.substr(0, newline));
  if (!tag.empty() && !(tag.size() == 4 && starts_with_ci(tag, "json"))) return std::nullopt;
  inner = inner.substr(newline + 1);
  if (inner.find(kFence) != std::string_view::npos) return std::nullopt;  // more than one
  return trim(inner);
}

// Parses the answer as extract_json does; on failure says why (for the whole content, or for
// the fence body when there is a fence, since that is what the model meant as JSON).
std::optional<nlohmann::json> parse_answer(std::string_view content, std::string* why) {
  const std::string_view text = trim(content);
  const auto body = fence_body(text);
  const std::string_view candidate = body ? *body : text;
  try {
    return nlohmann::json::parse(candidate);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, or out_of_range for a number no double holds ("1e999"): an answer may
    // contain anything, and neither may escape (tests/fuzz/fuzz_schema.cpp found the second).
    // A fenced answer whose whole text happens to parse is unusual but still JSON.
    if (body) {
      auto whole = nlohmann::json::parse(text, nullptr, false);
      if (!whole.is_discarded()) return whole;
    }
    if (why) *why = parse_reason(e);
  }
  return std::nullopt;
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Typographic apostrophes (U+2019, U+2018) become "'" so one phrase list covers both.
std::string normalise_apostrophes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i + 2 < s.size() && s[i] == '\xE2' && s[i + 1] == '\x80' &&
        (s[i + 2] == '\x99' || s[i + 2] == '\x98')) {
      out += '\'';
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool starts_with_any(std::string_view s, const std::string_view* first, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (s.substr(0, first[i].size()) == first[i]) return true;
  return false;
}

}  // namespace

// ---- SchemaValidator ---------------------------------------------------------------------------

struct SchemaValidator::Impl {
  nlohmann::json document;
  valijson::Schema schema;
};

SchemaValidator::SchemaValidator(const nlohmann::json& schema, std::string source)
    : impl_(std::make_unique<Impl>()) {
  impl_->document = schema;
  try {
    if (!schema.is_object() && !schema.is_boolean())
      throw std::runtime_error(std::string("a schema must be an object or a boolean, not ") +
                               schema.type_name());
    precheck(schema);
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    const valijson::adapters::NlohmannJsonAdapter adapter(impl_->document);
    // No fetch function: a $ref outside this document fails here instead of being fetched.
    parser.populateSchema(adapter, impl_->schema);
  } catch (const std::exception& e) {
    std::string reason = e.what();
    // The one way past precheck() to a document we would have to fetch: a relative "#..."
    // resolved against a nested $id.
    if (reason == "Fetching of remote JSON References not enabled.")
      reason = "a $ref leads outside the schema (resolved against an $id); nothing is fetched";
    throw UsageError(source + ": not a valid JSON Schema: " + reason);
  }
}

SchemaValidator::~SchemaValidator() = default;
SchemaValidator::SchemaValidator(SchemaValidator&&) noexcept = default;
SchemaValidator& SchemaValidator::operator=(SchemaValidator&&) noexcept = default;

const nlohmann::json& SchemaValidator::schema() const {
  return impl_->document;
}

std::string SchemaValidator::check(const nlohmann::json& document) const {
  // A Validator caches compiled regexes, so each call gets its own: check() stays const and
  // safe to call from several threads at once.
  valijson::Validator validator(valijson::Validator::kStrongTypes);
  valijson::ValidationResults results;
  const valijson::adapters::NlohmannJsonAdapter adapter(document);
  try {
    if (validator.validate(impl_->schema, adapter, &results)) return "";
  } catch (const std::exception& e) {
    // Regexes were checked at load time; this covers what std::regex still refuses at match
    // time (e.g. error_complexity on a pathological pattern).
    return std::string("/: could not be checked: ") + e.what();
  }

  std::vector<std::string> specific, summaries;
  for (const auto& error : results) {
    std::string line = pointer_of(error.context) + ": " + error.description;
    auto& bucket = is_summary(error.description) ? summaries : specific;
    if (std::find(bucket.begin(), bucket.end(), line) == bucket.end())
      bucket.push_back(std::move(line));
  }
  // Summaries only repeat, less precisely, what a specific error already says.
  const auto& lines = specific.empty() ? summaries : specific;
  if (lines.empty()) return "/: does not match the schema";  // valijson gave no reason
  std::string out;
  for (std::size_t i = 0; i < lines.size() && i < kMaxViolations; ++i) {
    if (i > 0) out += "; ";
    out += lines[i];
  }
  return out;
}

// ---- Answers -----------------------------------------------------------------------------------

bool looks_like_refusal(std::string_view content) {
  const std::string_view trimmed = trim(content);
  if (trimmed.empty() || trimmed.size() > kMaxRefusalLength) return false;
  const std::string text = lower_ascii(normalise_apostrophes(trimmed));
  std::string_view s = text;

  // Phrases that are a refusal on their own.
  static constexpr std::string_view kRefusals[] = {
      "i can't help",      "i cannot help",    "i can not help",    "i can't assist",
      "i cannot assist",   "i can't provide",  "i cannot provide",  "i can't comply",
      "i cannot comply",   "i can't fulfill",  "i cannot fulfill",  "i can't do that",
      "i cannot do that",  "i am unable to",   "i'm unable to",     "i am not able to",
      "i'm not able to",   "i won't",          "i will not",        "i must decline",
      "i have to decline", "i'm not going to", "i am not going to",
  };
  if (starts_with_any(s, kRefusals, std::size(kRefusals))) return true;

  // After an apology, any "I can't" is a refusal ("I'm sorry, but I can't share that.").
  static constexpr std::string_view kApologies[] = {
      "i'm sorry", "i am sorry", "sorry", "i apologize", "i apologise", "my apologies",
  };
  bool apologised = false;
  for (std::string_view a : kApologies) {
    if (s.substr(0, a.size()) == a) {
      s.remove_prefix(a.size());
      apologised = true;
      break;
    }
  }
  if (!apologised) return false;
  while (!s.empty() &&
         (s.front() == ',' || s.front() == '.' || s.front() == '!' || is_space(s.front())))
    s.remove_prefix(1);
  if (s.substr(0, 4) == "but ") s.remove_prefix(4);
  static constexpr std::string_view kAfterApology[] = {"i can't", "i cannot", "i can not"};
  return starts_with_any(s, kAfterApology, std::size(kAfterApology)) ||
         starts_with_any(s, kRefusals, std::size(kRefusals));
}

std::optional<nlohmann::json> extract_json(std::string_view content) {
  return parse_answer(content, nullptr);
}

ValidationResult validate_reply(const providers::ChatReply& reply, const ValidationRules& rules) {
  const std::string_view content = trim(reply.content);

  if (!reply.refusal.empty())
    return {ErrorClass::refusal, "the model refused: " + quote(reply.refusal)};
  if (looks_like_refusal(content))
    return {ErrorClass::refusal, "the model refused: " + quote(content)};
  if (content.empty()) {
    std::string message = "the answer is empty";
    if (!reply.finish_reason.empty()) message += " (finish_reason " + reply.finish_reason + ")";
    return {ErrorClass::empty_response, message};
  }
  if (rules.require_complete && reply.finish_reason == "length") {
    return {ErrorClass::truncated,
            "the answer was cut off at the token limit (finish_reason length)"};
  }
  if (rules.schema) {
    std::string why;
    const auto document = parse_answer(content, &why);
    if (!document) return {ErrorClass::schema_mismatch, "answer is not JSON: " + why};
    std::string violations = rules.schema->check(*document);
    if (!violations.empty())
      return {ErrorClass::schema_mismatch, "answer does not match the schema: " + violations};
  }
  return {};
}

}  // namespace detour::engine
