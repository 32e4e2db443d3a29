// What one detour process learns and the next one knows (issue 3; docs/architecture.md, "Shared
// state"): circuit breakers across processes through a shared state file, routes and tiers, and the
// state file's failure modes, which must never fail a call.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "harness.hpp"
#include "resilience_util.hpp"

using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::TempDir;
using detour::testing::resilience::attempts_of;
using detour::testing::resilience::count_lines;
using detour::testing::resilience::dead_provider_toml;
using detour::testing::resilience::Env;
using detour::testing::resilience::parse_json;
using nlohmann::json;

namespace {

json models(json per_model) {
  return json{{"models", std::move(per_model)}};
}

// Runs SQL on a database file with the sqlite3 C API; returns false (and says why) on failure.
bool sql(const std::string& path, const std::string& statements) {
  sqlite3* db = nullptr;
  bool ok = sqlite3_open(path.c_str(), &db) == SQLITE_OK &&
            sqlite3_exec(db, statements.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
  if (!ok) WARN("sqlite: " << (db ? sqlite3_errmsg(db) : "cannot open"));
  sqlite3_close(db);
  return ok;
}

// The names in a database's sqlite_master, sorted.
std::vector<std::string> tables_of(const std::string& path) {
  std::vector<std::string> names;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_exec(
        db, "SELECT name FROM sqlite_master ORDER BY name",
        [](void* out, int, char** values, char**) {
          static_cast<std::vector<std::string>*>(out)->push_back(values[0] ? values[0] : "");
          return 0;
        },
        &names, nullptr);
  }
  sqlite3_close(db);
  return names;
}

// Asks oa/ok with the state at `url` and checks the call succeeded with exactly one warning.
void check_one_warning_and_success(Env& env, const std::string& url, const std::string& says,
                                   RunOptions options = {}) {
  RunResult r = env.ask({"--state", url, "-m", "oa/ok", "hi"}, std::move(options));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "mock reply to: hi\n");
  CHECK(count_lines(r.err, "detour: warning: ") == 1);
  CHECK(count_lines(r.err, "continuing without shared state (memory)") == 1);
  CHECK_THAT(r.err, Catch::Contains(says));
  CHECK(count_lines(r.err, "detour: ") == 1);  // and nothing else
}

// Options that run detour as `nobody` when the tests run as root (as in CI), where permission
// bits would stop nothing and a read-only test would pass without testing anything. The test
// directory becomes traversable and readable (config.toml) and each of `owned` becomes that
// user's, so that only the permissions a test then takes away are missing.
RunOptions unprivileged(Env& env, const std::vector<std::string>& owned) {
  RunOptions o;
  o.run_as_uid = detour::testing::kNobody;
  o.run_as_gid = detour::testing::kNobody;
  if (!detour::testing::drops_privileges(o)) return o;
  REQUIRE(::chmod(env.dir.path().c_str(), 0755) == 0);
  REQUIRE(::chmod(env.config.c_str(), 0644) == 0);
  for (const auto& path : owned)
    REQUIRE(::chown(path.c_str(), detour::testing::kNobody, detour::testing::kNobody) == 0);
  return o;
}

}  // namespace

// ---- circuit breakers across processes ------------------------------------------------------

TEST_CASE("a circuit opened by three processes is skipped by the fourth", "[resilience]") {
  Env env(json::object(), dead_provider_toml());
  const std::vector<std::string> chain = {"-m", "dead/primary", "-m", "oa/ok", "hi"};

  SECTION("with a shared state file") {
    const std::string state = env.state_url();
    for (int i = 0; i < 3; ++i) {
      INFO("process " << i + 1);
      std::vector<std::string> args = {"--state", state, "--json"};
      args.insert(args.end(), chain.begin(), chain.end());
      auto j = parse_json(env.ask(args));
      CHECK(j["model"] == "ok");
      REQUIRE(j["attempts"].size() == 2);
      CHECK(j["attempts"][0]["error"] == "connection");
    }
    std::vector<std::string> args = {"-v", "--state", state, "--json"};
    args.insert(args.end(), chain.begin(), chain.end());
    auto r = env.ask(args);
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(r);
    CHECK(j["model"] == "ok");
    REQUIRE(j["attempts"].size() == 2);
    CHECK(j["attempts"][0]["model"] == "primary");
    CHECK(j["attempts"][0]["status"].is_null());
    CHECK(j["attempts"][0]["error"] == "skipped_open");
    CHECK(j["attempts"][1]["status"] == 200);
    CHECK_THAT(r.err, Catch::Contains("dead/primary: skipped_open (circuit open for "));
    CHECK_THAT(r.err, Catch::Contains("after connection"));
    CHECK(count_lines(r.err, "attempt ") == 1);  // only oa/ok was sent anything
    CHECK(env.requests("ok") == 4);
  }

  SECTION("with --state memory nothing is shared") {
    for (int i = 0; i < 4; ++i) {
      INFO("process " << i + 1);
      std::vector<std::string> args = {"--state", "memory", "--json"};
      args.insert(args.end(), chain.begin(), chain.end());
      auto j = parse_json(env.ask(args));
      CHECK(j["model"] == "ok");
      REQUIRE(j["attempts"].size() == 2);
      CHECK(j["attempts"][0]["error"] == "connection");
    }
  }
}

TEST_CASE("after the cooldown one process probes, and its success closes the circuit",
          "[resilience]") {
  Env env(models({{"flaky", {{"fault", "close"}}}}), "[breaker]\ncooldown = \"500ms\"\n");
  const std::string state = env.state_url();
  auto ask = [&] {
    return parse_json(env.ask(
        {"--state", state, "--json", "--retries", "0", "-m", "oa/flaky", "-m", "an/ok", "hi"}));
  };
  for (int i = 0; i < 3; ++i)
    CHECK(ask()["model"] == "ok");
  CHECK(env.requests("flaky") == 3);
  // flaky recovers; the answer of the next process takes longer than the cooldown.
  env.mock.set_scenario(models({{"ok", {{"latency_ms", 700}}}}));
  env.mock.reset_stats();
  auto j = ask();
  CHECK(j["attempts"][0]["error"] == "skipped_open");
  CHECK(j["model"] == "ok");
  CHECK(env.requests("flaky") == 0);
  // Now the cooldown is over: the probe goes through, succeeds and closes the circuit.
  for (int i = 0; i < 2; ++i) {
    j = ask();
    CHECK(j["model"] == "flaky");
    CHECK(j["attempts"].size() == 1);
  }
  CHECK(env.requests("flaky") == 2);
}

TEST_CASE("quota_exhausted and auth open the circuit at once, for every later process",
          "[resilience]") {
  Env env(models({{"broke", {{"fault", "insufficient_quota"}}}, {"nokey", {{"fault", "auth"}}}}));
  const std::string state = env.state_url();
  for (const char* target : {"oa/broke", "an/nokey"}) {
    INFO(target);
    auto j = parse_json(env.ask({"--state", state, "--json", "-m", target, "-m", "oa/ok", "hi"}));
    CHECK(j["model"] == "ok");
    j = parse_json(env.ask({"--state", state, "--json", "-m", target, "-m", "oa/ok", "hi"}));
    CHECK(j["model"] == "ok");
    CHECK(j["attempts"][0]["error"] == "skipped_open");
  }
  CHECK(env.requests("broke") == 1);
  CHECK(env.requests("nokey") == 1);
  // A key refused a minute ago is still refused: alone in a chain it exits 5 unsent.
  auto r = env.ask({"--state", state, "-m", "an/nokey", "hi"});
  CHECK(r.exit_code == 5);
  CHECK(env.requests("nokey") == 1);
}

// ---- routes and tiers ---------------------------------------------------------------------

TEST_CASE("round-robin takes turns across processes through the state file", "[resilience]") {
  Env env(json::object(),
          "[routes.rr]\nstrategy = \"round-robin\"\ntargets = [\"oa/r1\", \"an/r2\"]\n");
  const std::string state = env.state_url();
  std::vector<std::string> served;
  for (int i = 0; i < 4; ++i) {
    auto j = parse_json(env.ask({"--state", state, "--json", "-m", "rr", "hi"}));
    served.push_back(j.value("model", ""));
    CHECK(j["route"] == "rr");
  }
  CHECK(served[0] != served[1]);
  CHECK(served[1] != served[2]);
  CHECK(served[2] != served[3]);
  CHECK(env.requests("r1") == 2);
  CHECK(env.requests("r2") == 2);

  // In memory every process starts the rotation afresh.
  std::vector<std::string> alone;
  for (int i = 0; i < 3; ++i)
    alone.push_back(
        parse_json(env.ask({"--state", "memory", "--json", "-m", "rr", "hi"}))["model"]);
  CHECK(alone[0] == alone[1]);
  CHECK(alone[1] == alone[2]);
}

TEST_CASE("falling to a lower tier is degraded, and --no-degrade and min_tier forbid it",
          "[resilience]") {
  Env env(models({{"strong", {{"fault", "unavailable"}}}}),
          "[models.\"oa/strong\"]\ntier = 3\n\n[models.\"an/weak\"]\ntier = 1\n\n"
          "[routes.tiered]\ntargets = [\"oa/strong\", \"an/weak\"]\n\n"
          "[routes.floored]\ntargets = [\"oa/strong\", \"an/weak\"]\nmin_tier = 2\n");
  auto r = env.ask({"--json", "--retries", "0", "-m", "tiered", "hi"});
  REQUIRE(r.exit_code == 0);
  auto j = parse_json(r);
  CHECK(j["model"] == "weak");
  CHECK(j["degraded"] == true);
  CHECK(count_lines(r.err, "degraded") == 1);
  CHECK_THAT(r.err, Catch::Contains("warning: degraded: answered by an/weak, a lower tier than "
                                    "oa/strong"));
  r = env.ask({"--retries", "0", "-m", "tiered", "hi"});
  CHECK(r.exit_code == 0);
  CHECK(count_lines(r.err, "degraded") == 1);  // said every time, not only with --json
  CHECK(env.requests("weak") == 2);

  env.mock.reset_stats();
  r = env.ask({"--json", "--no-degrade", "--retries", "0", "-m", "tiered", "hi"});
  CHECK(r.exit_code == 1);
  CHECK(parse_json(r)["error"]["class"] == "overloaded");
  r = env.ask({"--json", "--retries", "0", "-m", "floored", "hi"});
  CHECK(r.exit_code == 1);
  CHECK(attempts_of(parse_json(r), "weak").empty());
  CHECK(env.requests("strong") == 2);
  CHECK(env.requests("weak") == 0);

  // The same tier, or no tiers at all, is not degraded.
  env.mock.set_scenario(models({{"first", {{"fault", "unavailable"}}}}));
  j = parse_json(env.ask({"--json", "--retries", "0", "-m", "oa/first", "-m", "an/second", "hi"}));
  CHECK(j["model"] == "second");
  CHECK(j["degraded"] == false);
}

// ---- the state file -----------------------------------------------------------------------

TEST_CASE("the default state file is created 0600 under $XDG_STATE_HOME/detour", "[resilience]") {
  Env env(json::object(), dead_provider_toml());
  TempDir home;
  RunOptions o;
  o.home = home.path();
  for (int i = 0; i < 3; ++i)
    CHECK(env.ask({"-m", "dead/primary", "-m", "oa/ok", "hi"}, o).exit_code == 0);
  const std::string path = home.path() + "/.local/state/detour/state.db";
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  for (const char* suffix : {"-wal", "-shm"}) {
    if (::stat((path + suffix).c_str(), &st) == 0) CHECK((st.st_mode & 0777) == 0600);
  }
  REQUIRE(::stat((home.path() + "/.local/state/detour").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  // And it is shared: the fourth process with this home skips the dead primary.
  auto j = parse_json(env.ask({"--json", "-m", "dead/primary", "-m", "oa/ok", "hi"}, o));
  CHECK(j["attempts"][0]["error"] == "skipped_open");
}

TEST_CASE("a corrupt state file warns once and the call succeeds", "[resilience]") {
  Env env;
  std::string garbage;
  for (int i = 0; i < 8192; ++i)
    garbage += static_cast<char>((i * 7919 + 13) % 251);
  const std::string path = env.dir.write("s.db", garbage);
  check_one_warning_and_success(env, "sqlite://" + path, "state file " + path);
  CHECK(env.dir.read("s.db") == garbage);  // left as it was

  // A file that claims to be SQLite but whose pages are garbage.
  const std::string fake =
      env.dir.write("fake.db", std::string("SQLite format 3\0", 16) + garbage.substr(0, 4080));
  check_one_warning_and_success(env, "sqlite://" + fake, "state file " + fake);
}

TEST_CASE("another program's SQLite database is refused with one warning and left untouched",
          "[resilience]") {
  Env env;
  const std::string path = env.dir.file("theirs.db");
  REQUIRE(sql(path,
              "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
              "INSERT INTO users(name) VALUES ('ada');"));
  check_one_warning_and_success(env, "sqlite://" + path, "another program's tables");
  CHECK(tables_of(path) == std::vector<std::string>{"users"});
}

TEST_CASE("a state file that cannot be written warns once and the call succeeds", "[resilience]") {
  Env env;
  SECTION("its directory cannot be created: a file is in the way") {
    env.dir.write("blocker", "a file, not a directory");
    check_one_warning_and_success(env, "sqlite://" + env.dir.file("blocker/s.db"),
                                  "is not a directory");
  }
  SECTION("the state path is a directory") {
    REQUIRE(::mkdir(env.dir.file("adir").c_str(), 0700) == 0);
    check_one_warning_and_success(env, "sqlite://" + env.dir.file("adir"),
                                  "cannot open for writing");
  }
  SECTION("a read-only directory") {
    const std::string ro = env.dir.file("ro");
    REQUIRE(::mkdir(ro.c_str(), 0700) == 0);
    RunOptions o = unprivileged(env, {ro});
    REQUIRE(::chmod(ro.c_str(), 0500) == 0);
    check_one_warning_and_success(env, "sqlite://" + ro + "/s.db", "state file " + ro, o);
    struct stat st {};
    CHECK(::stat((ro + "/s.db").c_str(), &st) != 0);  // nothing was created there
  }
  SECTION("a read-only state file") {
    const std::string rw = env.dir.file("rw");
    REQUIRE(::mkdir(rw.c_str(), 0700) == 0);
    RunOptions o = unprivileged(env, {rw});
    const std::string path = rw + "/s.db";
    // A real state file, made by the same user, then made read-only.
    REQUIRE(env.ask({"--state", "sqlite://" + path, "-m", "oa/ok", "hi"}, o).exit_code == 0);
    REQUIRE(::chmod(path.c_str(), 0400) == 0);
    const std::string before = env.dir.read("rw/s.db");
    check_one_warning_and_success(env, "sqlite://" + path, "state file " + path, o);
    CHECK(env.dir.read("rw/s.db") == before);
  }
}

TEST_CASE("a state file locked by another process warns once and the call succeeds",
          "[resilience]") {
  Env env;
  const std::string path = env.dir.file("s.db");
  // A real detour state file first, then a writer that holds its write lock throughout.
  REQUIRE(env.ask({"--state", "sqlite://" + path, "-m", "oa/ok", "hi"}).exit_code == 0);
  sqlite3* holder = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &holder) == SQLITE_OK);
  REQUIRE(sqlite3_exec(holder, "BEGIN IMMEDIATE; INSERT INTO kv VALUES('lock', '{}');", nullptr,
                       nullptr, nullptr) == SQLITE_OK);
  check_one_warning_and_success(env, "sqlite://" + path, "state file " + path);
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
}
