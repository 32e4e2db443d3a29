// `detour limits`: the report built from the shared state (limits, slots, circuits, stats,
// last errors), its filters, and the table drawn from it.
#include <catch2/catch.hpp>

#include "cli/limits.hpp"
#include "config_test_support.hpp"
#include "engine/limits_report.hpp"
#include "engine/shared_state.hpp"

using namespace detour;
using detour::config::testing::parse;
using nlohmann::json;

namespace {

const char* kConfig = R"(
[providers.openai]
protocol = "openai"
base_url = "http://127.0.0.1:1/v1"
rpm = 500
concurrency = 64

[providers.local]
protocol = "openai"
base_url = "http://127.0.0.1:2/v1"

[models."openai/gpt-4o"]
tpm = 30000

[routes.smart]
targets = ["openai/gpt-4o", "local/llama"]
)";

struct World {
  config::Config config = parse(kConfig);
  std::unique_ptr<state::Store> store = state::make_memory_store();
  engine::ReportTime now{std::chrono::sys_days{std::chrono::year{2026} / 11 / 22},
                         std::chrono::steady_clock::time_point(std::chrono::hours(500))};
  double now_ms() const {
    return static_cast<double>(
        std::chrono::duration_cast<Millis>(now.wall.time_since_epoch()).count());
  }
  json report(std::vector<std::string> names = {}) {
    return engine::limits_report(*store, config, names, {}, now);
  }
  config::ResolvedTarget target(const std::string& provider, const std::string& model) {
    config::ResolvedTarget t;
    t.target = {provider, model};
    t.provider = &config.providers.at(provider);
    return t;
  }
};

const json& provider_in(const json& report, const std::string& name) {
  for (const auto& p : report["providers"])
    if (p["provider"] == name) return p;
  FAIL("no provider " << name);
  static json none;
  return none;
}

}  // namespace

TEST_CASE("limits report: every configured provider and target, with nothing learned yet",
          "[limits-report]") {
  World w;
  json r = w.report();
  REQUIRE(r["providers"].size() == 2);
  const json& openai = provider_in(r, "openai");
  CHECK(openai["requests_per_minute"]["configured"] == 500);
  CHECK(openai["requests_per_minute"]["learned"].is_null());
  CHECK(openai["requests_per_minute"]["remaining"] == 8);  // one second's worth of 500/min
  CHECK(openai["concurrency"] == json{{"limit", 64}, {"in_flight", 0}});
  REQUIRE(openai["targets"].size() == 1);
  const json& gpt = openai["targets"][0];
  CHECK(gpt["target"] == "openai/gpt-4o");
  CHECK(gpt["tokens_per_minute"]["configured"] == 30000);
  CHECK(gpt["circuit"] == json{{"state", "closed"}, {"until", nullptr}});
  CHECK(gpt["success_rate"].is_null());
  CHECK(gpt["last_error"].is_null());
  CHECK(provider_in(r, "local")["targets"][0]["target"] == "local/llama");
}

TEST_CASE("limits report: learned limits, slots in flight, circuits and stats from the state",
          "[limits-report]") {
  World w;
  engine::SharedState shared(*w.store);
  const auto local = w.target("local", "llama");
  const double now = w.now_ms();
  engine::LimitScope scope = engine::limit_scope(local);
  engine::AdmissionRequest request;
  request.now_ms = now;
  request.holder = "a";
  REQUIRE(shared.limiter().reserve(scope, request).kind == engine::Admission::Kind::granted);
  engine::AdmissionFeedback feedback;
  feedback.holder = "a";
  feedback.replied = true;
  feedback.now_ms = now;
  feedback.headers.requests_limit = 60;
  feedback.headers.requests_remaining = 29;
  shared.limiter().settle(scope, feedback);
  request.holder = "b";
  REQUIRE(shared.limiter().reserve(scope, request).kind == engine::Admission::Kind::granted);
  for (int i = 0; i < 3; ++i) {
    shared.record(local, engine::ErrorClass::connection, std::nullopt, "connection refused",
                  Millis(3), std::nullopt, w.now.steady, static_cast<std::int64_t>(now));
  }
  shared.flush();
  json r = w.report({"local"});
  REQUIRE(r["providers"].size() == 1);
  const json& llama = r["providers"][0]["targets"][0];
  CHECK(llama["requests_per_minute"]["learned"] == 60);
  CHECK(llama["requests_per_minute"]["remaining"] == 28);
  CHECK(llama["requests_per_minute"]["reset_at"] == "2026-11-22T00:00:02.000Z");
  CHECK(llama["concurrency"]["in_flight"] == 1);
  CHECK(llama["circuit"]["state"] == "open");
  CHECK(llama["circuit"]["until"] == "2026-11-22T00:00:30.000Z");
  CHECK(llama["success_rate"] == 0.0);
  CHECK(llama["last_error"] == json{{"class", "connection"},
                                    {"status", nullptr},
                                    {"message", "connection refused"},
                                    {"at", "2026-11-22T00:00:00.000Z"}});

  const std::string table = cli::limits_table(r, now);
  CHECK_THAT(table, Catch::StartsWith("PROVIDER / TARGET  RPM"));
  CHECK_THAT(table,
             Catch::Contains(
                 "  local/llama      60 (learned)  28    -    -     2s       1          open 30s"));
  CHECK_THAT(table, Catch::Contains("open 30s"));
  CHECK_THAT(table, Catch::Contains("connection, just now"));
}

TEST_CASE("limits report: filters by provider, target and route; unknown names are errors",
          "[limits-report]") {
  World w;
  json by_target = w.report({"openai/gpt-4o"});
  REQUIRE(by_target["providers"].size() == 1);
  CHECK(by_target["providers"][0]["targets"].size() == 1);
  json unknown_model = w.report({"openai/gpt-5"});  // a known provider: shown, nothing known
  CHECK(unknown_model["providers"][0]["targets"][0]["target"] == "openai/gpt-5");
  json by_route = w.report({"smart"});
  CHECK(by_route["providers"].size() == 2);
  CHECK_THROWS_WITH(w.report({"nobody"}),
                    "limits: no provider, target or route named \"nobody\" in the config or the "
                    "state");
  CHECK_THROWS_AS(w.report({"nobody/model"}), ConfigError);
}

TEST_CASE("limits report: targets only the state knows are shown too", "[limits-report]") {
  World w;
  engine::SharedState shared(*w.store);
  shared.record(w.target("openai", "gpt-4o-mini"), engine::ErrorClass::none, 200, "", Millis(120),
                std::nullopt, w.now.steady, static_cast<std::int64_t>(w.now_ms()));
  shared.flush();
  json r = w.report({"openai"});
  const json& targets = r["providers"][0]["targets"];
  REQUIRE(targets.size() == 2);
  CHECK(targets[1]["target"] == "openai/gpt-4o-mini");
  CHECK(targets[1]["latency_p50_ms"] == 120);
  CHECK(targets[1]["success_rate"] == 1.0);
}
