// `detour limits` end to end: what ask processes learned, read back from the shared state file
// by another process with no network call; table, --json, filters and errors.
#include <catch2/catch.hpp>

#include "harness.hpp"

using detour::testing::MockServer;
using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::TempDir;
using nlohmann::json;

namespace {

struct World {
  MockServer mock;
  TempDir dir;
  std::string config;
  std::string state;

  World() : mock(json::parse(R"({"limits": {"rpm": 600, "tpm": 60000}})")) {
    config = dir.write("config.toml", "[providers.m]\nprotocol = \"openai\"\nbase_url = \"" +
                                          mock.url() +
                                          "/v1\"\nconcurrency = 8\n\n"
                                          "[providers.dead]\nprotocol = \"openai\"\nbase_url = "
                                          "\"http://127.0.0.1:" +
                                          std::to_string(detour::testing::free_port()) +
                                          "/v1\"\n\n"
                                          "[models.\"m/fast\"]\nrpm = 300\n\n"
                                          "[routes.r]\ntargets = [\"dead/primary\", \"m/fast\"]\n");
    state = "sqlite://" + dir.file("state.db");
  }
  RunResult detour(std::vector<std::string> args) {
    std::vector<std::string> argv = {detour::testing::detour_bin(), "-c", config, "--state", state};
    argv.insert(argv.end(), args.begin(), args.end());
    return detour::testing::run(argv);
  }
};

const json& find(const json& list, const char* key, const std::string& name) {
  for (const auto& item : list)
    if (item[key] == name) return item;
  FAIL("nothing named " << name);
  static json none;
  return none;
}

}  // namespace

TEST_CASE("limits shows what ask processes learned, without a network call", "[limits-cmd]") {
  World w;
  for (int i = 0; i < 3; ++i)
    REQUIRE(w.detour({"ask", "-m", "r", "--max-tokens", "10", "hello"}).exit_code == 0);
  w.mock.reset_stats();

  RunResult r = w.detour({"limits", "--json"});
  REQUIRE(r.exit_code == 0);
  CHECK(w.mock.stats()["requests"] == 0);  // no network call
  json report = json::parse(r.out);
  const json& m = find(report["providers"], "provider", "m");
  CHECK(m["concurrency"] == json{{"limit", 8}, {"in_flight", 0}});
  const json& fast = find(m["targets"], "target", "m/fast");
  CHECK(fast["requests_per_minute"]["configured"] == 300);
  CHECK(fast["requests_per_minute"]["learned"] == 600);  // from the mock's headers
  CHECK(fast["tokens_per_minute"]["learned"] == 60000);
  CHECK(fast["tokens_per_minute"]["remaining"].is_number());
  CHECK(fast["success_rate"] == 1.0);
  CHECK(fast["latency_p50_ms"].is_number());
  CHECK(fast["calls"] == 3);

  const json& dead =
      find(find(report["providers"], "provider", "dead")["targets"], "target", "dead/primary");
  CHECK(dead["circuit"]["state"] == "open");  // three refused connections
  CHECK(dead["circuit"]["until"].is_string());
  CHECK(dead["last_error"]["class"] == "connection");

  RunResult table = w.detour({"limits"});
  REQUIRE(table.exit_code == 0);
  CHECK_THAT(table.out, Catch::StartsWith("PROVIDER / TARGET"));
  CHECK_THAT(table.out, Catch::Contains("m/fast"));
  CHECK_THAT(table.out, Catch::Contains("300 (learned 600)"));
  CHECK_THAT(table.out, Catch::Contains("open "));
}

TEST_CASE("limits filters by provider, target and route, and names what it does not know",
          "[limits-cmd]") {
  World w;
  json by_provider = json::parse(w.detour({"limits", "--json", "dead"}).out);
  REQUIRE(by_provider["providers"].size() == 1);
  CHECK(by_provider["providers"][0]["provider"] == "dead");
  json by_target = json::parse(w.detour({"limits", "--json", "m/fast"}).out);
  REQUIRE(by_target["providers"].size() == 1);
  CHECK(by_target["providers"][0]["targets"].size() == 1);
  json by_route = json::parse(w.detour({"limits", "--json", "r"}).out);
  CHECK(by_route["providers"].size() == 2);

  RunResult unknown = w.detour({"limits", "nobody"});
  CHECK(unknown.exit_code == 3);
  CHECK_THAT(unknown.err, Catch::Contains("no provider, target or route named \"nobody\""));
}
