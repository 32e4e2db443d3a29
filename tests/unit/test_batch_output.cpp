// `detour batch` output: detour's line format, the ordered writer and the output file
// (README, "`detour batch`"). The OpenAI format is in test_batch_output_openai.cpp, --resume in
// test_batch_output_resume.cpp.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <thread>
#include <vector>

#include "batch/id_set.hpp"
#include "batch/ordered_writer.hpp"
#include "batch/output_file.hpp"
#include "batch/output_line.hpp"
#include "batch_output_util.hpp"

using namespace detour;
using namespace detour::testing::batch_output;
using Json = nlohmann::ordered_json;
using batch::OutputFormat;

namespace {

batch::LineContext line(Json id, std::optional<std::string> route = std::nullopt) {
  batch::LineContext context;
  context.id = std::move(id);
  context.route = std::move(route);
  return context;
}

}  // namespace

TEST_CASE("an answered line carries the documented keys in the documented order", "[batch]") {
  const Json j = batch::result_line(OutputFormat::detour, line("a1", "smart"), answered(), 0);
  CHECK(keys_of(j) == std::vector<std::string>{"id", "ok", "content", "provider", "model", "route",
                                               "degraded", "finish_reason", "usage", "cost_usd",
                                               "latency_ms", "attempts"});
  CHECK(j["id"] == "a1");
  CHECK(j["ok"] == true);
  CHECK(j["content"] == "hello");
  CHECK(j["provider"] == "openai");
  CHECK(j["model"] == "gpt-4o-mini");
  CHECK(j["route"] == "smart");
  CHECK(j["degraded"] == true);
  CHECK(j["finish_reason"] == "stop");
  CHECK(j["usage"] ==
        Json{{"input_tokens", 12}, {"output_tokens", 34}, {"cached_input_tokens", nullptr}});
  CHECK(j["cost_usd"] == Approx(0.000022));
  CHECK(j["latency_ms"] == 812);
  // Two requests were sent; the target skipped for its open circuit was not one.
  CHECK(j["attempts"] == 2);
}

TEST_CASE("what an answer does not know is null", "[batch]") {
  auto result = answered();
  result.reply.usage = {std::nullopt, 7, std::nullopt};
  result.reply.finish_reason.clear();
  result.cost_usd.reset();
  const Json j = batch::result_line(OutputFormat::detour, line(3), result, 0);
  CHECK(j["id"] == 3);  // a line-number id stays a number
  CHECK(j["route"].is_null());
  CHECK(j["finish_reason"].is_null());
  CHECK(j["usage"]["input_tokens"].is_null());
  CHECK(j["usage"]["output_tokens"] == 7);
  CHECK(j["cost_usd"].is_null());
}

TEST_CASE("tokens read from a prompt cache are shown in both formats", "[batch]") {
  auto result = answered();
  result.reply.usage.cached_input_tokens = 10;
  const Json detour_line = batch::result_line(OutputFormat::detour, line("a"), result, 0);
  CHECK(detour_line["usage"]["cached_input_tokens"] == 10);
  const Json openai_line = batch::result_line(OutputFormat::openai, line("a"), result, 0);
  CHECK(openai_line.dump().find("\"prompt_tokens_details\":{\"cached_tokens\":10}") !=
        std::string::npos);
}

TEST_CASE("lines that did not succeed: class, status, message and the requests sent", "[batch]") {
  struct Row {
    const char* name;
    Json line;
    Json error;
    int attempts;
  };
  const Row rows[] = {
      {"a call that failed",
       batch::result_line(OutputFormat::detour, line("a1", "smart"), overloaded(), 0),
       {{"class", "overloaded"}, {"status", 503}, {"message", "openai/gpt-4o: busy"}},
       2},
      {"a malformed input line",
       batch::not_sent_line(OutputFormat::detour, line(7), batch::kBadInput, "line 7: not JSON"),
       {{"class", "bad_input"}, {"status", nullptr}, {"message", "line 7: not JSON"}},
       0},
      {"over the budget",
       batch::not_sent_line(OutputFormat::detour, line("b2"), batch::kBudgetExceeded,
                            "--max-cost 1.00 reached"),
       {{"class", "budget_exceeded"}, {"status", nullptr}, {"message", "--max-cost 1.00 reached"}},
       0},
      {"interrupted before it was sent",
       batch::not_sent_line(OutputFormat::detour, line("c3"), "cancelled", "interrupted"),
       {{"class", "cancelled"}, {"status", nullptr}, {"message", "interrupted"}},
       0},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    CHECK(keys_of(row.line) == std::vector<std::string>{"id", "ok", "error", "attempts"});
    CHECK(row.line["ok"] == false);
    CHECK(row.line["error"] == row.error);
    CHECK(keys_of(row.line["error"]) == std::vector<std::string>{"class", "status", "message"});
    CHECK(row.line["attempts"] == row.attempts);
  }
}

TEST_CASE("metadata is copied unchanged, its key order kept, as the last key", "[batch]") {
  auto context = line("a1");
  context.metadata = Json::parse(R"({"zeta": 1, "alpha": {"y": [1, 2], "b": null}, "mid": "x"})");
  const auto expected = R"({"zeta":1,"alpha":{"y":[1,2],"b":null},"mid":"x"})";
  for (auto format : {OutputFormat::detour, OutputFormat::openai}) {
    const Json lines[] = {
        batch::result_line(format, context, answered(), 0),
        batch::result_line(format, context, overloaded(), 0),
        batch::not_sent_line(format, context, batch::kBadInput, "line 1: no prompt"),
        batch::not_sent_line(format, context, "cancelled", "interrupted"),
    };
    for (const auto& j : lines) {
      INFO(j.dump());
      CHECK(keys_of(j).back() == "metadata");
      CHECK(j["metadata"].dump() == expected);
    }
  }
  // Without metadata in the input there is none in the output.
  CHECK_FALSE(
      batch::result_line(OutputFormat::detour, line("a1"), answered(), 0).contains("metadata"));
}

TEST_CASE("an output line is one line of valid UTF-8 ending in a newline", "[batch]") {
  // Content with newlines, a cut multi-byte character and a NUL.
  const std::string content = std::string("first\nsecond \xe2\x82 end") + '\0' + "\r\n";
  const auto text =
      batch::to_line(batch::result_line(OutputFormat::detour, line("a1"), answered(content), 0));
  CHECK(text.back() == '\n');
  CHECK(text.find('\n') == text.size() - 1);
  const auto parsed = nlohmann::json::parse(text);  // throws on invalid UTF-8
  CHECK(parsed["content"].get<std::string>().rfind("first\nsecond ", 0) == 0);
}

TEST_CASE("--output-format names and id keys", "[batch]") {
  CHECK(batch::parse_output_format("detour") == OutputFormat::detour);
  CHECK(batch::parse_output_format("openai") == OutputFormat::openai);
  CHECK_FALSE(batch::parse_output_format("OpenAI"));
  CHECK_FALSE(batch::parse_output_format(""));
  CHECK(batch::id_key(Json("a1")) == "a1");
  CHECK(batch::id_key(Json(7)) == "7");
  CHECK(batch::id_key(nlohmann::json("7")) == batch::id_key(Json(7)));
}

// ---- the ordered writer ----

TEST_CASE("lines finished out of order are written in input order", "[batch]") {
  RecordingSink sink;
  batch::OrderedWriter writer(sink, 8, false);
  writer.finish(2, "c\n");
  writer.finish(1, "b\n");
  CHECK(sink.lines.empty());
  CHECK(writer.held() == 2);
  writer.finish(0, "a\n");  // the head: it and both held lines go out
  CHECK(sink.lines == std::vector<std::string>{"a\n", "b\n", "c\n"});
  CHECK(writer.held() == 0);
  CHECK(writer.written() == 3);
  writer.finish(4, "e\n");
  writer.finish(3, "d\n");
  CHECK(sink.lines.size() == 5);
  CHECK(sink.lines[3] == "d\n");
  CHECK(sink.lines[4] == "e\n");
  CHECK(writer.head() == 5);
}

TEST_CASE("a slow head line fills the window and admission pauses", "[batch]") {
  RecordingSink sink;
  batch::OrderedWriter writer(sink, 3, false);
  // Lines 0, 1, 2 are admitted; 3 is not while 0 is unwritten.
  CHECK(writer.has_room(0));
  CHECK(writer.has_room(2));
  CHECK_FALSE(writer.has_room(3));
  writer.finish(1, "b\n");
  writer.finish(2, "c\n");
  CHECK(writer.held() == 2);
  CHECK_FALSE(writer.has_room(3));
  // A line outside the window is a runner bug, not something to hold.
  CHECK_THROWS_AS(writer.finish(3, "d\n"), std::logic_error);
  writer.finish(0, "a\n");
  CHECK(writer.held() == 0);
  CHECK(writer.has_room(5));
  CHECK_FALSE(writer.has_room(6));
  // Finishing a line twice, or one already written, is refused.
  writer.finish(4, "e\n");
  CHECK_THROWS_AS(writer.finish(4, "e\n"), std::logic_error);
  CHECK_THROWS_AS(writer.finish(1, "b\n"), std::logic_error);
  CHECK_THROWS_AS(batch::OrderedWriter(sink, 0, false), std::logic_error);
}

TEST_CASE("--unordered writes each line as it finishes and never pauses", "[batch]") {
  RecordingSink sink;
  batch::OrderedWriter writer(sink, 2, true);
  writer.finish(5, "f\n");
  writer.finish(0, "a\n");
  writer.finish(3, "d\n");
  CHECK(sink.lines == std::vector<std::string>{"f\n", "a\n", "d\n"});
  CHECK(writer.held() == 0);
  CHECK(writer.written() == 3);
  CHECK(writer.has_room(1000));
}

TEST_CASE("a line the sink refuses stays unwritten and the error reaches the caller", "[batch]") {
  RecordingSink sink;
  sink.fail_write(2);
  batch::OrderedWriter writer(sink, 4, false);
  writer.finish(1, "b\n");
  CHECK_THROWS_AS(writer.finish(0, "a\n"), batch::OutputError);
  CHECK(sink.lines == std::vector<std::string>{"a\n"});
  CHECK(writer.written() == 1);
  CHECK(writer.head() == 1);
  CHECK(writer.held() == 1);  // "b" was not lost: it is still the head
}

// ---- the output file ----

TEST_CASE("the write loop retries interrupted and partial writes", "[batch]") {
  struct Step {
    ssize_t result;  // bytes taken, or -1 with `error`
    int error;
  };
  struct Row {
    const char* name;
    std::vector<Step> steps;
    int expected;
    std::string written;
  };
  const std::string data = "{\"id\":\"a1\"}\n";
  const Row rows[] = {
      {"whole at once", {{12, 0}}, 0, data},
      {"in three pieces", {{3, 0}, {4, 0}, {5, 0}}, 0, data},
      {"interrupted, then whole", {{-1, EINTR}, {-1, EINTR}, {12, 0}}, 0, data},
      {"partial, interrupted, rest", {{5, 0}, {-1, EINTR}, {7, 0}}, 0, data},
      {"disk full after a piece", {{5, 0}, {-1, ENOSPC}}, ENOSPC, data.substr(0, 5)},
      {"reader gone", {{-1, EPIPE}}, EPIPE, ""},
      {"a write that takes nothing", {{0, 0}}, EIO, ""},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    std::string written;
    std::size_t step = 0;
    auto write_some = [&](const char* bytes, std::size_t size) -> ssize_t {
      REQUIRE(step < row.steps.size());
      const auto [result, error] = row.steps[step++];
      if (result < 0) {
        errno = error;
        return -1;
      }
      REQUIRE(static_cast<std::size_t>(result) <= size);
      written.append(bytes, static_cast<std::size_t>(result));
      return result;
    };
    CHECK(batch::write_fully(write_some, data) == row.expected);
    CHECK(written == row.written);
    CHECK(step == row.steps.size());
  }
}

TEST_CASE("a new output file is created 0600; an existing one keeps its mode", "[batch]") {
  TempDir dir;
  const auto fresh = dir / "out.jsonl";
  {
    auto out = batch::OutputFile::open(fresh, batch::OutputFile::Mode::truncate);
    out.write_line("{\"id\":1}\n");
    out.sync();
    out.close();
  }
  CHECK(mode_of(fresh) == 0600);
  CHECK(read_file(fresh) == "{\"id\":1}\n");

  const auto shared = dir / "shared.jsonl";
  write_file(shared, "old\n");
  REQUIRE(::chmod(shared.c_str(), 0644) == 0);
  {
    auto out = batch::OutputFile::open(shared, batch::OutputFile::Mode::truncate);
    out.write_line("new\n");
  }
  CHECK(mode_of(shared) == 0644);
  CHECK(read_file(shared) == "new\n");
  {
    auto out = batch::OutputFile::open(shared, batch::OutputFile::Mode::append);
    out.write_line("more\n");
  }
  CHECK(mode_of(shared) == 0644);
  CHECK(read_file(shared) == "new\nmore\n");
}

TEST_CASE("output errors name the file", "[batch]") {
  TempDir dir;
  CHECK_THROWS_WITH(
      batch::OutputFile::open(dir / "no/such/dir.jsonl", batch::OutputFile::Mode::truncate),
      Catch::Contains(dir / "no/such/dir.jsonl") && Catch::Contains("No such file or directory"));
  // /dev/full refuses every write with ENOSPC.
  if (::access("/dev/full", W_OK) == 0) {
    auto full = batch::OutputFile::open("/dev/full", batch::OutputFile::Mode::truncate);
    CHECK_THROWS_AS(full.write_line("{}\n"), batch::OutputError);
    CHECK_THROWS_WITH(full.write_line("{}\n"),
                      Catch::Contains("/dev/full") && Catch::Contains("No space left"));
    try {
      full.write_line("{}\n");
    } catch (const batch::OutputError& e) {
      CHECK(e.code() == ExitCode::failed);
    }
  }
  // A pipe whose reader is gone: EPIPE (SIGPIPE is the runner's to handle; ignored here).
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::close(fds[0]);
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &previous);
  auto pipe_out = batch::OutputFile::adopt(fds[1], "stdout");
  CHECK_THROWS_WITH(pipe_out.write_line("{}\n"),
                    Catch::Contains("stdout") && Catch::Contains("Broken pipe"));
  ::sigaction(SIGPIPE, &previous, nullptr);
  pipe_out.close();
  CHECK_THROWS_WITH(pipe_out.write_line("{}\n"), Catch::Contains("closed"));
}

TEST_CASE("standard output is fd 1 and is never closed", "[batch]") {
  auto out = batch::OutputFile::standard_output();
  CHECK(out.fd() == STDOUT_FILENO);
  CHECK(out.name() == "stdout");
  out.close();
  CHECK(::fcntl(STDOUT_FILENO, F_GETFD) != -1);
}

TEST_CASE("a full non-blocking pipe makes the write wait, not fail", "[batch]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK) == 0);
  // Fill the pipe until it refuses more.
  const std::string chunk(4096, 'x');
  std::size_t filled = 0;
  for (;;) {
    const ssize_t n = ::write(fds[1], chunk.data(), chunk.size());
    if (n < 0) break;
    filled += static_cast<std::size_t>(n);
  }
  REQUIRE((errno == EAGAIN || errno == EWOULDBLOCK));
  std::size_t drained = 0;
  std::thread reader([&] {
    char buffer[8192];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) != 0;) {
      if (n > 0) drained += static_cast<std::size_t>(n);
    }
    ::close(fds[0]);
  });
  const std::string line = std::string(100'000, 'y') + "\n";
  {
    auto out = batch::OutputFile::adopt(fds[1], "stdout");
    CHECK_NOTHROW(out.write_line(line));
  }  // closing the write end ends the reader
  reader.join();
  CHECK(drained == filled + line.size());
}
