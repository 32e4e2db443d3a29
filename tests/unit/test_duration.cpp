// parse_duration / format_duration: the forms users type and providers send in headers.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>

#include "core/duration.hpp"

using detour::format_duration;
using detour::Millis;
using detour::parse_duration;

TEST_CASE("parse_duration accepts what users and providers write", "[duration]") {
  struct Row {
    const char* text;
    int64_t ms;
  };
  const Row rows[] = {
      {"250ms", 250},
      {"30s", 30'000},
      {"5m", 300'000},
      {"1h", 3'600'000},
      {"90", 90'000},  // a bare number is seconds
      {"0.5", 500},
      {"1.5s", 1'500},
      {".5s", 500},
      {"6m0s", 360'000},          // OpenAI x-ratelimit-reset-requests
      {"2m59.56s", 179'560},      // OpenAI x-ratelimit-reset-tokens
      {"34.074824224s", 34'075},  // rounded to the nearest millisecond
      {"1h30m", 5'400'000},
      {"1h1m1s", 3'661'000},
      {"  30s\t", 30'000},
      {"0", 0},
      {"0s", 0},
      {"1500us", 2},
      {"1500µs", 2},
      {"2000000ns", 2},
      {"100us", 0},
  };
  for (const auto& row : rows) {
    INFO("text: \"" << row.text << "\"");
    auto parsed = parse_duration(row.text);
    REQUIRE(parsed.has_value());
    CHECK(parsed->count() == row.ms);
  }
}

TEST_CASE("parse_duration rejects what is not a duration", "[duration]") {
  const char* rows[] = {
      "",   "   ",  "soon", "-5",     "-5s", "5x",
      "1d", "1m30",  // bare tail after a unit
      "ms", "s",    ".",    "1.2.3s", "1e3", "5 s",
      "+5", "inf",  "nan",  "5sm",    "s5",  "99999999999999999999h",
  };
  for (const char* text : rows) {
    INFO("text: \"" << text << "\"");
    CHECK_FALSE(parse_duration(text).has_value());
  }
}

TEST_CASE("format_duration writes durations for people", "[duration]") {
  struct Row {
    int64_t ms;
    const char* text;
  };
  const Row rows[] = {
      {0, "0ms"},        {250, "250ms"},    {999, "999ms"},        {1'000, "1s"},
      {1'500, "1.5s"},   {1'049, "1s"},     {1'050, "1.1s"},       {1'999, "2s"},
      {30'000, "30s"},   {59'900, "59.9s"}, {59'999, "1m"},  // not "60.0s"
      {60'000, "1m"},    {65'000, "1m5s"},  {90'000, "1m30s"},     {119'600, "2m"},
      {300'000, "5m"},   {3'600'000, "1h"}, {3'661'000, "1h1m1s"}, {5'400'000, "1h30m"},
      {-1'500, "-1.5s"}, {-250, "-250ms"},
  };
  for (const auto& row : rows) {
    INFO("ms: " << row.ms);
    CHECK(format_duration(Millis(row.ms)) == row.text);
  }
}

TEST_CASE("format_duration output parses back", "[duration]") {
  const int64_t rows[] = {0, 1, 250, 1'000, 1'500, 30'000, 60'000, 65'000, 3'661'000, 86'400'000};
  for (int64_t ms : rows) {
    INFO("ms: " << ms);
    auto parsed = parse_duration(format_duration(Millis(ms)));
    REQUIRE(parsed.has_value());
    CHECK(parsed->count() == ms);
  }
}

TEST_CASE("format_duration survives the extremes", "[duration]") {
  CHECK_FALSE(format_duration(Millis(std::numeric_limits<int64_t>::max())).empty());
  CHECK(format_duration(Millis(std::numeric_limits<int64_t>::min())).front() == '-');
}
