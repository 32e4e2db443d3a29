// The SSE parser: WHATWG event-stream rules, fed in any split of the bytes.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "net/sse.hpp"

using detour::net::SseEvent;
using detour::net::SseParser;

namespace {

struct Parsed {
  std::vector<SseEvent> events;
  std::vector<std::string> other_lines;
};

// Feeds `text` in pieces of `piece` bytes (0: all at once), then finish().
Parsed parse(std::string_view text, size_t piece = 0) {
  Parsed out;
  SseParser parser;
  auto on_event = [&](const SseEvent& e) { out.events.push_back(e); };
  auto on_line = [&](std::string_view line) { out.other_lines.emplace_back(line); };
  if (piece == 0) piece = text.size() + 1;
  for (size_t i = 0; i < text.size(); i += piece) {
    parser.feed(text.substr(i, piece), on_event, on_line);
  }
  parser.finish(on_event, on_line);
  return out;
}

bool same(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].event != b[i].event || a[i].data != b[i].data || a[i].id != b[i].id) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("sse: data events are dispatched on a blank line", "[sse]") {
  auto p = parse("data: {\"a\":1}\n\ndata: [DONE]\n\n");
  REQUIRE(p.events.size() == 2);
  CHECK(p.events[0].event == "");
  CHECK(p.events[0].data == "{\"a\":1}");
  CHECK(p.events[1].data == "[DONE]");
  CHECK(p.other_lines.empty());
}

TEST_CASE("sse: event names, ids, and multi-line data joined with newlines", "[sse]") {
  auto p = parse(
      "event: message_start\nid: 7\ndata: line one\ndata: line two\ndata:no-space\n\n"
      "event: ping\ndata: {\"type\": \"ping\"}\n\n");
  REQUIRE(p.events.size() == 2);
  CHECK(p.events[0].event == "message_start");
  CHECK(p.events[0].id == "7");
  CHECK(p.events[0].data == "line one\nline two\nno-space");
  CHECK(p.events[1].event == "ping");
  CHECK(p.events[1].id == "");  // ids do not leak into the next event's value here
  CHECK(p.events[1].data == "{\"type\": \"ping\"}");
}

TEST_CASE("sse: only one space after the colon is stripped", "[sse]") {
  auto p = parse("data:  two spaces\n\n");
  REQUIRE(p.events.size() == 1);
  CHECK(p.events[0].data == " two spaces");
}

TEST_CASE("sse: comments and keep-alives are ignored", "[sse]") {
  auto p =
      parse(": keep-alive\n\n: OPENROUTER PROCESSING\n\ndata: a\n: keep-alive\ndata: b\n\n:\n\n");
  REQUIRE(p.events.size() == 1);
  CHECK(p.events[0].data == "a\nb");
  CHECK(p.other_lines.empty());
}

TEST_CASE("sse: leading blank lines dispatch nothing", "[sse]") {
  auto p = parse("\n\n\r\n\ndata: x\n\n");
  REQUIRE(p.events.size() == 1);
  CHECK(p.events[0].data == "x");
}

TEST_CASE("sse: CRLF and lone CR end lines like LF", "[sse]") {
  auto crlf = parse("event: a\r\ndata: 1\r\n\r\ndata: 2\r\ndata: 3\r\n\r\n");
  REQUIRE(crlf.events.size() == 2);
  CHECK(crlf.events[0].event == "a");
  CHECK(crlf.events[0].data == "1");
  CHECK(crlf.events[1].data == "2\n3");

  auto cr = parse("data: 1\r\rdata: 2\r\r");
  REQUIRE(cr.events.size() == 2);
  CHECK(cr.events[0].data == "1");
  CHECK(cr.events[1].data == "2");
}

TEST_CASE("sse: a data field with no colon is an empty data line", "[sse]") {
  auto p = parse("data\ndata: x\n\ndata:\n\n");
  REQUIRE(p.events.size() == 2);
  CHECK(p.events[0].data == "\nx");
  CHECK(p.events[1].data == "");
}

TEST_CASE("sse: finish() delivers a last event without its blank line", "[sse]") {
  SECTION("terminated last line") {
    auto p = parse("data: 1\n\ndata: last\n");
    REQUIRE(p.events.size() == 2);
    CHECK(p.events[1].data == "last");
  }
  SECTION("unterminated last line") {
    auto p = parse("event: message_stop\ndata: {\"type\":\"message_stop\"}");
    REQUIRE(p.events.size() == 1);
    CHECK(p.events[0].event == "message_stop");
    CHECK(p.events[0].data == "{\"type\":\"message_stop\"}");
  }
  SECTION("nothing pending") {
    auto p = parse("data: 1\n\n");
    CHECK(p.events.size() == 1);
  }
}

TEST_CASE("sse: lines that are not SSE fields go to the other-line handler", "[sse]") {
  auto p = parse("{\n  \"error\": {\n    \"code\": 429\n  }\n}\nretry: 3000\ndata: x\n\n");
  REQUIRE(p.other_lines.size() == 5);
  CHECK(p.other_lines[0] == "{");
  CHECK(p.other_lines[1] == "  \"error\": {");
  CHECK(p.other_lines[2] == "    \"code\": 429");
  CHECK(p.other_lines[4] == "}");
  REQUIRE(p.events.size() == 1);  // retry: is a known field, silently used up
  CHECK(p.events[0].data == "x");
}

TEST_CASE("sse: a UTF-8 BOM before the first line is skipped", "[sse]") {
  auto p = parse(
      "\xEF\xBB\xBF"
      "data: x\n\n");
  REQUIRE(p.events.size() == 1);
  CHECK(p.events[0].data == "x");
  CHECK(p.other_lines.empty());
}

TEST_CASE("sse: every split of the bytes gives the same events", "[sse]") {
  const std::string text =
      "\r\n: keep-alive\r\nevent: message_start\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n"
      "data: caf\xC3\xA9\n\n"
      "event: message_stop\rdata: end\r\r"
      "data: tail";
  auto whole = parse(text);
  REQUIRE(whole.events.size() == 4);
  CHECK(whole.events[0].data == "{\"a\":\n1}");
  CHECK(whole.events[1].data == "caf\xC3\xA9");
  CHECK(whole.events[2].event == "message_stop");
  CHECK(whole.events[3].data == "tail");
  size_t piece = GENERATE(1, 2, 3, 5, 7, 13);
  auto split = parse(text, piece);
  CHECK(same(whole.events, split.events));
}
