// One line of the `detour batch` input (src/batch/input_line.hpp): every line shape the README
// describes, every way a line can be wrong, and that line_id agrees with parse_line.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "batch/input_line.hpp"

using namespace detour::batch;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

LineRequest good(std::string_view text, std::uint64_t line_no = 1) {
  ParsedLine parsed = parse_line(text, line_no);
  if (const auto* bad = std::get_if<BadLine>(&parsed)) FAIL("bad line: " << bad->message);
  return std::get<LineRequest>(std::move(parsed));
}

BadLine bad(std::string_view text, std::uint64_t line_no = 7) {
  ParsedLine parsed = parse_line(text, line_no);
  if (std::holds_alternative<LineRequest>(parsed)) FAIL("parsed as a request: " << text);
  return std::get<BadLine>(std::move(parsed));
}

}  // namespace

TEST_CASE("batch input: a simple prompt line", "[batch]") {
  const LineRequest r = good(R"({"id": "a1", "prompt": "Hello"})", 3);
  CHECK(r.line_no == 3);
  CHECK(r.id == "a1");
  CHECK_FALSE(r.openai_format);
  CHECK_FALSE(r.model);
  REQUIRE(r.request.messages.size() == 1);
  CHECK(r.request.messages[0].role == "user");
  CHECK(r.request.messages[0].content == "Hello");
  // Nothing the line does not say is set, so the command line's defaults still apply.
  CHECK(r.request.system.empty());
  CHECK_FALSE(r.request.max_tokens);
  CHECK_FALSE(r.request.temperature);
  CHECK_FALSE(r.request.schema);
  CHECK_FALSE(r.request.json_output);
  CHECK(r.request.extra == json::object());
  CHECK(r.request.model.empty());
  CHECK_FALSE(r.metadata);
}

TEST_CASE("batch input: every field of a simple line", "[batch]") {
  const LineRequest r = good(
      R"({"id": "q", "system": "Be brief.", "model": "fast", "max_tokens": 50,)"
      R"( "temperature": 0.2, "schema": {"type": "object"}, "prompt": "Hi", "note": "ignored"})");
  CHECK(r.request.system == "Be brief.");
  CHECK(r.model == "fast");
  CHECK(r.request.max_tokens == 50);
  CHECK(r.request.temperature == Approx(0.2));
  REQUIRE(r.request.schema);
  CHECK(*r.request.schema == json{{"type", "object"}});
  CHECK(r.request.extra == json::object());  // unknown keys of a simple line are ignored
}

TEST_CASE("batch input: a messages line, system messages joined into the system text", "[batch]") {
  const LineRequest r = good(
      R"({"system": "S1", "messages": [{"role": "system", "content": "S2"},)"
      R"( {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},)"
      R"( {"role": "user", "content": [{"type": "text", "text": "Q"}, {"type": "text", "text": "2"}]}]})");
  CHECK(r.request.system == "S1\n\nS2");
  REQUIRE(r.request.messages.size() == 3);
  CHECK(r.request.messages[0].role == "user");
  CHECK(r.request.messages[1].role == "assistant");
  CHECK(r.request.messages[1].content == "A1");
  CHECK(r.request.messages[2].content == "Q2");
}

TEST_CASE("batch input: null means not set", "[batch]") {
  const LineRequest r = good(
      R"({"id": null, "prompt": "x", "max_tokens": null, "model": null, "metadata": null})", 4);
  CHECK(r.id == "4");
  CHECK_FALSE(r.request.max_tokens);
  CHECK_FALSE(r.model);
  CHECK_FALSE(r.metadata);
}

TEST_CASE("batch input: ids", "[batch]") {
  struct Row {
    const char* line;
    const char* id;
  };
  const std::vector<Row> rows = {
      {R"({"id": "a1", "prompt": "x"})", "a1"},
      {R"({"id": 42, "prompt": "x"})", "42"},
      {R"({"id": -3, "prompt": "x"})", "-3"},
      {R"({"id": 18446744073709551615, "prompt": "x"})", "18446744073709551615"},
      {R"({"prompt": "x"})", "9"},
      {R"({"id": "dup", "id": "last", "prompt": "x"})", "last"},
      {R"({"custom_id": "c-1", "method": "POST", "url": "/v1/chat/completions",)"
       R"( "body": {"messages": [{"role": "user", "content": "x"}]}})",
       "c-1"},
      // An OpenAI line's id is its custom_id only.
      {R"({"id": "ignored", "method": "POST", "url": "/v1/chat/completions",)"
       R"( "body": {"messages": [{"role": "user", "content": "x"}]}})",
       "9"},
  };
  for (const auto& row : rows) {
    INFO(row.line);
    CHECK(good(row.line, 9).id == row.id);
    CHECK(line_id(row.line, 9) == row.id);
  }
}

TEST_CASE("batch input: metadata is copied unchanged, key order kept", "[batch]") {
  const char* line =
      R"({"metadata": {"zeta": 1, "alpha": {"y": [1, 2.5, "x"], "b": null}, "mid": "é"},)"
      R"( "prompt": "x"})";
  const LineRequest r = good(line);
  REQUIRE(r.metadata);
  CHECK(r.metadata->dump() == R"({"zeta":1,"alpha":{"y":[1,2.5,"x"],"b":null},"mid":"é"})");
  // A bad line keeps it too, for its bad_input output line.
  const BadLine b = bad(R"({"id": "m", "metadata": {"k": 2, "a": 1}, "prompt": 5})");
  CHECK(b.id == "m");
  REQUIRE(b.metadata);
  CHECK(b.metadata->dump() == R"({"k":2,"a":1})");
}

TEST_CASE("batch input: OpenAI Batch API lines", "[batch]") {
  const LineRequest r =
      good(R"({"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": {)"
           R"("model": "gpt-4o-mini", "messages": [{"role": "developer", "content": "D"},)"
           R"( {"role": "system", "content": [{"type": "text", "text": "S"}]},)"
           R"( {"role": "user", "content": "Q"}], "max_tokens": 10, "temperature": 0,)"
           R"( "top_p": 0.5, "seed": 7, "stop": ["x"], "user": null, "stream": true,)"
           R"( "stream_options": {"include_usage": true}}})",
           2);
  CHECK(r.openai_format);
  CHECK(r.id == "req-1");
  CHECK(r.model == "gpt-4o-mini");
  CHECK(r.request.system == "D\n\nS");
  REQUIRE(r.request.messages.size() == 1);
  CHECK(r.request.messages[0].content == "Q");
  CHECK(r.request.max_tokens == 10);
  CHECK(r.request.temperature == 0.0);
  // What detour does not model goes on the wire as written; streaming is detour's choice.
  CHECK(r.request.extra ==
        json{{"top_p", 0.5}, {"seed", 7}, {"stop", json::array({"x"})}, {"user", nullptr}});
  CHECK_FALSE(r.request.json_output);
}

TEST_CASE("batch input: OpenAI max_completion_tokens wins over max_tokens", "[batch]") {
  const std::string head = R"({"custom_id": "x", "method": "POST", "url": "/v1/chat/completions",)";
  const LineRequest both = good(head + R"( "body": {"max_tokens": 5, "max_completion_tokens": 9,)"
                                       R"( "messages": [{"role": "user", "content": "x"}]}})");
  CHECK(both.request.max_tokens == 9);
  const LineRequest one = good(head + R"( "body": {"max_completion_tokens": 3,)"
                                      R"( "messages": [{"role": "user", "content": "x"}]}})");
  CHECK(one.request.max_tokens == 3);
}

TEST_CASE("batch input: OpenAI response_format", "[batch]") {
  const std::string head =
      R"({"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {)"
      R"("messages": [{"role": "user", "content": "x"}], "response_format": )";
  const LineRequest object = good(head + R"({"type": "json_object"}}})");
  CHECK(object.request.json_output);
  CHECK_FALSE(object.request.schema);
  const LineRequest schema =
      good(head + R"({"type": "json_schema", "json_schema": {"name": "a", "strict": true,)"
                  R"( "schema": {"type": "object", "required": ["k"]}}}}})");
  REQUIRE(schema.request.schema);
  CHECK(*schema.request.schema == json{{"type", "object"}, {"required", {"k"}}});
  CHECK(schema.request.extra == json::object());
  const LineRequest text = good(head + R"({"type": "text"}}})");
  CHECK_FALSE(text.request.json_output);
  CHECK_FALSE(text.request.schema);
}

TEST_CASE("batch input: every kind of bad line names its line and the problem", "[batch]") {
  const std::string oa = R"({"custom_id": "o", "method": "POST", "url": "/v1/chat/completions", )";
  const std::string msgs = R"("messages": [{"role": "user", "content": "x"}])";
  struct Row {
    std::string line;
    std::string id;       // the bad line's id
    std::string message;  // exactly
  };
  const std::vector<Row> rows = {
      {"hello", "7",
       "line 7: not valid JSON: syntax error while parsing value - invalid literal at byte 1"},
      {R"({"id": "a", "prompt": "x")", "7",
       "line 7: not valid JSON: syntax error while parsing object - unexpected end of input; "
       "expected '}' at byte 26"},
      {R"({"prompt": "x"} trailing)", "7",
       "line 7: not valid JSON: syntax error while parsing value - invalid literal at byte 19"},
      {R"(["prompt", "x"])", "7", "line 7: a line must be a JSON object, not array"},
      {R"("just a string")", "7", "line 7: a line must be a JSON object, not string"},
      {R"({"id": "a"})", "a", R"(line 7: no "prompt" or "messages")"},
      {R"({"id": "a", "prompt": "x", "messages": []})", "a",
       R"(line 7: both "prompt" and "messages"; give one of them)"},
      {R"({"id": "a", "prompt": 3})", "a", R"(line 7: "prompt" must be a string)"},
      {R"({"id": "a", "prompt": ""})", "a", R"(line 7: "prompt" is empty)"},
      {R"({"id": "a", "prompt": "x", "max_tokens": "ten"})", "a",
       R"(line 7: "max_tokens" must be a positive integer)"},
      {R"({"id": "a", "prompt": "x", "max_tokens": 0})", "a",
       R"(line 7: "max_tokens" must be a positive integer)"},
      {R"({"id": "a", "prompt": "x", "max_tokens": -5})", "a",
       R"(line 7: "max_tokens" must be a positive integer)"},
      {R"({"id": "a", "prompt": "x", "max_tokens": 10.5})", "a",
       R"(line 7: "max_tokens" must be a positive integer)"},
      {R"({"id": "a", "prompt": "x", "max_tokens": 9223372036854775808})", "a",
       R"(line 7: "max_tokens" must be a positive integer)"},
      {R"({"id": "a", "prompt": "x", "temperature": "hot"})", "a",
       R"(line 7: "temperature" must be a number)"},
      {R"({"id": "a", "prompt": "x", "system": ["s"]})", "a",
       R"(line 7: "system" must be a string)"},
      {R"({"id": "a", "prompt": "x", "model": 4})", "a", R"(line 7: "model" must be a string)"},
      {R"({"id": "a", "prompt": "x", "schema": "object"})", "a",
       R"(line 7: "schema" must be a JSON Schema object)"},
      {R"({"id": "a", "prompt": "x", "metadata": [1]})", "a",
       R"(line 7: "metadata" must be an object)"},
      {R"({"id": true, "prompt": "x"})", "7", R"(line 7: "id" must be a string or an integer)"},
      {R"({"id": 1.5, "prompt": "x"})", "7", R"(line 7: "id" must be a string or an integer)"},
      {R"({"id": "", "prompt": "x"})", "7", R"(line 7: "id" is empty)"},
      {R"({"id": "a", "messages": []})", "a",
       R"(line 7: "messages" must be a non-empty array of {"role", "content"} objects)"},
      {R"({"id": "a", "messages": {"role": "user"}})", "a",
       R"(line 7: "messages" must be a non-empty array of {"role", "content"} objects)"},
      {R"({"id": "a", "messages": ["hi"]})", "a",
       R"(line 7: "messages[0]" must be an object with "role" and "content")"},
      {R"({"id": "a", "messages": [{"content": "hi"}]})", "a",
       R"(line 7: "messages[0].role" must be a string)"},
      {R"({"id": "a", "messages": [{"role": "user"}]})", "a",
       R"(line 7: "messages[0].content" is missing)"},
      {R"({"id": "a", "messages": [{"role": "user", "content": 5}]})", "a",
       R"(line 7: "messages[0].content" must be a string or an array of text parts)"},
      {R"({"id": "a", "messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]})",
       "a",
       R"(line 7: "messages[1].role" "tool" is not supported (system, developer, user or assistant))"},
      {R"({"id": "a", "messages": [{"role": "system", "content": "s"}]})", "a",
       R"(line 7: "messages" has no user or assistant message)"},
      {R"({"id": "a", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
       "a", R"(line 7: "messages[0].content[0]" has type "image_url"; only text parts are read)"},
      {R"({"id": "a", "messages": [{"role": "user", "content": ["x"]}]})", "a",
       R"(line 7: "messages[0].content[0]" must be an object with a "type")"},
      {R"({"id": "a", "messages": [{"role": "user", "content": [{"type": "text"}]}]})", "a",
       R"(line 7: "messages[0].content[0]" must have a string "text")"},
      // OpenAI Batch API lines
      {R"({"custom_id": "o", "url": "/v1/chat/completions", "body": {}})", "o",
       R"(line 7: "method" is missing (it must be "POST"))"},
      {R"({"custom_id": "o", "method": "GET", "url": "/v1/chat/completions", "body": {}})", "o",
       R"(line 7: "method" must be "POST", not "GET")"},
      {R"({"custom_id": "o", "method": "POST", "body": {}})", "o",
       R"(line 7: "url" is missing (it must be "/v1/chat/completions"))"},
      {R"({"custom_id": "o", "method": "POST", "url": "/v1/embeddings", "body": {}})", "o",
       R"(line 7: "url" "/v1/embeddings" is not supported (only "/v1/chat/completions"))"},
      {oa + R"("body": "x"})", "o", R"(line 7: "body" must be an object)"},
      {oa + R"("body": {"model": "m"}})", "o", R"(line 7: "body.messages" is missing)"},
      {oa + R"("body": {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}})",
       "o",
       R"(line 7: "body.messages[0].content[0]" has type "input_audio"; only text parts are read)"},
      {oa + R"("body": {)" + msgs + R"(, "max_completion_tokens": "5"}})", "o",
       R"(line 7: "body.max_completion_tokens" must be a positive integer)"},
      {oa + R"("body": {)" + msgs + R"(, "temperature": true}})", "o",
       R"(line 7: "body.temperature" must be a number)"},
      {oa + R"("body": {)" + msgs + R"(, "model": 1}})", "o",
       R"(line 7: "body.model" must be a string)"},
      {oa + R"("body": {)" + msgs + R"(, "response_format": "json"}})", "o",
       R"(line 7: "body.response_format" must be an object with a string "type")"},
      {oa + R"("body": {)" + msgs + R"(, "response_format": {"type": "grammar"}}})", "o",
       R"(line 7: "body.response_format.type" "grammar" is not supported (text, json_object or json_schema))"},
      {oa + R"("body": {)" + msgs + R"(, "response_format": {"type": "json_schema"}}})", "o",
       R"(line 7: "body.response_format.json_schema.schema" is missing)"},
      {oa + R"("body": {)" + msgs +
           R"(, "response_format": {"type": "json_schema", "json_schema": {"schema": 1}}}})",
       "o", R"(line 7: "body.response_format.json_schema.schema" must be a JSON Schema object)"},
      {R"({"custom_id": 5.5, "method": "POST", "url": "/v1/chat/completions", "body": {}})", "7",
       R"(line 7: "custom_id" must be a string or an integer)"},
  };
  for (const auto& row : rows) {
    INFO(row.line);
    const BadLine b = bad(row.line, 7);
    CHECK(b.line_no == 7);
    CHECK(b.message == row.message);
    CHECK(b.id == row.id);
    CHECK(line_id(row.line, 7) == row.id);
  }
}

TEST_CASE("batch input: invalid UTF-8 is a bad line that keeps its id and metadata", "[batch]") {
  const std::vector<std::string> invalid = {
      "\xff",         "\xc3",         "\xc3\x28",         "\xc0\xaf",
      "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80",
      "\xe2\x82",
  };
  for (const auto& bytes : invalid) {
    const std::string line =
        R"({"id": "u1", "metadata": {"k": "v"}, "prompt": "ab)" + bytes + "\"}";
    INFO(line);
    CHECK(invalid_utf8_at(line) == line.find("ab") + 2);
    const BadLine b = bad(line, 5);
    CHECK(b.message == "line 5: not valid UTF-8 at byte " + std::to_string(line.find("ab") + 3));
    CHECK(b.id == "u1");
    CHECK(line_id(line, 5) == "u1");
    REQUIRE(b.metadata);
    CHECK(b.metadata->dump() == R"({"k":"v"})");
  }
  // Not JSON and not UTF-8: the UTF-8 problem is named, the id is the line number.
  const BadLine raw = bad("\xfe\xff garbage", 2);
  CHECK(raw.message == "line 2: not valid UTF-8 at byte 1");
  CHECK(raw.id == "2");
  CHECK(line_id("\xfe\xff garbage", 2) == "2");
}

TEST_CASE("batch input: valid UTF-8 of every length passes", "[batch]") {
  const std::string text = "a \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xed\x9f\xbf";
  CHECK_FALSE(invalid_utf8_at(text));
  const LineRequest r = good(R"({"prompt": ")" + text + "\"}");
  CHECK(r.request.messages[0].content == text);
}

TEST_CASE("batch input: blank lines and too-long lines", "[batch]") {
  CHECK(is_blank(""));
  CHECK(is_blank("  \t \r"));
  CHECK_FALSE(is_blank(" {} "));
  const BadLine b = too_long_line(12, 100);
  CHECK(b.line_no == 12);
  CHECK(b.id == "12");
  CHECK(b.message == "line 12: longer than the limit of 100 bytes");
}

TEST_CASE("batch input: line_id agrees with parse_line on awkward lines", "[batch]") {
  const std::vector<std::string> lines = {
      R"({"id": {"nested": "x"}, "prompt": "x"})",
      R"({"id": ["x"], "prompt": "x"})",
      R"({"meta": {"id": "inner"}, "prompt": "x"})",
      R"({"metadata": {"custom_id": "inner"}, "id": "outer", "prompt": "x"})",
      R"({"body": null, "id": "simple?", "custom_id": null})",
      R"({"custom_id": "c", "custom_id": 12})",
      R"({"id": "a", "id": null, "prompt": "x"})",
      R"({"id": 0})",
      R"({"id": -0})",
      R"({"id": 1e3})",
      "\xef\xbb\xbf{\"id\": \"bom\", \"prompt\": \"x\"}",
      R"({"id": "\u00e9\n"})",
      "{}",
      "null",
      "123",
  };
  for (const auto& line : lines) {
    INFO(line);
    const ParsedLine parsed = parse_line(line, 11);
    const std::string id = std::visit([](const auto& p) { return p.id; }, parsed);
    CHECK(line_id(line, 11) == id);
  }
}

TEST_CASE("batch input: parse_input_line skips blank lines and reports long ones", "[batch]") {
  CHECK_FALSE(parse_input_line(InputLine{3, " \t", false}, 100));
  const auto long_line = parse_input_line(InputLine{4, "", true}, 100);
  REQUIRE(long_line);
  CHECK(std::get<BadLine>(*long_line).message == "line 4: longer than the limit of 100 bytes");
  const auto request = parse_input_line(InputLine{5, R"({"prompt": "x"})", false}, 100);
  REQUIRE(request);
  CHECK(std::get<LineRequest>(*request).id == "5");
}

// Found by tests/fuzz/fuzz_batch_line.cpp: a number no double holds escaped parse_line as an
// exception and ended the whole batch ("internal error") with no output line at all.
TEST_CASE("batch input: a number too large for a double is a bad line", "[batch]") {
  for (const char* text : {R"({"id":"a","prompt":"hi","temperature":2e822})",
                           R"({"id":"a","prompt":"hi","metadata":{"n":-1e400}})"}) {
    INFO(text);
    const BadLine b = bad(text, 3);
    CHECK(b.message == "line 3: not valid JSON: a number is too large");
    CHECK(b.id == line_id(text, 3));
  }
}
