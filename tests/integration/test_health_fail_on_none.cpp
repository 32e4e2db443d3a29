// `detour health --fail-on none` is for reporting (a cron job writing a Prometheus textfile, a
// dashboard): when every target is down it must still print the whole report in the format
// asked for, and exit 0.
#include <catch2/catch.hpp>
#include <regex>
#include <string>
#include <vector>

#include "harness.hpp"

using detour::testing::MockServer;
using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::TempDir;
using nlohmann::json;

namespace {

struct DownWorld {
  MockServer mock;
  TempDir dir;
  std::string config;

  DownWorld() : mock(json::object(), {"--api-key", "sk-the-right-key-0123456789"}) {
    const std::string dead = "http://127.0.0.1:" + std::to_string(detour::testing::free_port());
    config =
        dir.write("config.toml", "[providers.dead]\nprotocol = \"openai\"\nbase_url = \"" + dead +
                                     "/v1\"\napi_key_env = \"K\"\n\n"
                                     "[providers.wrong]\nprotocol = \"openai\"\nbase_url = \"" +
                                     mock.url() +
                                     "/v1\"\napi_key_env = \"K\"\n\n"
                                     "[models.\"dead/mock-1\"]\n[models.\"wrong/mock-1\"]\n");
  }

  RunResult health(std::vector<std::string> args) {
    std::vector<std::string> argv = {
        detour::testing::detour_bin(), "-c", config, "--state", "memory", "health"};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions o;
    o.env = {{"K", "sk-a-wrong-key-9876543210"}};
    return detour::testing::run(argv, o);
  }
};

}  // namespace

TEST_CASE("health --fail-on none prints the report and exits 0 when every target is down",
          "[health]") {
  DownWorld w;
  // The verdict is what changes: the same report fails the default --fail-on any.
  RunResult any = w.health({"--format", "json"});
  CHECK(any.exit_code == 1);

  RunResult r = w.health({"--fail-on", "none", "--format", "json"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(json::parse(any.out, nullptr, false).size() == 2);
  json results = json::parse(r.out, nullptr, false);
  REQUIRE(results.is_array());
  REQUIRE(results.size() == 2);
  for (const auto& p : results) {
    if (p["target"] == "dead/mock-1") CHECK(p["status"] == "down");
    if (p["target"] == "wrong/mock-1") CHECK(p["status"] == "auth");
  }
  CHECK(r.err.find("error") == std::string::npos);

  RunResult table = w.health({"--fail-on", "none", "--format", "table"});
  CHECK(table.exit_code == 0);
  CHECK_THAT(table.out, Catch::Contains("TARGET"));
  CHECK_THAT(table.out, Catch::Matches("(.|\n)*dead/mock-1 +down(.|\n)*"));
  CHECK_THAT(table.out, Catch::Matches("(.|\n)*wrong/mock-1 +auth(.|\n)*"));

  RunResult prom = w.health({"--fail-on", "none", "--format", "prometheus"});
  CHECK(prom.exit_code == 0);
  for (const char* provider : {"dead", "wrong"}) {
    INFO(provider << "\n" << prom.out);
    const std::regex down("(^|\n)detour_target_up\\{[^}]*provider=\"" + std::string(provider) +
                          "\"[^}]*\\} 0\n");
    CHECK(std::regex_search(prom.out, down));
  }

  RunResult junit = w.health({"--fail-on", "none", "--format", "junit"});
  CHECK(junit.exit_code == 0);
  CHECK_THAT(junit.out, Catch::Contains("<failure"));
}
