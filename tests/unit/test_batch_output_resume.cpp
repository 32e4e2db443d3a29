// `detour batch --resume` (README, "`detour batch`"): reading back an output file, cutting a
// torn last line, collecting the ids answered and compacting away the failed lines.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "batch/id_set.hpp"
#include "batch/output_file.hpp"
#include "batch/output_line.hpp"
#include "batch/resume.hpp"
#include "batch_output_util.hpp"
#include "core/error.hpp"

using namespace detour;
using namespace detour::testing::batch_output;
using Json = nlohmann::ordered_json;
using batch::OutputFormat;
using Kind = batch::LineVerdict::Kind;

namespace {

batch::LineContext ctx(Json id) {
  batch::LineContext context;
  context.id = std::move(id);
  return context;
}

std::string ok_line(OutputFormat format, Json id) {
  return batch::to_line(batch::result_line(format, ctx(std::move(id)), answered(), 1));
}

std::string failed_line(OutputFormat format, Json id) {
  return batch::to_line(batch::result_line(format, ctx(std::move(id)), overloaded(), 1));
}

std::vector<std::uint64_t> hashes(std::vector<std::string> ids) {
  std::vector<std::uint64_t> out;
  for (const auto& id : ids)
    out.push_back(batch::hash_id(id));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("resume: each output line is read as answered, failed or not output", "[batch]") {
  struct Row {
    const char* name;
    std::string line;
    Kind kind;
    std::string key;
  };
  const Row rows[] = {
      {"detour ok", ok_line(OutputFormat::detour, "a1"), Kind::answered, "a1"},
      {"detour failed", failed_line(OutputFormat::detour, "a2"), Kind::failed, "a2"},
      {"detour bad input",
       batch::to_line(batch::not_sent_line(OutputFormat::detour, ctx(3), batch::kBadInput,
                                           "line 3: not JSON")),
       Kind::failed, "3"},
      {"openai ok", ok_line(OutputFormat::openai, "r1"), Kind::answered, "r1"},
      {"openai failed", failed_line(OutputFormat::openai, "r2"), Kind::failed, "r2"},
      {"openai line-number id", ok_line(OutputFormat::openai, 9), Kind::answered, "9"},
      // OpenAI's own error-file line: an HTTP error with a null `error`.
      {"openai HTTP error",
       R"({"id":"batch_req_1","custom_id":"r3","response":{"status_code":400,"request_id":"x",)"
       R"("body":{"error":{"message":"bad"}}},"error":null})",
       Kind::failed, "r3"},
      {"openai expired",
       R"({"id":"batch_req_2","custom_id":"r4","response":null,)"
       R"("error":{"code":"batch_expired","message":"expired"}})",
       Kind::failed, "r4"},
      {"an input line", R"({"id":"a1","prompt":"hi"})", Kind::foreign, ""},
      {"ok that is not a boolean", R"({"id":"a1","ok":"yes"})", Kind::foreign, ""},
      {"not an object", R"(["id","ok"])", Kind::foreign, ""},
      {"not JSON", "{\"id\":\"a1\",\"ok\":tr", Kind::foreign, ""},
      {"invalid UTF-8", "{\"id\":\"a\xe2\x82\",\"ok\":true}", Kind::foreign, ""},
      {"empty", "", Kind::foreign, ""},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    const auto verdict = batch::judge_output_line(row.line);
    CHECK(verdict.kind == row.kind);
    CHECK(verdict.id_key == row.key);
  }
}

TEST_CASE("resume: no file, or an empty one, is a fresh start", "[batch]") {
  TempDir dir;
  const auto missing = batch::prepare_resume(dir / "out.jsonl");
  CHECK_FALSE(missing.existed);
  CHECK(missing.answered.empty());
  CHECK(missing.kept_lines == 0);
  CHECK_FALSE(fs::exists(dir / "out.jsonl"));

  write_file(dir / "empty.jsonl", "");
  const auto empty = batch::prepare_resume(dir / "empty.jsonl");
  CHECK(empty.existed);
  CHECK(empty.answered.empty());
  CHECK(empty.torn_bytes == 0);
  CHECK_FALSE(empty.rewritten);
  CHECK(read_file(dir / "empty.jsonl").empty());
}

TEST_CASE("resume: a torn last line is cut off at the end of the last good line", "[batch]") {
  const std::string good =
      ok_line(OutputFormat::detour, "a1") + ok_line(OutputFormat::detour, "a2");
  const std::string whole = ok_line(OutputFormat::detour, "a3");
  const std::string euro = batch::to_line(
      batch::result_line(OutputFormat::detour, ctx("a3"), answered("price: \xe2\x82\xac 5"), 1));
  const auto cut_in_euro = euro.find("\xe2\x82\xac") + 2;
  struct Row {
    const char* name;
    std::string tail;
  };
  const Row rows[] = {
      {"cut mid-line", whole.substr(0, whole.size() / 2)},
      {"cut inside a UTF-8 character", euro.substr(0, cut_in_euro)},
      {"whole but for its newline", whole.substr(0, whole.size() - 1)},
      {"a line that is not JSON", "{\"id\":\"a3\",\"ok\":tru}\n"},
      {"zeros left by a lost write", std::string(300, '\0')},
      {"a blank line", "\n"},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    TempDir dir;
    const auto path = dir / "out.jsonl";
    write_file(path, good + row.tail);
    const auto state = batch::prepare_resume(path);
    CHECK(state.torn_bytes == row.tail.size());
    CHECK(state.answered == hashes({"a1", "a2"}));
    CHECK(state.kept_lines == 2);
    CHECK_FALSE(state.answered_ok("a3"));
    CHECK_FALSE(state.rewritten);
    CHECK(read_file(path) == good);
  }
}

TEST_CASE("resume: the ids answered ok are collected, in either format", "[batch]") {
  for (auto format : {OutputFormat::detour, OutputFormat::openai}) {
    INFO((format == OutputFormat::detour ? "detour" : "openai"));
    TempDir dir;
    const auto path = dir / "out.jsonl";
    const std::string content = ok_line(format, "a1") + ok_line(format, 2) + ok_line(format, "a3");
    write_file(path, content);
    const auto state = batch::prepare_resume(path);
    CHECK(state.existed);
    CHECK(state.answered == hashes({"a1", "2", "a3"}));
    CHECK(state.answered_ok("a1"));
    CHECK(state.answered_ok("2"));  // the line-number id 2
    CHECK_FALSE(state.answered_ok("a4"));
    CHECK(state.kept_lines == 3);
    CHECK(state.dropped_failed == 0);
    // Nothing to remove: the file is left as it was, not copied.
    CHECK_FALSE(state.rewritten);
    CHECK(read_file(path) == content);
  }
}

TEST_CASE("resume: failed lines are compacted away, keeping exactly the answers", "[batch]") {
  for (auto format : {OutputFormat::detour, OutputFormat::openai}) {
    INFO((format == OutputFormat::detour ? "detour" : "openai"));
    TempDir dir;
    const auto path = dir / "out.jsonl";
    // As a killed run followed by a resumed run leaves it: b failed first, then was answered
    // by the resumed run; c failed both times; a was answered twice (a file concatenated by
    // hand); the resumed run was killed mid-line.
    const std::string a = ok_line(format, "a");
    const std::string b = ok_line(format, "b");
    const std::string bad =
        batch::to_line(batch::not_sent_line(format, ctx(4), batch::kBadInput, "line 4: not JSON"));
    write_file(path, a + failed_line(format, "b") + failed_line(format, "c") + bad + b +
                         failed_line(format, "c") + ok_line(format, "a") +
                         ok_line(format, "d").substr(0, 20));
    REQUIRE(::chmod(path.c_str(), 0640) == 0);

    const auto state = batch::prepare_resume(path);
    CHECK(state.rewritten);
    CHECK(state.answered == hashes({"a", "b"}));
    CHECK(state.kept_lines == 2);
    CHECK(state.dropped_failed == 4);
    CHECK(state.dropped_duplicates == 1);
    CHECK(state.torn_bytes == 20);
    CHECK_FALSE(state.answered_ok("c"));
    CHECK_FALSE(state.answered_ok("4"));
    // Exactly one line per answered id, the first of each, byte for byte; the mode kept.
    CHECK(read_file(path) == a + b);
    CHECK(mode_of(path) == 0640);
    CHECK_FALSE(fs::exists(path + ".tmp"));

    // Resuming again finds nothing more to do.
    const auto again = batch::prepare_resume(path);
    CHECK_FALSE(again.rewritten);
    CHECK(again.answered == state.answered);
    CHECK(read_file(path) == a + b);
  }
}

TEST_CASE("resume: then appending keeps every id exactly once", "[batch]") {
  TempDir dir;
  const auto path = dir / "out.jsonl";
  write_file(path, ok_line(OutputFormat::detour, "a") + failed_line(OutputFormat::detour, "b"));
  const auto state = batch::prepare_resume(path);
  {
    auto out = batch::OutputFile::open(path, batch::OutputFile::Mode::append);
    for (const char* id : {"a", "b", "c"}) {
      if (!state.answered_ok(id)) out.write_line(ok_line(OutputFormat::detour, id));
    }
  }
  CHECK(read_file(path) == ok_line(OutputFormat::detour, "a") + ok_line(OutputFormat::detour, "b") +
                               ok_line(OutputFormat::detour, "c"));
}

TEST_CASE("resume: a file that is not batch output is refused and left alone", "[batch]") {
  TempDir dir;
  const auto path = dir / "input.jsonl";
  // The input file given as -o by mistake: compacting it would delete it.
  const std::string input =
      "{\"id\":\"a1\",\"prompt\":\"hi\"}\n{\"id\":\"a2\",\"prompt\":\"yo\"}\n";
  write_file(path, input);
  CHECK_THROWS_AS(batch::prepare_resume(path), UsageError);
  CHECK_THROWS_WITH(batch::prepare_resume(path),
                    Catch::Contains(path) && Catch::Contains("line 1"));
  CHECK(read_file(path) == input);

  // A bad line before the last one is not a torn tail either.
  const std::string mixed =
      ok_line(OutputFormat::detour, "a") + "garbage\n" + ok_line(OutputFormat::detour, "b");
  write_file(path, mixed);
  CHECK_THROWS_WITH(batch::prepare_resume(path), Catch::Contains("line 2"));
  CHECK(read_file(path) == mixed);

  CHECK_THROWS_AS(batch::prepare_resume(dir / ""), UsageError);  // a directory
}

TEST_CASE("resume: answered ids take 8 bytes each", "[batch]") {
  // 200k lines keep the test fast; a million ids would take 8 MB.
  constexpr std::size_t kIds = 200'000;
  TempDir dir;
  const auto path = dir / "out.jsonl";
  {
    // Short lines of detour's shape; what is measured is what the scan keeps.
    std::string content;
    content.reserve(30 * kIds);
    for (std::size_t i = 0; i < kIds; ++i) {
      content += "{\"id\":\"";
      content += std::to_string(i);
      content += "\",\"ok\":true}\n";
    }
    write_file(path, content);
  }
  const auto state = batch::prepare_resume(path);
  CHECK(state.kept_lines == kIds);
  CHECK(state.answered.size() == kIds);
  CHECK(state.answered.capacity() * sizeof(std::uint64_t) == 8 * kIds);
  CHECK(state.answered_ok("0"));
  CHECK(state.answered_ok(std::to_string(kIds - 1)));
  CHECK_FALSE(state.answered_ok(std::to_string(kIds)));
}

TEST_CASE("the batch output: stdout, a fresh file, or a resumed one", "[batch]") {
  TempDir dir;
  const auto path = dir / "out.jsonl";
  CHECK(batch::open_batch_output(std::nullopt, false).file.name() == "stdout");
  CHECK_THROWS_AS(batch::open_batch_output(std::nullopt, true), UsageError);

  write_file(path, ok_line(OutputFormat::detour, "a") + failed_line(OutputFormat::detour, "b"));
  {
    auto resumed = batch::open_batch_output(path, true);
    CHECK(resumed.resume.answered_ok("a"));
    CHECK_FALSE(resumed.resume.answered_ok("b"));
    resumed.file.write_line(ok_line(OutputFormat::detour, "b"));
  }
  CHECK(read_file(path) == ok_line(OutputFormat::detour, "a") + ok_line(OutputFormat::detour, "b"));
  {
    auto fresh = batch::open_batch_output(path, false);
    CHECK_FALSE(fresh.resume.existed);
  }
  CHECK(read_file(path).empty());
}
