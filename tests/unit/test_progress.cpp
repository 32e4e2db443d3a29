// The batch progress line: its text from counts, and when it is drawn (io/progress.hpp).
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "io/progress.hpp"

using namespace detour;
using namespace std::chrono_literals;

TEST_CASE("group_thousands puts a comma every three digits", "[progress]") {
  CHECK(io::group_thousands(0) == "0");
  CHECK(io::group_thousands(999) == "999");
  CHECK(io::group_thousands(1000) == "1,000");
  CHECK(io::group_thousands(1234567) == "1,234,567");
}

TEST_CASE("progress_text shows done/total, percent, rate, ETA and the counts", "[progress]") {
  io::ProgressCounts c;
  c.total = 10'000;
  c.done = 1'000;
  c.ok = 990;
  c.failed = 10;
  c.rate_limited = 2;
  c.failovers = 5;
  // 1,000 lines in 20 s: 50/s, 9,000 left: 180 s.
  CHECK(io::progress_text(c, 20'000ms) ==
        "1,000/10,000 10% 50.0/s ETA 3m | ok 990 | failed 10 | 429s 2 | failovers 5");
}

TEST_CASE("progress_text leaves out what it cannot know yet", "[progress]") {
  io::ProgressCounts c;
  SECTION("nothing done: no rate, no ETA") {
    c.total = 50;
    CHECK(io::progress_text(c, 0ms) == "0/50 0% | ok 0 | failed 0 | 429s 0 | failovers 0");
  }
  SECTION("no total (stdin still being read): no percent, no ETA") {
    c.done = 300;
    c.ok = 300;
    CHECK(io::progress_text(c, 2'000ms) == "300 150/s | ok 300 | failed 0 | 429s 0 | failovers 0");
  }
  SECTION("all done: no ETA") {
    c.total = c.done = c.ok = 4;
    CHECK(io::progress_text(c, 2'000ms) ==
          "4/4 100% 2.0/s | ok 4 | failed 0 | 429s 0 | failovers 0");
  }
}

TEST_CASE("parse_progress_mode knows bar, plain and none", "[progress]") {
  CHECK(io::parse_progress_mode("bar") == io::ProgressMode::bar);
  CHECK(io::parse_progress_mode("plain") == io::ProgressMode::plain);
  CHECK(io::parse_progress_mode("none") == io::ProgressMode::none);
  CHECK_FALSE(io::parse_progress_mode("fancy").has_value());
}

namespace {

std::string read_all(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buffer[512];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0)
    out.append(buffer, n);
  return out;
}

}  // namespace

TEST_CASE("a bar redraws at most every 200 ms and is cleared at the end", "[progress]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  const auto t0 = io::ProgressReporter::Clock::time_point{} + 1h;
  io::ProgressCounts c;
  c.total = 10;
  {
    io::ProgressReporter bar(io::ProgressMode::bar, f, /*out_is_tty=*/true);
    for (int i = 0; i <= 10; ++i) {
      c.done = c.ok = static_cast<std::uint64_t>(i);
      bar.update(c, t0 + i * 50ms);  // 0 .. 500 ms: drawn at 200 and 400
    }
  }
  const std::string out = read_all(f);
  std::fclose(f);
  std::size_t draws = 0;
  for (std::size_t at = out.find("\r"); at != std::string::npos; at = out.find("\r", at + 1))
    ++draws;
  CHECK(draws == 3);  // two drawings and the clearing
  CHECK(out.find("4/10 40%") != std::string::npos);
  CHECK(out.find("8/10 80%") != std::string::npos);
  CHECK(out.substr(out.size() - 4) == "\r\x1b[K");
}

TEST_CASE("bar on a pipe draws nothing; plain writes a line every 5 s", "[progress]") {
  const auto t0 = io::ProgressReporter::Clock::time_point{} + 1h;
  io::ProgressCounts c;
  c.total = 100;
  SECTION("bar, not a terminal") {
    std::FILE* f = std::tmpfile();
    {
      io::ProgressReporter bar(io::ProgressMode::bar, f, /*out_is_tty=*/false);
      CHECK(bar.mode() == io::ProgressMode::none);
      for (int i = 0; i < 100; ++i) {
        c.done = static_cast<std::uint64_t>(i);
        bar.update(c, t0 + i * 1s);
      }
    }
    CHECK(read_all(f).empty());
    std::fclose(f);
  }
  SECTION("plain") {
    std::FILE* f = std::tmpfile();
    {
      io::ProgressReporter plain(io::ProgressMode::plain, f, /*out_is_tty=*/false);
      for (int i = 0; i <= 12; ++i) {
        c.done = static_cast<std::uint64_t>(i);
        plain.update(c, t0 + i * 1s);  // drawn at 5 s and 10 s
      }
    }
    const std::string out = read_all(f);
    std::fclose(f);
    CHECK(out ==
          "detour: batch: 5/100 5% 1.0/s ETA 1m35s | ok 0 | failed 0 | 429s 0 | failovers 0\n"
          "detour: batch: 10/100 10% 1.0/s ETA 1m30s | ok 0 | failed 0 | 429s 0 | failovers 0\n");
  }
}
