// Precedence end to end: flags, then DETOUR_* environment variables, then the config file,
// then built-in defaults. For each variable detour reads (DETOUR_CONFIG, DETOUR_MODEL,
// DETOUR_TIMEOUT, DETOUR_DEADLINE, DETOUR_RETRIES, DETOUR_STATE): the variable beats the file,
// and the flag beats the variable.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness.hpp"
#include "resilience_util.hpp"

using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::resilience::Env;
using detour::testing::resilience::kKey;
using detour::testing::resilience::parse_json;
using detour::testing::resilience::providers_toml;
using nlohmann::json;

namespace {

RunOptions with_env(std::map<std::string, std::string> vars) {
  RunOptions o;
  o.env = std::move(vars);
  return o;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// The file's defaults, which every variable below overrides.
const char* kFileDefaults =
    "[defaults]\nmodel = \"oa/from-file\"\ntimeout = \"30s\"\ndeadline = \"1m\"\nretries = 2\n"
    "state = \"memory\"\n\n";

}  // namespace

TEST_CASE("env precedence: DETOUR_MODEL beats the file; -m beats DETOUR_MODEL", "[env]") {
  Env env;
  env.config = env.dir.write("config.toml", kFileDefaults + providers_toml(env.mock));
  CHECK(parse_json(env.ask({"--json", "hi"}))["model"] == "from-file");
  const RunOptions o = with_env({{"DETOUR_MODEL", "oa/from-env"}});
  CHECK(parse_json(env.ask({"--json", "hi"}, o))["model"] == "from-env");
  CHECK(parse_json(env.ask({"--json", "-m", "oa/from-flag", "hi"}, o))["model"] == "from-flag");
}

TEST_CASE("env precedence: DETOUR_CONFIG is read; and -c beats it", "[env]") {
  Env env;
  const std::string from_env = env.dir.write(
      "env.toml", "[defaults]\nmodel = \"oa/config-env\"\n\n" + providers_toml(env.mock));
  const std::string from_flag = env.dir.write(
      "flag.toml", "[defaults]\nmodel = \"oa/config-flag\"\n\n" + providers_toml(env.mock));
  const RunOptions o = with_env({{"DETOUR_CONFIG", from_env}, {"TEST_KEY", kKey}});
  const std::string bin = detour::testing::detour_bin();
  RunResult r = detour::testing::run({bin, "ask", "--json", "hi"}, o);
  INFO(r.err);
  CHECK(parse_json(r)["model"] == "config-env");
  r = detour::testing::run({bin, "-c", from_flag, "ask", "--json", "hi"}, o);
  INFO(r.err);
  CHECK(parse_json(r)["model"] == "config-flag");
}

TEST_CASE("env precedence: DETOUR_TIMEOUT and DETOUR_DEADLINE beat the file; flags beat them",
          "[env]") {
  // `slow` answers after 1 s: too slow for the variables' 150ms, in time for the flags' 30s.
  Env env(json{{"models", {{"slow", {{"latency_ms", 1000}}}}}});
  env.config = env.dir.write("config.toml", kFileDefaults + providers_toml(env.mock));
  for (const char* var : {"DETOUR_TIMEOUT", "DETOUR_DEADLINE"}) {
    INFO(var);
    const std::string flag = std::string(var) == "DETOUR_TIMEOUT" ? "--timeout" : "--deadline";
    const RunOptions o = with_env({{var, "150ms"}});
    RunResult r = env.ask({"--json", "--retries", "0", "-m", "oa/slow", "hi"}, o);
    CHECK(r.exit_code == 1);
    auto j = parse_json(r);
    CHECK(j["error"]["class"] == "timeout");
    CHECK(j["latency_ms"] < 1000);  // it did not wait for the answer

    r = env.ask({"--json", flag, "30s", "--retries", "0", "-m", "oa/slow", "hi"}, o);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(parse_json(r)["model"] == "slow");
  }
}

TEST_CASE("env precedence: DETOUR_RETRIES beats the file; --retries beats it", "[env]") {
  const json flaky_once = {{"models", {{"flaky", {{"fault", "server_error"}, {"times", 1}}}}}};
  Env env(flaky_once);
  env.config = env.dir.write("config.toml", kFileDefaults + providers_toml(env.mock));
  const RunOptions o = with_env({{"DETOUR_RETRIES", "0"}});
  // The file allows 2 retries; the variable none: the one 500 ends the call.
  RunResult r = env.ask({"--json", "-m", "oa/flaky", "hi"}, o);
  CHECK(r.exit_code == 1);
  CHECK(parse_json(r)["attempts"].size() == 1);
  CHECK(env.requests("flaky") == 1);

  env.mock.set_scenario(flaky_once);
  env.mock.reset_stats();
  r = env.ask({"--json", "--retries", "1", "-m", "oa/flaky", "hi"}, o);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(parse_json(r)["attempts"].size() == 2);
  CHECK(env.requests("flaky") == 2);
}

TEST_CASE("env precedence: DETOUR_STATE beats the file; --state beats it", "[env]") {
  Env env;
  env.config = env.dir.write("config.toml", kFileDefaults + providers_toml(env.mock));
  const std::string env_db = env.dir.file("env.db");
  const std::string flag_db = env.dir.file("flag.db");
  const RunOptions o = with_env({{"DETOUR_STATE", "sqlite://" + env_db}});

  REQUIRE(env.ask({"--state", "sqlite://" + flag_db, "hi"}, o).exit_code == 0);
  CHECK(exists(flag_db));
  CHECK_FALSE(exists(env_db));

  REQUIRE(env.ask({"hi"}, o).exit_code == 0);  // the file says memory; the variable wins
  CHECK(exists(env_db));
}
