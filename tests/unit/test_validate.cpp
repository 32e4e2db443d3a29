// Response validation (docs/architecture.md, "Checking a reply"), row by row: refusal phrases, JSON
// extraction, the order in which validate_reply applies its rules, the schema validator's messages,
// and the exact replies detour-mock sends for its refusal, empty and wrong_schema faults.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "engine/validate.hpp"

using namespace detour;
using engine::ErrorClass;
using engine::SchemaValidator;
using engine::ValidationRules;
using nlohmann::json;

namespace {

// What detour-mock answers (tests/mock/protocols.cpp make_reply, tests/mock/README.md).
constexpr const char* kMockRefusal = "I'm sorry, but I can't help with that.";
constexpr const char* kMockEmpty = "";
constexpr const char* kMockWrongSchema = R"({"unexpected": true})";

// A typical --schema: an object that must carry a string "answer".
const json kAnswerSchema = json::parse(R"({
  "type": "object",
  "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
  "required": ["answer"]
})");

providers::ChatReply reply_of(std::string content, std::string finish_reason = "stop") {
  providers::ChatReply r;
  r.content = std::move(content);
  r.finish_reason = std::move(finish_reason);
  return r;
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += s;
  return out;
}

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size()))
    ++n;
  return n;
}

}  // namespace

TEST_CASE("validate: looks_like_refusal accepts short refusals only", "[validate]") {
  struct Row {
    std::string content;
    bool refusal;
  };
  const std::string long_tail =
      " That said, here is some general information that may help you: the statute of "
      "limitations depends on the jurisdiction, the kind of claim and when the harm was "
      "discovered. Most places allow between two and six years.";
  const std::vector<Row> rows = {
      {kMockRefusal, true},
      {"I can't help with that.", true},
      {"I cannot help with that request.", true},
      {"I can't assist with that.", true},
      {"I cannot assist with this.", true},
      {"I'm sorry, I can't do that.", true},
      {"I'm sorry, but I cannot provide that information.", true},
      {"I am unable to comply with this request.", true},
      {"I'm unable to help with that.", true},
      {"I won't write that.", true},
      {"Sorry, I can't share that.", true},
      {"Sorry, but I can't.", true},
      {"I apologize, but I cannot fulfill this request.", true},
      {"I CANNOT HELP WITH THAT.", true},                          // case-insensitive
      {"  \n\tI can't help with that.\n\n", true},                 // trimmed
      {"I\u2019m sorry, but I can\u2019t help with that.", true},  // typographic apostrophes
      {"I can\u2019t assist with that.", true},
      {"", false},
      {"   \n", false},
      {"Sure! The answer is 42.", false},
      {"{\"answer\": \"I can't help with that.\"}", false},  // JSON carrying the phrase
      {"I can't believe how simple this is: 42.", false},    // "I can't" alone is not enough
      {"I'm sorry to hear that. Try restarting the router first.", false},
      {"The answer is no. I can't help noticing the question is a trick, though.", false},
      // A long answer that merely contains or even opens with a refusal phrase answers.
      {"Here is the summary you asked for. I'm sorry, but I can't help with that part." + long_tail,
       false},
      {"I'm sorry, but I can't give legal advice." + long_tail, false},
  };
  for (const auto& row : rows) {
    INFO("content: \"" << row.content << "\" (" << row.content.size() << " bytes)");
    CHECK(engine::looks_like_refusal(row.content) == row.refusal);
  }
}

TEST_CASE("validate: looks_like_refusal stops at 200 characters", "[validate]") {
  const std::string head = "I can't help with that.";
  const std::string at_limit = head + std::string(200 - head.size(), ' ') + ".";      // 201, trims
  CHECK(engine::looks_like_refusal(head + std::string(200 - head.size() - 1, '.')));  // 199
  CHECK(engine::looks_like_refusal(head + std::string(200 - head.size(), '.')));      // 200
  CHECK_FALSE(engine::looks_like_refusal(head + std::string(201 - head.size(), '.')));
  CHECK_FALSE(engine::looks_like_refusal(at_limit));
  // Surrounding whitespace does not count towards the length.
  CHECK(engine::looks_like_refusal(std::string(500, ' ') + head + std::string(500, '\n')));
}

TEST_CASE("validate: extract_json takes the content or one json fence", "[validate]") {
  struct Row {
    std::string content;
    std::optional<json> expected;
  };
  const json obj = {{"answer", "yes"}};
  const std::vector<Row> rows = {
      {R"({"answer": "yes"})", obj},
      {"  \n{\"answer\": \"yes\"}\n\n", obj},
      {"[1, 2, 3]", json::array({1, 2, 3})},
      {"42", json(42)},
      {R"("text")", json("text")},
      {"```json\n{\"answer\": \"yes\"}\n```", obj},
      {"```JSON\n{\"answer\": \"yes\"}\n```", obj},
      {"```\n{\"answer\": \"yes\"}\n```", obj},
      {"\n  ```json\n  {\"answer\": \"yes\"}\n  ```  \n", obj},
      {"```json\n{\n  \"answer\": \"yes\"\n}```", obj},  // closing fence on the last line
      {"```python\n{\"answer\": \"yes\"}\n```", std::nullopt},
      {"Here you go:\n```json\n{\"answer\": \"yes\"}\n```", std::nullopt},
      {"```json\n{\"a\": 1}\n```\n```json\n{\"b\": 2}\n```", std::nullopt},  // two fences
      {"```json\n{\"answer\": yes}\n```", std::nullopt},
      {"```json {\"answer\": \"yes\"}```", std::nullopt},  // no newline after the tag
      {"{\"answer\": \"yes\"} and more", std::nullopt},
      {"The answer is yes.", std::nullopt},
      {"", std::nullopt},
      {"```", std::nullopt},
      // Numbers no double holds: JSON by its grammar, but nothing parses them (found by
      // tests/fuzz/fuzz_schema.cpp: they escaped as an exception and ended the call).
      {"1e999", std::nullopt},
      {"```json\n{\"n\": -2e822}\n```", std::nullopt},
  };
  for (const auto& row : rows) {
    INFO("content: \"" << row.content << "\"");
    const auto got = engine::extract_json(row.content);
    REQUIRE(got.has_value() == row.expected.has_value());
    if (got) CHECK(*got == *row.expected);
  }
}

TEST_CASE("validate: validate_reply applies its rules in order", "[validate]") {
  const SchemaValidator schema(kAnswerSchema, "--schema schema.json");
  const std::string long_answer =
      "I'm sorry, but I can't help with that is a sentence models say a lot. " +
      repeat("This answer goes on to explain the topic in detail. ", 5);
  struct Row {
    const char* name;
    std::string content;
    std::string finish_reason;
    bool require_complete;
    bool with_schema;
    ErrorClass expected;
    std::string message_part;  // must appear in the message; empty: message must be empty
    std::string refusal = {};  // the provider's refusal field
  };
  const std::vector<Row> rows = {
      {"plain answer", "Paris.", "stop", false, false, ErrorClass::none, ""},
      {"unknown finish reason", "Paris.", "", false, false, ErrorClass::none, ""},
      {"length without --require-complete", "Paris is the cap", "length", false, false,
       ErrorClass::none, ""},
      {"long answer with a refusal phrase", long_answer, "stop", false, false, ErrorClass::none,
       ""},
      {"refusal phrase", "I can't help with that.", "stop", false, false, ErrorClass::refusal,
       "the model refused: \"I can't help with that.\""},
      // OpenAI structured outputs: content null, the refusal in message.refusal, finish stop.
      {"the provider's refusal field", "", "stop", false, false, ErrorClass::refusal,
       "the model refused: \"I will not do this.\"", "I will not do this."},
      {"the refusal field beats the schema", "", "stop", false, true, ErrorClass::refusal,
       "refused", "No."},
      {"refusal phrase beats the schema", "Sorry, I can't do that.", "stop", true, true,
       ErrorClass::refusal, "refused"},
      {"empty", "", "stop", false, false, ErrorClass::empty_response, "the answer is empty"},
      {"whitespace only", " \n\t\r\n ", "stop", false, false, ErrorClass::empty_response, "empty"},
      {"empty beats truncated", "", "length", true, false, ErrorClass::empty_response, "length"},
      {"empty beats the schema", "", "stop", false, true, ErrorClass::empty_response, "empty"},
      {"truncated", "Paris is the cap", "length", true, false, ErrorClass::truncated,
       "cut off at the token limit"},
      {"truncated beats the schema", R"({"answer": "Par)", "length", true, true,
       ErrorClass::truncated, "finish_reason length"},
      {"complete with --require-complete", "Paris.", "stop", true, false, ErrorClass::none, ""},
      {"schema match", R"({"answer": "Paris", "confidence": 0.9})", "stop", false, true,
       ErrorClass::none, ""},
      {"schema match in a json fence", "```json\n{\"answer\": \"Paris\"}\n```", "stop", false, true,
       ErrorClass::none, ""},
      {"schema match in a bare fence", "```\n{\"answer\": \"Paris\"}\n```\n", "stop", false, true,
       ErrorClass::none, ""},
      {"not JSON", "Paris.", "stop", false, true, ErrorClass::schema_mismatch,
       "answer is not JSON: "},
      {"truncated JSON without --require-complete", R"({"answer": "Par)", "length", false, true,
       ErrorClass::schema_mismatch, "answer is not JSON: "},
      {"broken JSON in a fence", "```json\n{\"answer\": }\n```", "stop", false, true,
       ErrorClass::schema_mismatch, "answer is not JSON: "},
      {"JSON of the wrong type", R"({"answer": 42})", "stop", false, true,
       ErrorClass::schema_mismatch, "answer does not match the schema: /answer: "},
      {"JSON missing a property", R"({"confidence": 1})", "stop", false, true,
       ErrorClass::schema_mismatch, "answer does not match the schema: /: Missing required"},
      {"JSON without a schema is just text", "{not json", "stop", false, false, ErrorClass::none,
       ""},
  };
  for (const auto& row : rows) {
    INFO(row.name << ": content \"" << row.content << "\", finish_reason \"" << row.finish_reason
                  << "\"");
    ValidationRules rules;
    rules.require_complete = row.require_complete;
    rules.schema = row.with_schema ? &schema : nullptr;
    providers::ChatReply reply = reply_of(row.content, row.finish_reason);
    reply.refusal = row.refusal;
    const auto result = engine::validate_reply(reply, rules);
    INFO("message: " << result.message);
    CHECK(result.error == row.expected);
    if (row.message_part.empty()) {
      CHECK(result.message.empty());
    } else {
      CHECK(result.message.find(row.message_part) != std::string::npos);
    }
  }
}

TEST_CASE("validate: detour-mock's content faults classify as intended", "[validate]") {
  // The texts above are the mock's; if it changes them, this test should be updated with it.
  std::ifstream in(DETOUR_SOURCE_DIR "/tests/mock/protocols.cpp");
  REQUIRE(in);
  const std::string mock_source{std::istreambuf_iterator<char>(in),
                                std::istreambuf_iterator<char>()};
  CHECK(mock_source.find(std::string("\"") + kMockRefusal + "\"") != std::string::npos);
  CHECK(mock_source.find(std::string("R\"(") + kMockWrongSchema + ")\"") != std::string::npos);

  const SchemaValidator schema(kAnswerSchema, "--schema schema.json");
  struct Row {
    const char* fault;
    std::string content;
    bool with_schema;
    ErrorClass expected;
  };
  const std::vector<Row> rows = {
      {"refusal", kMockRefusal, false, ErrorClass::refusal},
      {"refusal", kMockRefusal, true, ErrorClass::refusal},
      {"empty", kMockEmpty, false, ErrorClass::empty_response},
      {"empty", kMockEmpty, true, ErrorClass::empty_response},
      {"wrong_schema", kMockWrongSchema, true, ErrorClass::schema_mismatch},
      // Without --schema the wrong_schema answer is an ordinary (JSON) answer.
      {"wrong_schema", kMockWrongSchema, false, ErrorClass::none},
      // The mock's normal answers, plain and in JSON mode, pass.
      {"none", "mock reply to: What is the capital of France?", false, ErrorClass::none},
      {"none (json mode)", R"({"reply":"mock reply to: hi"})", false, ErrorClass::none},
  };
  for (const auto& row : rows) {
    INFO("fault " << row.fault << (row.with_schema ? " with --schema" : ""));
    ValidationRules rules;
    rules.schema = row.with_schema ? &schema : nullptr;
    const auto result = engine::validate_reply(reply_of(row.content), rules);
    INFO("message: " << result.message);
    CHECK(result.error == row.expected);
  }

  ValidationRules rules;
  rules.schema = &schema;
  const auto wrong = engine::validate_reply(reply_of(kMockWrongSchema), rules);
  CHECK(wrong.message ==
        "answer does not match the schema: /: Missing required property 'answer'.");
}

TEST_CASE("validate: an invalid schema is a usage error naming its source", "[validate]") {
  struct Row {
    const char* schema;
    const char* reason_part;
  };
  const std::vector<Row> rows = {
      {"42", "must be an object or a boolean"},
      {R"("string")", "must be an object or a boolean"},
      {"null", "must be an object or a boolean"},
      {R"({"type": 5})", "not a string"},
      {R"({"type": "strnig"})", "strnig"},
      {R"({"minimum": "a"})", "minimum"},
      {R"({"required": "a"})", "not an array"},
      {R"({"properties": {"a": 3}})", "/properties/a"},
      {R"({"items": 3})", "items"},
      {R"({"pattern": "(("})", "invalid regular expression \"((\" at /pattern"},
      {R"({"properties": {"a": {"pattern": "[z-a]"}}})", "at /properties/a/pattern"},
      {R"({"patternProperties": {"[": {}}})", "invalid regular expression \"[\""},
      {R"({"$ref": "http://example.com/schema.json"})", "nothing is fetched"},
      {R"({"properties": {"a": {"$ref": "https://json-schema.org/draft-07/schema#"}}})",
       "at /properties/a/$ref is not supported"},
      {R"({"$ref": "other.json"})", "only references inside the schema"},
      {R"({"$ref": ""})", "only references inside the schema"},
      {R"({"$ref": "#foo", "definitions": {"a": {"$id": "#foo"}}})", "JSON pointer"},
      {R"({"$ref": "#/definitions/nope"})", "does not point to anything"},
      {R"({"$ref": "#"})", "circular"},
      {R"({"properties": {"x": {"$ref": "#/definitions/a"}},
           "definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}})",
       "circular"},
  };
  for (const auto& row : rows) {
    INFO("schema: " << row.schema);
    try {
      SchemaValidator v(json::parse(row.schema), "--schema schema.json");
      FAIL("accepted");
    } catch (const UsageError& e) {
      const std::string what = e.what();
      INFO("message: " << what);
      CHECK(what.rfind("--schema schema.json: not a valid JSON Schema: ", 0) == 0);
      CHECK(what.find(row.reason_part) != std::string::npos);
      CHECK(e.code() == ExitCode::usage);
    }
  }
}

TEST_CASE("validate: valid schemas load and keep their document", "[validate]") {
  const std::vector<const char*> rows = {
      "true",
      "false",
      "{}",
      R"({"type": ["string", "null"], "maxLength": 3})",
      // Recursion through a property is a tree, not a cycle.
      R"({"type": "object", "properties": {"child": {"$ref": "#"}}})",
      R"({"$ref": "#/definitions/node",
          "definitions": {"node": {"properties": {"next": {"$ref": "#/definitions/node"}}}}})",
      R"({"definitions": {"a~b": {"type": "integer"}, "c%d": {"type": "string"}},
          "properties": {"x": {"$ref": "#/definitions/a~0b"}, "y": {"$ref": "#/definitions/c%25d"}}})",
      // Property names that look like keywords, and data that looks like a schema, are not.
      R"({"properties": {"pattern": {"type": "string"}, "$ref": {"type": "string"}}})",
      R"({"const": {"$ref": "http://example.com/x", "pattern": "(("}})",
      R"({"enum": [{"$ref": "other.json"}], "default": {"pattern": "["}})",
  };
  for (const char* text : rows) {
    INFO("schema: " << text);
    const json schema = json::parse(text);
    std::optional<SchemaValidator> v;
    REQUIRE_NOTHROW(v.emplace(schema, "s.json"));
    CHECK(v->schema() == schema);
  }
}

TEST_CASE("validate: violations name the place with a JSON pointer", "[validate]") {
  const json schema = json::parse(R"({
    "type": "object",
    "properties": {
      "age": {"type": "integer", "minimum": 0},
      "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
      "a/b": {"type": "string"},
      "m~n": {"type": "string"},
      "user": {"type": "object", "properties": {"email": {"type": "string", "pattern": "@"}},
               "required": ["email"]}
    },
    "required": ["age"],
    "additionalProperties": false
  })");
  const SchemaValidator v(schema, "s.json");
  struct Row {
    const char* document;
    std::string expected;  // exact check() result, or a part of it when `exact` is false
    bool exact;
  };
  const std::vector<Row> rows = {
      {R"({"age": 30})", "", true},
      {R"({"age": 30, "tags": ["a"], "user": {"email": "x@y"}})", "", true},
      {"[]", "/: Value type not permitted by 'type' constraint.", true},
      {R"({})", "/: Missing required property 'age'.", true},
      {R"({"age": "thirty"})", "/age: Value type not permitted by 'type' constraint.", true},
      {R"({"age": -1})", "/age: Expected number greater than or equal to 0", false},
      {R"({"age": 1, "tags": ["a", 2]})", "/tags/1: Value type not permitted by 'type'", false},
      {R"({"age": 1, "tags": ["a", "b", "c", "d"]})", "/tags: Array should contain no more than 3",
       false},
      {R"({"age": 1, "a/b": 1})", "/a~1b: Value type", false},
      {R"({"age": 1, "m~n": 1})", "/m~0n: Value type", false},
      {R"({"age": 1, "user": {}})", "/user: Missing required property 'email'.", true},
      {R"({"age": 1, "user": {"email": "nobody"}})", "/user/email: Failed to match regex", false},
      {R"({"age": 1, "extra": true})", "/: Object contains a property", false},
  };
  for (const auto& row : rows) {
    INFO("document: " << row.document);
    const std::string got = v.check(json::parse(row.document));
    INFO("check(): " << got);
    if (row.exact) {
      CHECK(got == row.expected);
    } else {
      CHECK(got.rfind(row.expected, 0) == 0);  // the specific error first, not its summary
    }
  }
}

TEST_CASE("validate: check lists at most three violations, specific ones only", "[validate]") {
  const SchemaValidator v(json::parse(R"({
    "type": "object",
    "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"},
                   "d": {"type": "string"}, "e": {"type": "string"}},
    "required": ["z"]
  })"),
                          "s.json");
  const std::string got = v.check(json::parse(R"({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})"));
  INFO("check(): " << got);
  CHECK(count_of(got, "; ") == 2);
  // valijson also reports "/: Failed to validate against schema associated with property name
  // 'a'" for each; those summaries are left out when a specific error says more.
  CHECK(got.find("Failed to validate against schema associated") == std::string::npos);
  CHECK(count_of(got, "Value type not permitted by 'type' constraint.") +
            count_of(got, "Missing required property 'z'.") ==
        3);

  // Only summaries (a false subschema says nothing itself): the summary is the message.
  const SchemaValidator no_a(json::parse(R"({"properties": {"a": false}})"), "s.json");
  CHECK(no_a.check(json{{"a", 1}}) ==
        "/: Failed to validate against schema associated with property name 'a'.");
  // No errors at all: still reported rather than an empty (= valid) string.
  const SchemaValidator never(json(false), "s.json");
  CHECK_FALSE(never.check(json::object()).empty());
  CHECK(never.check(json::object()).rfind("/: ", 0) == 0);
}

TEST_CASE("validate: SchemaValidator moves and stays usable", "[validate]") {
  SchemaValidator a(kAnswerSchema, "a.json");
  SchemaValidator b(std::move(a));
  CHECK(b.check(json{{"answer", "x"}}).empty());
  CHECK_FALSE(b.check(json{{"answer", 1}}).empty());
  SchemaValidator c(json::object(), "c.json");
  c = std::move(b);
  CHECK(c.schema() == kAnswerSchema);
  CHECK_FALSE(c.check(json::object()).empty());
}
