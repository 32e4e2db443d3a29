// Streaming the `detour batch` input (src/batch/line_reader.hpp): line endings, the line limit
// without holding the long line, pieces of any size, and reading a file or a pipe twice.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "batch/input_line.hpp"
#include "batch/line_reader.hpp"
#include "core/error.hpp"

using namespace detour::batch;

namespace {

// Hands out `text` at most `piece` bytes per read.
LineReader::ReadFn from_string(std::string text, std::size_t piece) {
  return [text = std::move(text), piece, at = std::size_t{0}](char* out, std::size_t cap) mutable {
    const std::size_t n = std::min({piece, cap, text.size() - at});
    std::memcpy(out, text.data() + at, n);
    at += n;
    return n;
  };
}

struct Seen {
  std::uint64_t number;
  std::string text;
  bool too_long;
  bool operator==(const Seen&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Seen& s) {
  return os << "{" << s.number << ", \"" << s.text << "\", " << s.too_long << "}";
}

template <typename Source>
std::vector<Seen> all_lines(Source& source) {
  std::vector<Seen> seen;
  InputLine line;
  while (source.next(line))
    seen.push_back({line.number, std::string(line.text), line.too_long});
  return seen;
}

std::vector<Seen> read_all(const std::string& text, std::size_t limit, std::size_t piece,
                           std::size_t chunk = 64 * 1024) {
  LineReader reader(from_string(text, piece), limit, chunk);
  return all_lines(reader);
}

// A temporary file with `text`, removed at the end of the test.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    const char* dir = std::getenv("TMPDIR");
    path = std::string(dir && *dir ? dir : "/tmp") + "/detour-test-XXXXXX";
    const int fd = ::mkstemp(path.data());
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
  }
  ~TempFile() { std::remove(path.c_str()); }
};

}  // namespace

TEST_CASE("batch reader: line endings and the last line", "[batch]") {
  struct Row {
    const char* name;
    std::string text;
    std::vector<Seen> lines;
  };
  const std::vector<Row> rows = {
      {"empty input", "", {}},
      {"one line with newline", "a\n", {{1, "a", false}}},
      {"last line without newline", "a\nb", {{1, "a", false}, {2, "b", false}}},
      {"CRLF", "a\r\nb\r\n", {{1, "a", false}, {2, "b", false}}},
      {"CRLF, last without newline", "a\r\nb\r", {{1, "a", false}, {2, "b", false}}},
      {"a lone CR inside a line stays", "a\rb\n", {{1, "a\rb", false}}},
      {"blank lines count",
       "\n\r\n  \nx",
       {{1, "", false}, {2, "", false}, {3, "  ", false}, {4, "x", false}}},
      {"only a newline", "\n", {{1, "", false}}},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    for (std::size_t piece : {1, 2, 3, 1000}) {
      INFO("piece " << piece);
      CHECK(read_all(row.text, 100, piece, 4) == row.lines);
      CHECK(read_all(row.text, 100, piece) == row.lines);
    }
  }
}

TEST_CASE("batch reader: an over-long line is skipped and the next one still reads", "[batch]") {
  std::string text(50, 'x');
  text.append(
      "\n"
      R"({"id": "after", "prompt": "p"})"
      "\r\n");
  text.append(10, 'y').append("\r\n").append(11, 'z');
  for (std::size_t piece : {1, 7, 4096}) {
    INFO("piece " << piece);
    LineReader reader(from_string(text, piece), 10, 8);
    InputLine line;
    REQUIRE(reader.next(line));
    CHECK(line.number == 1);
    CHECK(line.too_long);
    CHECK(line.text.empty());
    REQUIRE(reader.next(line));
    CHECK(line.number == 2);
    CHECK(line.too_long);  // 30 bytes: over the limit of 10 too
    REQUIRE(reader.next(line));
    CHECK(line.number == 3);
    CHECK_FALSE(line.too_long);  // exactly the limit, then "\r\n"
    CHECK(line.text == std::string(10, 'y'));
    REQUIRE(reader.next(line));
    CHECK(line.number == 4);
    CHECK(line.too_long);  // one over, at the end of the input without a newline
    CHECK_FALSE(reader.next(line));
  }
  // With a limit that fits, the line after a long one parses with its own line number.
  LineReader reader(from_string(text, 5), 40, 16);
  InputLine line;
  REQUIRE(reader.next(line));
  CHECK(line.too_long);
  REQUIRE(reader.next(line));
  const ParsedLine parsed = parse_line(line.text, line.number);
  REQUIRE(std::holds_alternative<LineRequest>(parsed));
  CHECK(std::get<LineRequest>(parsed).id == "after");
  CHECK(std::get<LineRequest>(parsed).line_no == 2);
}

TEST_CASE("batch reader: a long line is never held whole", "[batch]") {
  // 1 MB in one line under a 1 kB limit: the reader's line buffer stays near the limit.
  std::size_t max_piece_seen = 0;
  const std::string big(1 << 20, 'q');
  LineReader reader(
      [&, at = std::size_t{0}](char* out, std::size_t cap) mutable {
        const std::size_t n = std::min(cap, big.size() + 1 - at);
        if (n == 0) return n;
        std::memset(out, 'q', n);
        if (at + n == big.size() + 1) out[n - 1] = '\n';
        at += n;
        max_piece_seen = std::max(max_piece_seen, n);
        return n;
      },
      1024, 256);
  InputLine line;
  REQUIRE(reader.next(line));
  CHECK(line.too_long);
  CHECK(max_piece_seen <= 256);
  CHECK_FALSE(reader.next(line));
}

TEST_CASE("batch reader: restart reads again from line 1", "[batch]") {
  LineReader reader(from_string("a\nb\n", 100), 100);
  InputLine line;
  REQUIRE(reader.next(line));
  reader.restart(from_string("c\n", 100));
  REQUIRE(reader.next(line));
  CHECK(line.number == 1);
  CHECK(line.text == "c");
}

TEST_CASE("batch input source: a file is read twice", "[batch]") {
  TempFile file("one\r\ntwo\n\nthree");
  InputSource source(100);
  REQUIRE(source.open(file.path) == "");
  CHECK_FALSE(source.spooled());
  const std::vector<Seen> expected = {
      {1, "one", false}, {2, "two", false}, {3, "", false}, {4, "three", false}};
  CHECK(all_lines(source) == expected);
  source.rewind();
  CHECK(all_lines(source) == expected);
  // A pass that stops early starts again at line 1 too.
  source.rewind();
  InputLine line;
  REQUIRE(source.next(line));
  source.rewind();
  CHECK(all_lines(source) == expected);
}

TEST_CASE("batch input source: a regular file on stdin is read from where it was", "[batch]") {
  TempFile file("skipped\nkept\n");
  const int fd = ::open(file.path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::lseek(fd, 8, SEEK_SET) == 8);
  InputSource source(100);
  REQUIRE(source.open_fd(fd, "stdin", true) == "");
  const std::vector<Seen> expected = {{1, "kept", false}};
  CHECK(all_lines(source) == expected);
  source.rewind();
  CHECK(all_lines(source) == expected);
}

TEST_CASE("batch input source: a pipe is spooled and read back as often as needed", "[batch]") {
  std::string text;
  for (int i = 1; i <= 2000; ++i)
    text.append(R"({"id": )")
        .append(std::to_string(i))
        .append(R"(, "prompt": "p"})"
                "\n");
  text.append(300, 'L').append("\nlast");  // a too-long line and no final newline
  // The test writes everything first, so the pipe must hold it all.
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
  REQUIRE(::write(fds[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fds[1]);

  InputSource source(200);
  REQUIRE(source.open_fd(fds[0], "stdin", true) == "");
  CHECK(source.spooled());
  CHECK(source.name() == "stdin");
  const auto first = all_lines(source);
  REQUIRE(first.size() == 2002);
  CHECK(first[0] == Seen{1, R"({"id": 1, "prompt": "p"})", false});
  CHECK(first[2000] == Seen{2001, "", true});
  CHECK(first[2001] == Seen{2002, "last", false});
  source.rewind();
  CHECK(all_lines(source) == first);
  source.rewind();
  CHECK(all_lines(source) == first);
}

TEST_CASE("batch input source: a pass over a pipe that stopped early still sees everything",
          "[batch]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const std::string text = "a\nb\nc\n";
  REQUIRE(::write(fds[1], text.data(), text.size()) == 6);
  ::close(fds[1]);
  InputSource source(100);
  REQUIRE(source.open_fd(fds[0], "pipe", true) == "");
  InputLine line;
  REQUIRE(source.next(line));
  source.rewind();
  const std::vector<Seen> expected = {{1, "a", false}, {2, "b", false}, {3, "c", false}};
  CHECK(all_lines(source) == expected);
}

TEST_CASE("batch input source: errors name the input", "[batch]") {
  InputSource source;
  CHECK(source.open("/nonexistent/detour/in.jsonl") ==
        "/nonexistent/detour/in.jsonl: No such file or directory");
  CHECK(source.open("/") == "/: is a directory");

  // The copy of a pipe goes to $TMPDIR; one that cannot be created is named.
  const char* old = std::getenv("TMPDIR");
  const std::string saved = old ? old : "";
  ::setenv("TMPDIR", "/nonexistent/detour-tmp", 1);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::close(fds[1]);
  CHECK(source.open_fd(fds[0], "stdin", true) ==
        "stdin: cannot create a temporary copy in /nonexistent/detour-tmp: No such file or "
        "directory");
  if (old)
    ::setenv("TMPDIR", saved.c_str(), 1);
  else
    ::unsetenv("TMPDIR");

  // A read error is thrown as a usage error naming the input.
  TempFile file("x\n");
  const int fd = ::open(file.path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  InputSource unreadable;
  REQUIRE(unreadable.open_fd(fd, "in.jsonl", true) == "");
  InputLine line;
  CHECK_THROWS_MATCHES(unreadable.next(line), detour::UsageError,
                       Catch::Message("in.jsonl: read error: Bad file descriptor"));
}
