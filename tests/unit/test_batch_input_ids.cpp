// Ids of the `detour batch` input: IdSet, the duplicate check with both line numbers, and the
// scan of a whole input before anything is sent (src/batch/id_set.hpp, input_scan.hpp).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "batch/id_scan.hpp"
#include "batch/id_set.hpp"
#include "batch/input_line.hpp"
#include "batch/input_scan.hpp"

using namespace detour::batch;

namespace {

using Ids = std::vector<std::pair<std::string, std::uint64_t>>;

// A replayable stream over `ids` that counts how often it was played.
IdStream stream_of(const Ids& ids, int& plays) {
  return [&ids, &plays](const IdVisitor& visit) {
    ++plays;
    for (const auto& [id, line] : ids)
      if (!visit(id, line)) break;
  };
}

// An InputSource reading `text` from a pipe, as `detour batch -` would.
void open_pipe(InputSource& source, const std::string& text) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::write(fds[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fds[1]);
  REQUIRE(source.open_fd(fds[0], "stdin", true) == "");
}

}  // namespace

TEST_CASE("batch ids: hash_id is stable and spreads", "[batch]") {
  CHECK(hash_id("a1") == hash_id(std::string("a1")));
  CHECK(hash_id("a1") != hash_id("a2"));
  CHECK(hash_id("") != hash_id(std::string_view("\0", 1)));
  // No collision among a hundred thousand ids that differ in one place.
  IdSet set;
  for (int i = 0; i < 100000; ++i)
    set.add("req-" + std::to_string(i));
  set.freeze();
  CHECK(set.size() == 100000);
}

TEST_CASE("batch ids: IdSet answers for what was added", "[batch]") {
  IdSet set;
  CHECK(set.empty());
  set.freeze();
  CHECK_FALSE(set.contains("x"));
  for (const char* id : {"b", "a", "c", "a", "42"})
    set.add(id);
  set.freeze();
  CHECK(set.size() == 4);
  for (const char* id : {"a", "b", "c", "42"})
    CHECK(set.contains(id));
  for (const char* id : {"", "d", "A", "42 ", "4"})
    CHECK_FALSE(set.contains(id));
  set.add("d");
  set.freeze();
  CHECK(set.contains("d"));
}

TEST_CASE("batch ids: the first duplicate is named with both line numbers", "[batch]") {
  struct Row {
    const char* name;
    Ids ids;
    std::optional<std::tuple<std::string, std::uint64_t, std::uint64_t>> expected;
    int plays;
  };
  const std::vector<Row> rows = {
      {"no ids", {}, std::nullopt, 1},
      {"all distinct: one pass", {{"a", 1}, {"b", 2}, {"c", 4}}, std::nullopt, 1},
      {"one duplicate", {{"a", 1}, {"b", 2}, {"a", 5}}, {{"a", 1, 5}}, 2},
      {"the earliest second occurrence wins",
       {{"x", 1}, {"y", 2}, {"y", 3}, {"x", 4}},
       {{"y", 2, 3}},
       2},
      {"three times: the first two lines",
       {{"z", 3}, {"q", 4}, {"z", 9}, {"z", 10}},
       {{"z", 3, 9}},
       2},
      // A line without an id has its line number as id, which an explicit id can repeat.
      {"a line number against an explicit id", {{"2", 2}, {"2", 6}}, {{"2", 2, 6}}, 2},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    int plays = 0;
    const auto found = find_duplicate_id(stream_of(row.ids, plays));
    CHECK(plays == row.plays);
    REQUIRE(found.has_value() == row.expected.has_value());
    if (found) {
      CHECK(found->id == std::get<0>(*row.expected));
      CHECK(found->first_line == std::get<1>(*row.expected));
      CHECK(found->second_line == std::get<2>(*row.expected));
    }
  }
  CHECK(describe({"a\"1", 3, 7}) == R"(duplicate id "a\"1" on lines 3 and 7)");
}

TEST_CASE("batch ids: many duplicates are still found in flat memory", "[batch]") {
  // Ids 1..N then 1..N again: every hash repeats, the first duplicate is line N+1.
  constexpr std::uint64_t n = 50000;
  int plays = 0;
  const IdStream ids = [&](const IdVisitor& visit) {
    ++plays;
    for (std::uint64_t line = 1; line <= 2 * n; ++line)
      if (!visit(std::to_string((line - 1) % n), line)) return;
  };
  const auto found = find_duplicate_id(ids);
  REQUIRE(found);
  CHECK(found->id == "0");
  CHECK(found->first_line == 1);
  CHECK(found->second_line == n + 1);
  CHECK(plays == 2);
}

TEST_CASE("batch ids: scan_input counts lines and requests and rewinds", "[batch]") {
  const std::string text =
      "{\"id\": \"a\", \"prompt\": \"x\"}\n"
      "\n"
      "not json\r\n"
      "   \n" +
      std::string(100, 'x') +
      "\n"
      "{\"custom_id\": \"c\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", "
      "\"body\": {}}";
  InputSource source(50);
  open_pipe(source, text);
  const InputScan scan = scan_input(source);
  CHECK(scan.lines == 6);
  CHECK(scan.requests == 4);  // blank lines are no requests; bad and too-long lines are
  CHECK_FALSE(scan.duplicate);
  // Rewound: the run reads from line 1.
  InputLine line;
  REQUIRE(source.next(line));
  CHECK(line.number == 1);
  CHECK(line.text == R"({"id": "a", "prompt": "x"})");
}

TEST_CASE("batch ids: scan_input reports a duplicate and still rewinds", "[batch]") {
  // Line 3 has no id, so its id is "3", which line 5 repeats; the too-long line 4 is "4".
  const std::string text =
      "{\"id\": \"first\", \"prompt\": \"x\"}\n"
      "\n"
      "{\"prompt\": \"no id\"}\n" +
      std::string(80, 'x') +
      "\n"
      "{\"id\": 3, \"prompt\": \"x\"}\n"
      "{\"id\": \"4\", \"prompt\": \"x\"}\n";
  InputSource source(50);
  open_pipe(source, text);
  const InputScan scan = scan_input(source);
  CHECK(scan.lines == 6);
  CHECK(scan.requests == 5);
  REQUIRE(scan.duplicate);
  CHECK(describe(*scan.duplicate) == R"(duplicate id "3" on lines 3 and 5)");
  InputLine line;
  std::uint64_t count = 0;
  while (source.next(line))
    ++count;
  CHECK(count == 6);
}

TEST_CASE("batch ids: the fast id scanner is sure of ordinary lines only", "[batch]") {
  using detour::batch::detail::scan_line_id;
  struct Row {
    const char* line;
    bool sure;
    const char* id;  // when sure; "" for none
  };
  const std::vector<Row> rows = {
      {R"({"id": "a1", "prompt": "x", "metadata": {"k": [1, -2.5, true, null, {}]}})", true, "a1"},
      {R"({"prompt": "x\n\"q\" \u00e9", "id": 7})", true, "7"},
      {R"( { "id" : -12 , "n": 0.25 } )", true, "-12"},
      {R"({"id": -0})", true, "0"},
      {R"({"id": 1.0})", true, ""},
      {R"({"id": ""})", true, ""},
      {R"({"custom_id": "c", "id": "i", "body": {"messages": []}})", true, "c"},
      {R"({"body": {}, "id": "i"})", true, ""},
      {"{}", true, ""},
      // Left to nlohmann: exponents, long numbers, surrogates, escaped keys and ids, errors.
      {R"({"id": "a", "x": 1e5})", false, ""},
      {R"({"id": 1234567890123456789})", false, ""},
      {R"({"id": "a", "x": "\ud83d\ude00"})", false, ""},
      {R"({"\u0069d": "a"})", false, ""},
      {R"({"id": "a\"b"})", false, ""},
      {"\xef\xbb\xbf{}", false, ""},
      {R"({"id": "a",})", false, ""},
      {R"({"id": 01})", false, ""},
      {R"([1])", false, ""},
      {R"({"a": tru})", false, ""},
      {R"({"a": [1 2]})", false, ""},
      {R"({"a": "x)", false, ""},
  };
  for (const auto& row : rows) {
    INFO(row.line);
    const auto scanned = scan_line_id(row.line);
    REQUIRE(scanned.has_value() == row.sure);
    if (scanned) CHECK(scanned->id.value_or("") == row.id);
  }
}

TEST_CASE("batch ids: line_id gives parse_line's id on ten thousand mutated lines", "[batch]") {
  const std::vector<std::string> seeds = {
      R"({"id": "a1", "prompt": "x", "metadata": {"k": [1, -2.5, true, null, {}]}})",
      R"({"id": 42, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})",
      R"({"custom_id": "c-9", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": []}})",
      R"({"prompt": "p\u00e9\n", "id": -7, "temperature": 0.5})",
      R"({"body": null, "id": "x", "custom_id": 3})",
  };
  const std::string alphabet = "{}[]\":,\\ u0123456789.-eEtrfalsnidbody_c\t";
  std::mt19937 rng(20240531);  // fixed: the same lines on every run
  int sure = 0;
  for (int round = 0; round < 10000; ++round) {
    std::string line = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !line.empty(); ++e) {
      const std::size_t at = rng() % line.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          line.erase(at, 1);
          break;
        case 1:
          line.insert(at, 1, c);
          break;
        default:
          line[at] = c;
      }
    }
    const ParsedLine parsed = parse_line(line, 5);
    const std::string id = std::visit([](const auto& p) { return p.id; }, parsed);
    INFO(line);
    REQUIRE(line_id(line, 5) == id);
    if (detour::batch::detail::scan_line_id(line)) ++sure;
  }
  CHECK(sure > 1000);  // the fast path was exercised, not only the fallback
}
