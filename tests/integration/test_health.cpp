// `detour health` end to end: the real binary probing detour-mock over loopback. What each
// probe finds (ok, auth, down, not_found, rate_limited, quota_exhausted, degraded), what it
// costs the provider (no tokens for --probe models, one for --probe chat), the --fail-on
// verdicts and exit codes, --timeout, and what the probes leave in the shared state.
#include <catch2/catch.hpp>
#include <chrono>
#include <set>

#include "harness.hpp"

using detour::testing::MockServer;
using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::TempDir;
using nlohmann::json;

namespace {

const char* kKey = "sk-health-SECRET-0123456789abcdef";

std::string provider(const std::string& name, const std::string& base_url,
                     const std::string& key_env) {
  return "[providers." + name + "]\nprotocol = \"openai\"\nbase_url = \"" + base_url +
         "\"\napi_key_env = \"" + key_env + "\"\n\n";
}

// One mock requiring kKey, reached through providers that each break in their own way:
//   m      the right key (HKEY)            wrong  a wrong key (WRONG_KEY)
//   dead   a port nothing listens on       nokey  a key variable that is not set, on its own
//   bare   no target names it (a provider probe)   mock, which must never be asked anything
struct World {
  MockServer mock;
  MockServer nokey_mock;
  TempDir dir;
  std::string config;
  std::string state;

  explicit World(const json& scenario = json::object())
      : mock(scenario, {"--api-key", kKey}), nokey_mock(json::object(), {"--api-key", kKey}) {
    const std::string dead = "http://127.0.0.1:" + std::to_string(detour::testing::free_port());
    config =
        dir.write("config.toml", provider("m", mock.url() + "/v1", "HKEY") +
                                     provider("wrong", mock.url() + "/v1", "WRONG_KEY") +
                                     provider("dead", dead + "/v1", "HKEY") +
                                     provider("nokey", nokey_mock.url() + "/v1", "UNSET_KEY_VAR") +
                                     provider("bare", mock.url() + "/v1", "HKEY") +
                                     "[models.\"m/mock-1\"]\n[models.\"m/absent-model\"]\n"
                                     "[models.\"wrong/mock-1\"]\n[models.\"dead/mock-1\"]\n"
                                     "[models.\"nokey/mock-1\"]\n\n"
                                     "[routes.r]\ntargets = [\"dead/primary\", \"m/mock-2\"]\n\n"
                                     "[routes.gone]\ntargets = [\"dead/a\", \"dead/b\"]\n");
    state = "sqlite://" + dir.file("s.db");
  }

  RunResult detour(std::vector<std::string> args, RunOptions options = {}) {
    std::vector<std::string> argv = {detour::testing::detour_bin(), "-c", config, "--state", state};
    argv.insert(argv.end(), args.begin(), args.end());
    options.env.emplace("HKEY", kKey);
    options.env.emplace("WRONG_KEY", "sk-not-the-right-one");
    return detour::testing::run(argv, options);
  }
  RunResult health(std::vector<std::string> args, RunOptions options = {}) {
    args.insert(args.begin(), "health");
    return detour(std::move(args), std::move(options));
  }
  // `health ARGS --format json`, parsed; REQUIREs a JSON array on stdout.
  json health_json(std::vector<std::string> args, int expected_exit) {
    args.insert(args.end(), {"--format", "json"});
    RunResult r = health(std::move(args));
    INFO(r.err);
    CHECK(r.exit_code == expected_exit);
    json results = json::parse(r.out, nullptr, false);
    REQUIRE(results.is_array());
    return results;
  }
};

const json& by_target(const json& results, const std::string& target) {
  for (const auto& r : results)
    if (r["target"] == target) return r;
  FAIL("no result for " << target << " in " << results.dump());
  static json none;
  return none;
}

std::vector<json> received(MockServer& mock) {
  const json stats = mock.stats();  // not a temporary: the loop reads into it
  return stats["received"].get<std::vector<json>>();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("health probes every configured target and names what is wrong with each", "[health]") {
  World w;
  json results = w.health_json({}, 1);
  INFO(results.dump(2));
  // Every target of [models] and of the routes, plus the provider nothing names; once each.
  CHECK(results.size() == 10);

  const json& ok = by_target(results, "m/mock-1");
  CHECK(ok["status"] == "ok");
  CHECK(ok["http_status"] == 200);
  CHECK(ok["latency_ms"].is_number_integer());
  CHECK(ok["latency_ms"] >= 0);
  CHECK(ok["latency_ms"] < 5000);
  CHECK(ok["error"].is_null());
  CHECK(ok["message"].is_null());
  CHECK(ok["circuit"] == "closed");
  CHECK(by_target(results, "m/mock-2")["status"] == "ok");  // a route's target, listed too

  const json& wrong = by_target(results, "wrong/mock-1");
  CHECK(wrong["status"] == "auth");
  CHECK(wrong["http_status"] == 401);
  CHECK(wrong["error"] == "auth");

  for (const char* target : {"dead/mock-1", "dead/primary", "dead/a", "dead/b"}) {
    INFO(target);
    const json& dead = by_target(results, target);
    CHECK(dead["status"] == "down");
    CHECK(dead["http_status"].is_null());
    CHECK(dead["error"] == "connection");
  }

  const json& absent = by_target(results, "m/absent-model");
  CHECK(absent["status"] == "not_found");
  CHECK(absent["http_status"] == 200);  // the list was fetched; the model is not in it
  CHECK_THAT(absent["message"].get<std::string>(), Catch::Contains("absent-model"));

  const json& nokey = by_target(results, "nokey/mock-1");
  CHECK(nokey["status"] == "auth");
  CHECK(nokey["http_status"].is_null());
  CHECK(nokey["latency_ms"].is_null());  // never sent: unknown, not 0
  CHECK_THAT(nokey["message"].get<std::string>(), Catch::Contains("UNSET_KEY_VAR"));
  CHECK(w.nokey_mock.stats()["requests"] == 0);  // nothing was sent without its key
  RunResult prom = w.health({"nokey/mock-1", "--format", "prometheus"});
  CHECK_THAT(prom.out, Catch::Contains("detour_target_up{provider=\"nokey\",model=\"mock-1\"} 0"));
  CHECK_THAT(prom.out, !Catch::Contains("detour_target_latency_seconds{provider=\"nokey\""));
  CHECK(w.nokey_mock.stats()["requests"] == 0);

  const json& bare = by_target(results, "bare");
  CHECK(bare["status"] == "ok");
  CHECK(bare["provider"] == "bare");
  CHECK(bare["model"].is_null());
  CHECK(bare["http_status"] == 200);

  // No key value anywhere in what health prints.
  CHECK(results.dump().find(kKey) == std::string::npos);
  CHECK(results.dump().find("sk-not-the-right-one") == std::string::npos);
}

TEST_CASE("health --probe models spends no tokens: one model list per provider", "[health]") {
  World w;
  json results = w.health_json({"m/mock-1", "m/absent-model", "r", "wrong/mock-1"}, 1);
  CHECK(results.size() == 5);
  auto requests = received(w.mock);
  // m (three targets) and wrong share the mock: one list each, nothing else.
  CHECK(requests.size() == 2);
  for (const auto& r : requests) {
    INFO(r.dump());
    CHECK(r["method"] == "GET");
    CHECK(r["path"] == "/v1/models");
  }
  CHECK(w.mock.stats()["by_path"].count("/v1/chat/completions") == 0);
}

TEST_CASE("health --probe chat sends each target one request for one token", "[health]") {
  World w;
  json results = w.health_json({"m/mock-1", "m/mock-2", "--probe", "chat"}, 0);
  CHECK(by_target(results, "m/mock-1")["status"] == "ok");
  CHECK(by_target(results, "m/mock-2")["status"] == "ok");
  CHECK(by_target(results, "m/mock-1")["http_status"] == 200);
  auto requests = received(w.mock);
  REQUIRE(requests.size() == 2);
  std::set<std::string> models;
  for (const auto& r : requests) {
    INFO(r.dump());
    CHECK(r["method"] == "POST");
    CHECK(r["path"] == "/v1/chat/completions");
    CHECK(r["max_tokens"] == 1);
    CHECK(r["stream"] == false);
    models.insert(r["model"].get<std::string>());
  }
  CHECK(models == std::set<std::string>{"mock-1", "mock-2"});

  // A model the list does not name still answers a chat probe (the mock answers any model).
  json absent = w.health_json({"m/absent-model", "--probe", "chat"}, 0);
  CHECK(absent[0]["status"] == "ok");
}

TEST_CASE("health tells rate limited from degraded by the headroom the headers report",
          "[health]") {
  SECTION("a 429 with no headroom reported is rate_limited") {
    World w(json{{"models", {{"limited", {{"fault", "rate_limit"}}}}}});
    json results = w.health_json({"m/limited", "--probe", "chat"}, 1);
    CHECK(results[0]["status"] == "rate_limited");
    CHECK(results[0]["http_status"] == 429);
    CHECK(results[0]["error"] == "rate_limited");
  }
  SECTION("a 429 while the headers still report requests left is degraded, and usable") {
    World w(json{{"models", {{"limited", {{"fault", "rate_limit"}}}}}, {"limits", {{"rpm", 600}}}});
    json results = w.health_json({"m/limited", "--probe", "chat"}, 0);
    CHECK(results[0]["status"] == "degraded");
    CHECK(results[0]["http_status"] == 429);
    CHECK(results[0]["ratelimit"]["requests_limit"] == 600);
    CHECK(results[0]["ratelimit"]["requests_remaining"] > 0);
  }
  SECTION("insufficient_quota is quota_exhausted") {
    World w(json{{"models", {{"broke", {{"fault", "insufficient_quota"}}}}}});
    json results = w.health_json({"m/broke", "--probe", "chat"}, 1);
    CHECK(results[0]["status"] == "quota_exhausted");
    CHECK(results[0]["http_status"] == 429);
  }
}

TEST_CASE("a chat probe's 429 holds the target back for the next ask, as a call's would",
          "[health]") {
  World w(json{{"models", {{"limited", {{"fault", "rate_limit"}, {"retry_after_s", 37}}}}}});
  json results = w.health_json({"m/limited", "--probe", "chat"}, 1);
  REQUIRE(results[0]["status"] == "rate_limited");
  // The next process knows the target refuses for 37 s: with a 3 s deadline it does not ask.
  RunResult ask = w.detour({"ask", "-m", "m/limited", "--deadline", "3s", "hi"});
  INFO(ask.err);
  CHECK(ask.exit_code != 0);
  CHECK(received(w.mock).size() == 1);  // the probe only
}

TEST_CASE("health calls a usable answer slower than --slow degraded", "[health]") {
  SECTION("models probe") {
    World w(json{{"default", {{"latency_ms", 400}}}});
    json slow = w.health_json({"m/mock-1", "--slow", "200ms"}, 0);  // degraded is usable
    CHECK(slow[0]["status"] == "degraded");
    CHECK(slow[0]["latency_ms"] >= 400);
    CHECK_THAT(slow[0]["message"].get<std::string>(), Catch::Contains("slow"));
    json fine = w.health_json({"m/mock-1", "--slow", "5s"}, 0);
    CHECK(fine[0]["status"] == "ok");
  }
  SECTION("chat probe") {
    World w(json{{"models", {{"sluggish", {{"latency_ms", 400}}}}}});
    json results =
        w.health_json({"m/sluggish", "m/mock-1", "--probe", "chat", "--slow", "200ms"}, 0);
    CHECK(by_target(results, "m/sluggish")["status"] == "degraded");
    CHECK(by_target(results, "m/mock-1")["status"] == "ok");
  }
}

TEST_CASE("health --timeout bounds each probe, and probes run concurrently", "[health]") {
  // Bounds with seconds of slack: 10 s answers against a 300ms timeout, and four 1.5 s answers
  // that take 6 s one after the other.
  json quick = {{"latency_ms", 1500}};
  World w(json{{"default", {{"latency_ms", 10000}}},
               {"models", {{"c1", quick}, {"c2", quick}, {"c3", quick}, {"c4", quick}}}});
  auto start = std::chrono::steady_clock::now();
  json results =
      w.health_json({"m/mock-1", "m/mock-2", "--probe", "chat", "--timeout", "300ms"}, 1);
  CHECK(seconds_since(start) < 5);  // not the 10 s answers
  for (const auto& r : results) {
    INFO(r.dump());
    CHECK(r["status"] == "down");
    CHECK(r["error"] == "timeout");
    CHECK(r["http_status"].is_null());
  }

  w.mock.reset_stats();
  start = std::chrono::steady_clock::now();
  results =
      w.health_json({"m/c1", "m/c2", "m/c3", "m/c4", "--probe", "chat", "--timeout", "8s"}, 0);
  CHECK(seconds_since(start) < 4.5);            // one after the other would take 6 s
  CHECK(w.mock.stats()["max_in_flight"] >= 4);  // (+ the two timed-out ones, still sleeping)
  for (const auto& r : results)
    CHECK(r["status"] == "ok");

  RunResult bad = w.health({"m/mock-1", "--timeout", "soon"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("--timeout"));
}

TEST_CASE("health --fail-on any, all and none", "[health]") {
  World w;
  const std::vector<std::string> mixed = {"m/mock-1", "dead/mock-1", "--format", "json"};
  auto with = [](std::vector<std::string> args, std::vector<std::string> more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };

  RunResult any = w.health(mixed);  // the default is any
  CHECK(any.exit_code == 1);
  CHECK_THAT(any.err, Catch::Contains("1 of 2"));
  CHECK_THAT(any.err, Catch::Contains("not usable"));
  CHECK(json::parse(any.out).size() == 2);  // the report is printed whatever the verdict
  CHECK(w.health(with(mixed, {"--fail-on", "any"})).exit_code == 1);
  CHECK(w.health({"m/mock-1", "bare", "--fail-on", "any"}).exit_code == 0);

  RunResult all = w.health(with(mixed, {"--fail-on", "all"}));
  CHECK(all.exit_code == 0);  // one is usable
  CHECK(all.err.empty());
  RunResult none_usable = w.health({"dead/mock-1", "wrong/mock-1", "--fail-on", "all"});
  CHECK(none_usable.exit_code == 1);
  CHECK_THAT(none_usable.err, Catch::Contains("2 of 2"));

  CHECK(w.health(with(mixed, {"--fail-on", "none"})).exit_code == 0);
  CHECK(w.health({"dead/mock-1", "wrong/mock-1", "--fail-on", "none"}).exit_code == 0);

  CHECK(w.health(with(mixed, {"--fail-on", "some"})).exit_code == 2);  // a usage error
}

TEST_CASE("health ROUTE weighs the route as one unit: usable when one target is", "[health]") {
  World w;
  json results = w.health_json({"r"}, 0);  // dead/primary is down, m/mock-2 answers
  REQUIRE(results.size() == 2);
  CHECK(by_target(results, "dead/primary")["status"] == "down");
  CHECK(by_target(results, "m/mock-2")["status"] == "ok");
  for (const auto& r : results)
    CHECK(r["route"] == "r");

  RunResult gone = w.health({"gone"});
  CHECK(gone.exit_code == 1);
  CHECK_THAT(gone.err, Catch::Contains("1 of 1"));

  // The route and a dead target on its own: two units, one not usable.
  RunResult mixed = w.health({"r", "dead/mock-1"});
  CHECK(mixed.exit_code == 1);
  CHECK_THAT(mixed.err, Catch::Contains("1 of 2"));
  CHECK(w.health({"r", "gone", "--fail-on", "all"}).exit_code == 0);
}

TEST_CASE("health exits 3 for a name nothing knows, before probing anything", "[health]") {
  World w;
  for (const char* name : {"nobody", "ghost/mock-1"}) {
    INFO(name);
    RunResult r = w.health({"m/mock-1", name});
    CHECK(r.exit_code == 3);
    CHECK_THAT(r.err, Catch::Contains(name));
    CHECK(r.out.empty());
  }
  CHECK(w.mock.stats()["requests"] == 0);
}

TEST_CASE("health results feed the shared state that limits reads", "[health]") {
  World w;
  json results = w.health_json({"wrong/mock-1", "dead/mock-1", "m/mock-1"}, 1);
  RunResult limits = w.detour({"limits", "--json"});
  REQUIRE(limits.exit_code == 0);
  json report = json::parse(limits.out);
  auto target_of = [&](const std::string& provider, const std::string& target) -> json {
    for (const auto& p : report["providers"]) {
      if (p["provider"] != provider) continue;
      for (const auto& t : p["targets"])
        if (t["target"] == target) return t;
    }
    FAIL("limits has no " << target << ": " << report.dump());
    return {};
  };
  const json wrong = target_of("wrong", "wrong/mock-1");
  INFO(wrong.dump());
  CHECK(wrong["last_error"]["class"] == "auth");
  CHECK(wrong["circuit"]["state"] == by_target(results, "wrong/mock-1")["circuit"]);
  const json dead = target_of("dead", "dead/mock-1");
  CHECK(dead["last_error"]["class"] == "connection");
  const json ok = target_of("m", "m/mock-1");
  CHECK(ok["calls"] == 1);
  CHECK(ok["success_rate"] == 1.0);
}

TEST_CASE("health NAMES: a provider, provider/model or bare model", "[health]") {
  World w;
  json bare = w.health_json({"bare"}, 0);  // a provider no target names: the provider itself
  REQUIRE(bare.size() == 1);
  CHECK(bare[0]["target"] == "bare");
  CHECK(bare[0]["model"].is_null());
  CHECK(bare[0]["circuit"].is_null());
  CHECK_THAT(bare[0]["message"].get<std::string>(), Catch::Contains("listed by bare"));

  json m = w.health_json({"m"}, 1);  // a provider: every target of it a config names
  std::set<std::string> targets;
  for (const auto& r : m)
    targets.insert(r["target"].get<std::string>());
  CHECK(targets == std::set<std::string>{"m/mock-1", "m/absent-model", "m/mock-2"});

  json model = w.health_json({"absent-model"}, 1);  // a bare model only m names
  REQUIRE(model.size() == 1);
  CHECK(model[0]["target"] == "m/absent-model");
  CHECK(model[0]["status"] == "not_found");

  RunResult ambiguous = w.health({"mock-1"});  // m, wrong, dead and nokey all name it
  CHECK(ambiguous.exit_code == 3);
  CHECK_THAT(ambiguous.err, Catch::Contains("ambiguous"));
}

TEST_CASE("health probes Anthropic and Gemini providers too", "[health]") {
  MockServer mock(json{{"limits", {{"rpm", 6000}}}}, {"--api-key", kKey});
  TempDir dir;
  std::string config;
  for (const char* protocol : {"anthropic", "gemini"}) {
    for (const char* env : {"HKEY", "WRONG_KEY"}) {
      const std::string name = std::string(protocol).substr(0, 2) + (env[0] == 'H' ? "" : "_bad");
      config += "[providers." + name + "]\nprotocol = \"" + protocol + "\"\nbase_url = \"" +
                mock.url() + "\"\napi_key_env = \"" + env + "\"\n[models.\"" + name +
                "/mock-1\"]\n[models.\"" + name + "/absent\"]\n\n";
    }
  }
  const std::string path = dir.write("config.toml", config);
  auto health = [&](const char* probe) {
    RunOptions options;
    options.env = {{"HKEY", kKey}, {"WRONG_KEY", "sk-wrong"}};
    RunResult r = detour::testing::run({detour::testing::detour_bin(), "-c", path, "--state",
                                        "memory", "health", "--probe", probe, "--format", "json"},
                                       options);
    CHECK(r.exit_code == 1);
    return json::parse(r.out);
  };
  json models = health("models");
  CHECK(by_target(models, "an/mock-1")["status"] == "ok");
  CHECK(by_target(models, "ge/mock-1")["status"] == "ok");
  CHECK(by_target(models, "an/absent")["status"] == "not_found");
  CHECK(by_target(models, "ge/absent")["status"] == "not_found");
  CHECK(by_target(models, "an_bad/mock-1")["status"] == "auth");
  CHECK(by_target(models, "an_bad/mock-1")["http_status"] == 401);
  CHECK(by_target(models, "ge_bad/mock-1")["status"] == "auth");  // Gemini: 400 API_KEY_INVALID
  CHECK(by_target(models, "ge_bad/mock-1")["http_status"] == 400);

  json chat = health("chat");
  const json& an = by_target(chat, "an/mock-1");
  CHECK(an["status"] == "ok");
  CHECK(an["ratelimit"]["requests_limit"] == 6000);  // anthropic-ratelimit-* headers
  CHECK(by_target(chat, "ge/mock-1")["status"] == "ok");
  CHECK(by_target(chat, "ge_bad/mock-1")["status"] == "auth");
  const json stats = mock.stats();
  for (const auto& r : stats["received"]) {
    if (r["method"] == "POST") CHECK(r["max_tokens"] == 1);
  }
}
