// `detour batch` end to end (README, "detour batch"): the real binary against detour-mock over
// loopback, with the defaults a user gets (retries on, the sqlite state, stdout a pipe).
#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "resilience_util.hpp"

using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::resilience::Env;
using nlohmann::json;

namespace {

RunResult batch(Env& env, std::vector<std::string> args, RunOptions options = {}) {
  std::vector<std::string> argv = {
      detour::testing::detour_bin(), "-c", env.config, "--state", env.state_url(), "batch"};
  argv.insert(argv.end(), args.begin(), args.end());
  options.env["TEST_KEY"] = detour::testing::resilience::kKey;
  return detour::testing::run(argv, options);
}

std::vector<json> lines_of(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    out.push_back(json::parse(line, nullptr, /*allow_exceptions=*/false));
  }
  return out;
}

// n simple lines {"id": "q<i>", "prompt": "question <i>"}.
std::string questions(int n, int from = 0) {
  std::string text;
  for (int i = from; i < from + n; ++i) {
    text +=
        json{{"id", "q" + std::to_string(i)}, {"prompt", "question " + std::to_string(i)}}.dump() +
        "\n";
  }
  return text;
}

}  // namespace

TEST_CASE("batch: one line per input line, in input order, each answering its own prompt",
          "[batch]") {
  // Uneven latencies: answers finish out of order.
  Env env(json{{"default", {{"latency_ms", 5}, {"latency_jitter_ms", 60}}}, {"seed", 7}});
  const std::string input = env.dir.write("in.jsonl", questions(60));
  SECTION("ordered (the default)") {
    RunResult r = batch(env, {input, "-m", "oa/m1", "-j", "16"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    const auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 60);
    for (int i = 0; i < 60; ++i) {
      CAPTURE(i);
      CHECK(lines[i]["id"] == "q" + std::to_string(i));
      CHECK(lines[i]["ok"] == true);
      CHECK(lines[i]["content"] == "mock reply to: question " + std::to_string(i));
      CHECK(lines[i]["provider"] == "oa");
      CHECK(lines[i]["model"] == "m1");
      CHECK(lines[i]["attempts"] == 1);
    }
    // The summary, whatever the terminal.
    CHECK(r.err.find("batch: 60 lines in") != std::string::npos);
    CHECK(r.err.find("60 ok, 0 failed, 0 bad input") != std::string::npos);
    CHECK(env.requests("m1") == 60);
  }
  SECTION("--unordered: every id once, in any order") {
    RunResult r = batch(env, {input, "-m", "oa/m1", "-j", "16", "--unordered"});
    CHECK(r.exit_code == 0);
    std::set<std::string> ids;
    for (const auto& line : lines_of(r.out)) {
      CHECK(line["content"] ==
            "mock reply to: question " + line["id"].get<std::string>().substr(1));
      ids.insert(line["id"].get<std::string>());
    }
    CHECK(ids.size() == 60);
  }
  SECTION("stdin") {
    RunOptions o;
    o.stdin_data = questions(5);
    RunResult r = batch(env, {"-", "-m", "oa/m1"}, o);
    CHECK(r.exit_code == 0);
    CHECK(lines_of(r.out).size() == 5);
  }
}

TEST_CASE("batch: bad lines become bad_input lines and the batch goes on", "[batch]") {
  Env env;
  const std::string input = env.dir.write(
      "in.jsonl",
      std::string("{\"id\":\"a\",\"prompt\":\"first\",\"metadata\":{\"z\":1,\"a\":[2]}}\n"
                  "not json at all\n"
                  "{\"id\":\"b\"}\n"
                  "{\"id\":\"c\",\"prompt\":\"x\",\"max_tokens\":\"ten\"}\n"
                  "\n"
                  "{\"id\":\"d\",\"prompt\":\"bad \xff byte\"}\n"
                  "{\"id\":\"e\",\"prompt\":\"x\",\"model\":\"nowhere/m\"}\n"
                  "{\"custom_id\":\"f\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                  "\"body\":{\"model\":\"oa/m2\",\"messages\":[{\"role\":\"user\",\"content\":"
                  "\"last\"}]}}\n"));
  RunResult r = batch(env, {input, "-m", "oa/m1"});
  INFO(r.err);
  CHECK(r.exit_code == 1);  // some line failed; the output is still complete
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 7);  // the blank line is no request
  CHECK(lines[0]["ok"] == true);
  // Unchanged, key order kept (the parsed lines here sort keys, so look at the text).
  CHECK(r.out.find(R"("metadata":{"z":1,"a":[2]})") != std::string::npos);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"2", "line 2:"}, {"b", "line 3:"}, {"c", "line 4:"}, {"d", "line 6:"}, {"e", "line 7:"}};
  for (std::size_t i = 0; i < bad.size(); ++i) {
    CAPTURE(i);
    const json& line = lines[i + 1];
    CHECK(line["id"] == bad[i].first);
    CHECK(line["ok"] == false);
    CHECK(line["error"]["class"] == "bad_input");
    CHECK(line["error"]["message"].get<std::string>().rfind(bad[i].second, 0) == 0);
    CHECK(line["attempts"] == 0);
  }
  CHECK(lines[3]["error"]["message"].get<std::string>().find("max_tokens") != std::string::npos);
  CHECK(lines[4]["error"]["message"].get<std::string>().find("UTF-8") != std::string::npos);
  CHECK(lines[6]["id"] == "f");
  CHECK(lines[6]["model"] == "m2");  // body.model wins over -m
  CHECK(env.requests("m1") == 1);
  CHECK(env.requests("m2") == 1);
}

TEST_CASE("batch: --output-format openai writes Batch API output lines", "[batch]") {
  Env env;
  const std::string input =
      env.dir.write("in.jsonl",
                    "{\"custom_id\":\"r1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                    "\"body\":{\"model\":\"oa/m1\",\"messages\":[{\"role\":\"user\",\"content\":"
                    "\"hi\"}]}}\n{\"custom_id\":\"r2\",\"prompt\":\"x\"}\n");
  RunResult r = batch(env, {input, "--output-format", "openai"});
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["custom_id"] == "r1");
  CHECK(lines[0]["error"].is_null());
  CHECK(lines[0]["response"]["status_code"] == 200);
  CHECK(lines[0]["response"]["body"]["object"] == "chat.completion");
  CHECK(lines[0]["response"]["body"]["choices"][0]["message"]["content"] == "mock reply to: hi");
  CHECK(lines[1]["custom_id"] == "r2");
  CHECK(lines[1]["error"]["code"] == "bad_input");
}

TEST_CASE("batch: usage errors come before anything is sent", "[batch]") {
  Env env;
  SECTION("duplicate ids: exit 2 naming the id and both lines") {
    const std::string input = env.dir.write(
        "in.jsonl", questions(3) + "{\"id\":\"q1\",\"prompt\":\"again\"}\n" + questions(2, 10));
    RunResult r = batch(env, {input, "-m", "oa/m1"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("duplicate id \"q1\" on lines 2 and 4") != std::string::npos);
    CHECK(r.out.empty());
    CHECK(env.requests("m1") == 0);
  }
  SECTION("--resume without -o") {
    RunResult r = batch(env, {env.dir.write("in.jsonl", questions(1)), "--resume"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--resume needs -o") != std::string::npos);
  }
  SECTION("--option names itself (in batch, -o is the output file)") {
    RunResult r = batch(env, {env.dir.write("in.jsonl", questions(1)), "--option", "stream=true"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--option stream=true: detour sets stream itself") != std::string::npos);
    CHECK(env.requests("m1") == 0);
  }
  SECTION("an input that does not exist") {
    RunResult r = batch(env, {env.dir.file("missing.jsonl"), "-m", "oa/m1"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("missing.jsonl") != std::string::npos);
  }
  SECTION("-m naming nothing is a configuration error") {
    RunResult r = batch(env, {env.dir.write("in.jsonl", questions(1)), "-m", "nowhere/m"});
    CHECK(r.exit_code == 3);
  }
}

TEST_CASE("batch: -o FILE is created 0600; --dry-run sends nothing", "[batch]") {
  Env env;
  const std::string input = env.dir.write("in.jsonl", questions(4) + "{\"id\":\"x\"}\n");
  SECTION("-o") {
    const std::string out = env.dir.file("out.jsonl");
    RunResult r = batch(env, {input, "-m", "oa/m1", "-o", out});
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
    struct stat st {};
    REQUIRE(::stat(out.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(lines_of(env.dir.read("out.jsonl")).size() == 5);
  }
  SECTION("--dry-run") {
    RunResult r = batch(env, {input, "-m", "oa/m1", "--max-tokens", "100", "--dry-run"});
    CHECK(r.exit_code == 1);  // one line is bad
    CHECK(r.out.find("lines: 5 (4 to send, 1 bad)") != std::string::npos);
    CHECK(r.out.find("estimated tokens:") != std::string::npos);
    CHECK(r.out.find("minimum time:") != std::string::npos);
    CHECK(r.err.find("line 5:") != std::string::npos);
    CHECK(env.requests("m1") == 0);
  }
}

TEST_CASE("batch: kill -9 at any point, then --resume, answers every id exactly once", "[batch]") {
  Env env(json{{"default", {{"latency_ms", 40}}}});
  constexpr int kLines = 40;
  const std::string input = env.dir.write("in.jsonl", questions(kLines));
  const std::string out = env.dir.file("out.jsonl");
  for (int after : {1, 12, 30}) {
    CAPTURE(after);
    env.mock.reset_stats();
    RunOptions o;
    o.send_signal = SIGKILL;
    o.signal_when = [&env, after] { return env.mock.stats()["requests"].get<int>() >= after; };
    RunResult killed = batch(env, {input, "-m", "oa/m1", "-j", "4", "-o", out}, o);
    CHECK(killed.exit_code == 128 + SIGKILL);
    // A torn last line, as a crash mid-write leaves it.
    {
      std::string text = env.dir.read("out.jsonl");
      env.dir.write("out.jsonl", text + "{\"id\":\"q39\",\"ok\":tr");
    }
    RunResult resumed = batch(env, {input, "-m", "oa/m1", "-j", "4", "-o", out, "--resume"});
    INFO(resumed.err);
    CHECK(resumed.exit_code == 0);
    std::map<std::string, int> seen;
    for (const auto& line : lines_of(env.dir.read("out.jsonl"))) {
      REQUIRE_FALSE(line.is_discarded());
      CHECK(line["ok"] == true);
      ++seen[line["id"].get<std::string>()];
    }
    CHECK(seen.size() == kLines);
    for (const auto& [id, n] : seen) {
      CAPTURE(id);
      CHECK(n == 1);
    }
    std::remove(out.c_str());
  }
}

TEST_CASE("batch: Ctrl-C writes what is done, exits 130, and --resume completes it", "[batch]") {
  Env env(json{{"default", {{"latency_ms", 100}}}});
  constexpr int kLines = 30;
  const std::string input = env.dir.write("in.jsonl", questions(kLines));
  const std::string out = env.dir.file("out.jsonl");
  RunOptions o;
  o.send_signal = SIGINT;
  o.signal_when = [&env] { return env.mock.stats()["requests"].get<int>() >= 6; };
  RunResult r = batch(env, {input, "-m", "oa/m1", "-j", "3", "-o", out}, o);
  INFO(r.err);
  CHECK(r.exit_code == 130);
  const auto first = lines_of(env.dir.read("out.jsonl"));
  CHECK(first.size() < kLines);
  CHECK(first.size() >= 6);  // those in flight finished within the grace
  for (const auto& line : first)
    CHECK(line["ok"] == true);
  RunResult resumed = batch(env, {input, "-m", "oa/m1", "-j", "3", "-o", out, "--resume"});
  CHECK(resumed.exit_code == 0);
  std::set<std::string> ids;
  for (const auto& line : lines_of(env.dir.read("out.jsonl")))
    ids.insert(line["id"].get<std::string>());
  CHECK(ids.size() == kLines);
  CHECK(lines_of(env.dir.read("out.jsonl")).size() == kLines);
}

TEST_CASE("batch: --max-cost stops admitting lines once the budget would pass", "[batch]") {
  // Each answer's usage: a few tokens at $1,000,000 per million output tokens: about $4 a line.
  Env env(json::object(), "[models.\"oa/m1\"]\ninput_cost = 0.0\noutput_cost = 1000000.0\n");
  const std::string input = env.dir.write("in.jsonl", questions(20));
  RunResult r =
      batch(env, {input, "-m", "oa/m1", "-j", "1", "--max-tokens", "8", "--max-cost", "30"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 20);
  int sent = 0, over = 0;
  for (const auto& line : lines) {
    if (line["ok"] == true) ++sent;
    if (line["ok"] == false && line["error"]["class"] == "budget_exceeded") ++over;
  }
  CHECK(sent + over == 20);
  CHECK(sent >= 1);
  CHECK(over >= 1);
  CHECK(env.requests("m1") == sent);
}

TEST_CASE("batch: an outage in the middle fails lines over to the next target; none is lost",
          "[batch]") {
  Env env(json{{"models",
                {{"primary",
                  {{"latency_ms", 20},
                   {"fault", "overloaded"},
                   {"outage", {{"from_s", 0.3}, {"to_s", 60}}}}},
                 {"backup", {{"latency_ms", 20}}}}}},
          "[routes.r]\ntargets = [\"oa/primary\", \"an/backup\"]\n");
  const std::string input = env.dir.write("in.jsonl", questions(80));
  RunResult r = batch(env, {input, "-m", "r", "-j", "4"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 80);
  std::map<std::string, int> by_model;
  for (int i = 0; i < 80; ++i) {
    CHECK(lines[i]["id"] == "q" + std::to_string(i));
    CHECK(lines[i]["ok"] == true);
    CHECK(lines[i]["route"] == "r");
    ++by_model[lines[i]["model"].get<std::string>()];
  }
  CHECK(by_model["primary"] > 0);
  CHECK(by_model["backup"] > 0);
}

TEST_CASE("batch: a line whose first target is busy spills over to the next; both carry the load",
          "[batch]") {
  // Two mocks of 1,200 requests a minute (burst 2) each, one route over both: paced lines go
  // to whichever target's slot comes first, so the second carries about half, not only what
  // the first could not (README, "Pacing"; tests/bench/run P4 measures the time).
  const json limited = {{"limits", {{"rpm", 1200}, {"burst", 2}}}};
  detour::testing::MockServer second(limited);
  Env env(limited, "[providers.other]\nprotocol = \"openai\"\nbase_url = \"" + second.url() +
                       "/v1\"\napi_key_env = \"TEST_KEY\"\n\n"
                       "[models.\"oa/spill\"]\nrpm = 1200\nburst = 2\n\n"
                       "[models.\"other/spill\"]\nrpm = 1200\nburst = 2\n\n"
                       "[routes.both]\ntargets = [\"oa/spill\", \"other/spill\"]\n");
  const std::string input = env.dir.write("in.jsonl", questions(60));
  RunResult r = batch(env, {input, "-m", "both"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 60);
  std::map<std::string, int> by_provider;
  for (int i = 0; i < 60; ++i) {
    CHECK(lines[i]["id"] == "q" + std::to_string(i));
    CHECK(lines[i]["ok"] == true);
    ++by_provider[lines[i]["provider"].get<std::string>()];
  }
  CHECK(by_provider["oa"] >= 24);
  CHECK(by_provider["other"] >= 24);
  // Paced, not refused: a request or two may still meet a 429 when this machine is so busy
  // that a burst leaves late (the CI's sanitizer build), but no more.
  CHECK(env.mock.stats()["rate_limited"].get<int>() <= 2);
  CHECK(second.stats()["rate_limited"].get<int>() <= 2);
}

TEST_CASE("batch --shard K/N: N runs split one input, every id answered exactly once", "[batch]") {
  Env env;
  // 200 good lines and one that is not JSON (its id is its line number, 201): a bad line's
  // error record belongs to one shard like any other line.
  const std::string input = env.dir.write("in.jsonl", questions(200) + "not json at all\n");
  std::map<std::string, int> seen;  // id -> how many shards wrote it
  std::map<int, std::vector<std::string>> shard_ids;
  for (int k = 1; k <= 4; ++k) {
    CAPTURE(k);
    RunResult r = batch(env, {input, "-m", "oa/m1", "-j", "8", "--shard", std::to_string(k) + "/4",
                              "--progress", "none"});
    INFO(r.err);
    CHECK((r.exit_code == 0 || r.exit_code == 1));  // 1: the shard holding the bad line
    const auto lines = lines_of(r.out);
    CHECK(!lines.empty());
    CHECK(lines.size() < 100);  // about a quarter each
    for (const auto& line : lines) {
      const std::string id = line["id"].get<std::string>();
      ++seen[id];
      shard_ids[k].push_back(id);
    }
    CHECK(r.err.find(std::to_string(201 - lines.size()) + " in other shards") != std::string::npos);
  }
  CHECK(seen.size() == 201);
  for (const auto& [id, times] : seen) {
    CAPTURE(id);
    CHECK(times == 1);
  }
  CHECK(seen.count("201") == 1);
  CHECK(env.requests("m1") == 200);  // nothing sent twice, the bad line never sent

  SECTION("a shard's output resumes on its own") {
    const std::vector<std::string>& mine = shard_ids[2];
    REQUIRE(mine.size() >= 2);
    const std::string out = env.dir.path() + "/shard2.jsonl";
    RunResult first = batch(env, {input, "-m", "oa/m1", "--shard", "2/4", "-o", out});
    REQUIRE(first.exit_code <= 1);
    // Cut the output to its first half, as a crash would leave it, then resume.
    std::istringstream all(env.dir.read("shard2.jsonl"));
    std::string kept, line;
    std::set<std::string> kept_ids;
    for (std::size_t i = 0; i < mine.size() / 2 && std::getline(all, line); ++i) {
      kept += line + "\n";
      kept_ids.insert(json::parse(line)["id"].get<std::string>());
    }
    env.dir.write("shard2.jsonl", kept);
    const int before = env.requests("m1");
    RunResult resumed = batch(env, {input, "-m", "oa/m1", "--shard", "2/4", "-o", out, "--resume"});
    INFO(resumed.err);
    CHECK(resumed.exit_code <= 1);
    std::set<std::string> ids;
    std::size_t count = 0;
    for (const auto& l : lines_of(env.dir.read("shard2.jsonl"))) {
      ids.insert(l["id"].get<std::string>());
      ++count;
    }
    CHECK(count == mine.size());
    CHECK(ids == std::set<std::string>(mine.begin(), mine.end()));
    int resent = 0;  // what was cut, less the bad line (never sent)
    for (const auto& id : mine)
      resent += (kept_ids.count(id) == 0 && id != "201") ? 1 : 0;
    CHECK(env.requests("m1") - before == resent);
  }
  SECTION("--dry-run counts only the shard's lines") {
    RunResult r = batch(env, {input, "-m", "oa/m1", "--shard", "3/4", "--dry-run"});
    CHECK(r.out.find("lines: " + std::to_string(shard_ids[3].size()) + " ") == 0);
    CHECK(r.out.find(" of 201 in the file") != std::string::npos);
  }
  SECTION("a shard that is not K/N is a usage error naming the flag") {
    RunResult r = batch(env, {input, "-m", "oa/m1", "--shard", "5/4"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--shard 5/4: K must be between 1 and N (4); shards count from 1") !=
          std::string::npos);
    CHECK(r.out.empty());
  }
}

// The summary's cost: "$0.0000" would say answers were free when detour does not know their
// price (a model neither [models] nor the built-in catalog prices, as the mock's are).
TEST_CASE("batch: the summary's cost says when answers had no price; one line is '1 line'",
          "[batch]") {
  Env env(json::object(), "[models.\"oa/m1\"]\ninput_cost = 1.0\noutput_cost = 2.0\n");
  SECTION("none priced") {
    const std::string input = env.dir.write("in.jsonl", questions(1));
    RunResult r = batch(env, {input, "-m", "oa/m2"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("batch: 1 line in"));
    CHECK_THAT(r.err, Catch::Contains("cost unknown: every answer came from a model without a "
                                      "price ([models] input_cost, output_cost)"));
  }
  SECTION("some priced") {
    const std::string input = env.dir.write(
        "in.jsonl", questions(2) + R"({"id": "x", "prompt": "p", "model": "oa/m2"})" + "\n");
    RunResult r = batch(env, {input, "-m", "oa/m1"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("batch: 3 lines in"));
    CHECK_THAT(r.err, Catch::Contains(", not counting 1 line from models without a price"));
    CHECK_THAT(r.err, Catch::Contains("; cost $"));
  }
  SECTION("all priced, and the JSON summary") {
    const std::string input = env.dir.write("in.jsonl", questions(2));
    RunResult r = batch(env, {"--log-format", "json", input, "-m", "oa/m1"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, !Catch::Contains("not counting"));
    CHECK_THAT(r.err, Catch::Contains("\"unpriced_lines\":0"));
  }
}
