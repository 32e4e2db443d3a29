// What detour writes on stderr, end to end: -q leaves only errors, -vv adds a line as each
// attempt is sent, and --log-format json makes every line one JSON object with the level, the
// message and the attempt's fields, so a log pipeline can read it without parsing prose.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "harness.hpp"
#include "resilience_util.hpp"

using detour::testing::RunResult;
using detour::testing::resilience::count_lines;
using detour::testing::resilience::Env;
using nlohmann::json;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// Every line of stderr parsed; fails the test for a line that is not a JSON object with a
// level and a message.
std::vector<json> json_lines(const std::string& err) {
  std::vector<json> out;
  for (const auto& line : lines_of(err)) {
    INFO("stderr line: " << line);
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    REQUIRE(j.is_object());
    REQUIRE(j.contains("level"));
    CHECK(std::set<std::string>{"info", "warning", "error"}.count(j["level"].get<std::string>()));
    REQUIRE(j.contains("message"));
    CHECK(j["message"].is_string());
    out.push_back(std::move(j));
  }
  return out;
}

// A chain whose first target is of a higher tier and fails (moves on, no retry) and whose
// second answers: the answer is degraded, which detour warns about.
const char* kTiers =
    "[models.\"oa/top\"]\ntier = 3\n\n[models.\"an/low\"]\ntier = 1\n\n"
    "[routes.r]\ntargets = [\"oa/top\", \"an/low\"]\n";

json scenario() {
  return json{{"models", {{"top", {{"fault", "not_found"}}}, {"broken", {{"fault", "auth"}}}}}};
}

}  // namespace

TEST_CASE("cli output: -q leaves only errors on stderr", "[cli-output]") {
  Env env(scenario(), kTiers);
  // A corrupt state file warns too.
  const std::string bad_state = "sqlite://" + env.dir.write("bad.db", std::string(4096, 'x'));

  RunResult loud = env.ask({"--state", bad_state, "-m", "r", "hi"});
  INFO(loud.err);
  REQUIRE(loud.exit_code == 0);
  CHECK(count_lines(loud.err, "detour: warning: degraded: answered by an/low") == 1);
  CHECK(count_lines(loud.err, "continuing without shared state") == 1);

  RunResult quiet = env.ask({"-q", "--state", bad_state, "-m", "r", "hi"});
  CHECK(quiet.exit_code == 0);
  CHECK(quiet.out == "mock reply to: hi\n");
  CHECK(quiet.err.empty());

  RunResult failed = env.ask({"-q", "--state", bad_state, "-m", "oa/broken", "hi"});
  CHECK(failed.exit_code == 5);
  CHECK(lines_of(failed.err).size() == 1);
  CHECK(count_lines(failed.err, "detour: error: auth") == 1);
}

TEST_CASE("cli output: -vv adds a line as each attempt is sent", "[cli-output]") {
  Env env(scenario(), kTiers);
  RunResult v = env.ask({"-v", "-m", "r", "hi"});
  REQUIRE(v.exit_code == 0);
  CHECK(count_lines(v.err, "detour: attempt 1: oa/top: 404 not_found") == 1);
  CHECK(count_lines(v.err, ": sending") == 0);

  RunResult vv = env.ask({"-vv", "-m", "r", "hi"});
  INFO(vv.err);
  REQUIRE(vv.exit_code == 0);
  const auto lines = lines_of(vv.err);
  REQUIRE(lines.size() >= 4);
  CHECK(lines[0] == "detour: attempt 1: oa/top: sending");
  CHECK(count_lines(vv.err, "detour: attempt 1: oa/top: 404 not_found") == 1);
  CHECK(count_lines(vv.err, "detour: attempt 2: an/low: sending") == 1);
  CHECK(count_lines(vv.err, "detour: attempt 2: an/low: 200 in ") == 1);
  CHECK(count_lines(vv.err, "detour: warning: degraded") == 1);
}

TEST_CASE("cli output: --log-format json writes one JSON object per stderr line", "[cli-output]") {
  Env env(scenario(), kTiers);
  const std::string bad_state = "sqlite://" + env.dir.write("bad.db", std::string(4096, 'x'));

  RunResult r = env.ask({"-vv", "--log-format", "json", "--state", bad_state, "-m", "r", "hi"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "mock reply to: hi\n");  // stdout is the answer, as ever
  const auto lines = json_lines(r.err);
  int starts = 0, attempts = 0, warnings = 0;
  for (const auto& j : lines) {
    INFO(j.dump());
    if (j["level"] == "warning") ++warnings;
    if (j.value("event", "") == "attempt_start") {
      ++starts;
      CHECK(j["level"] == "info");
      CHECK(j["attempt"].is_number_integer());
      CHECK(j["target"].is_string());
    }
    if (j.value("event", "") == "attempt") {
      ++attempts;
      for (const char* key :
           {"attempt", "target", "status", "error", "latency_ms", "waited_ms", "hedge", "decision"})
        CHECK(j.contains(key));
      CHECK(j["latency_ms"].is_number_integer());
      CHECK(j["decision"].is_string());
    }
  }
  CHECK(starts == 2);
  CHECK(attempts == 2);
  CHECK(warnings == 2);  // the state file, and the degraded answer
  REQUIRE(lines.size() >= 4);
  CHECK(lines[0]["level"] == "warning");  // the state file is opened first
  const json* first = nullptr;
  for (const auto& j : lines)
    if (j.value("event", "") == "attempt" && !first) first = &j;
  REQUIRE(first);
  CHECK((*first)["target"] == "oa/top");
  CHECK((*first)["status"] == 404);
  CHECK((*first)["error"] == "not_found");
  CHECK((*first)["attempt"] == 1);

  // A failed call's error line is an object too.
  RunResult failed = env.ask({"--log-format", "json", "-m", "oa/broken", "hi"});
  CHECK(failed.exit_code == 5);
  const auto failed_lines = json_lines(failed.err);
  REQUIRE(failed_lines.size() == 1);
  CHECK(failed_lines[0]["level"] == "error");
  CHECK_THAT(failed_lines[0]["message"].get<std::string>(), Catch::StartsWith("auth: "));
}

// A configuration error (exit 3) comes after the global options are parsed: it is a JSON line too.
TEST_CASE("cli output: --log-format json also covers configuration errors", "[cli-output]") {
  Env env;
  RunResult r = env.ask({"--log-format", "json", "-m", "nosuch/provider-model", "hi"});
  CHECK(r.exit_code == 3);
  const auto lines = json_lines(r.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["level"] == "error");
}
