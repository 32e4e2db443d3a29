// `detour health`'s decisions and formats: what a probe's outcome means, the verdict of each
// --fail-on, routes weighed as one, the probes on a fake transport, and the four formats.
#include <catch2/catch.hpp>

#include "cli/health.hpp"
#include "config_test_support.hpp"
#include "engine/health.hpp"
#include "fakes.hpp"

using namespace detour;
using engine::ErrorClass;
using engine::HealthStatus;
using nlohmann::json;

TEST_CASE("health: a probe's outcome class becomes a status", "[health]") {
  providers::RateLimitInfo none;
  providers::RateLimitInfo headroom;
  headroom.requests_remaining = 12;
  providers::RateLimitInfo empty;
  empty.requests_remaining = 0;
  empty.tokens_remaining = 0;
  struct Row {
    ErrorClass outcome;
    bool slow;
    const providers::RateLimitInfo* headers;
    HealthStatus status;
  };
  const Row rows[] = {
      {ErrorClass::none, false, &none, HealthStatus::ok},
      {ErrorClass::none, true, &none, HealthStatus::degraded},
      {ErrorClass::rate_limited, false, &none, HealthStatus::rate_limited},
      {ErrorClass::rate_limited, false, &empty, HealthStatus::rate_limited},
      {ErrorClass::rate_limited, false, &headroom, HealthStatus::degraded},
      {ErrorClass::quota_exhausted, false, &none, HealthStatus::quota_exhausted},
      {ErrorClass::auth, false, &none, HealthStatus::auth},
      {ErrorClass::not_found, false, &none, HealthStatus::not_found},
      {ErrorClass::connection, false, &none, HealthStatus::down},
      {ErrorClass::timeout, false, &none, HealthStatus::down},
      {ErrorClass::overloaded, false, &none, HealthStatus::down},
      {ErrorClass::server_error, false, &none, HealthStatus::down},
      {ErrorClass::invalid_response, false, &none, HealthStatus::down},
  };
  for (const Row& r : rows) {
    INFO(engine::to_string(r.outcome) << " slow=" << r.slow);
    CHECK(engine::health_status(r.outcome, r.slow, *r.headers) == r.status);
  }
  CHECK(engine::usable(HealthStatus::ok));
  CHECK(engine::usable(HealthStatus::degraded));
  CHECK_FALSE(engine::usable(HealthStatus::rate_limited));
}

TEST_CASE("health: --fail-on any, all and none; a route is one unit", "[health]") {
  auto result = [](std::string target, HealthStatus s, std::optional<std::string> route = {}) {
    engine::ProbeResult r;
    r.target = std::move(target);
    r.status = s;
    r.route = std::move(route);
    return r;
  };
  const std::vector<engine::ProbeResult> mixed = {result("a/x", HealthStatus::ok),
                                                  result("b/y", HealthStatus::down)};
  const std::vector<engine::ProbeResult> dead = {result("a/x", HealthStatus::auth),
                                                 result("b/y", HealthStatus::down)};
  const std::vector<engine::ProbeResult> route = {result("a/x", HealthStatus::down, "r"),
                                                  result("b/y", HealthStatus::degraded, "r")};
  using engine::FailOn;
  struct Row {
    const std::vector<engine::ProbeResult>* results;
    FailOn policy;
    bool passes;
  };
  const Row rows[] = {
      {&mixed, FailOn::any, false}, {&mixed, FailOn::all, true}, {&mixed, FailOn::none, true},
      {&dead, FailOn::any, false},  {&dead, FailOn::all, false}, {&dead, FailOn::none, true},
      {&route, FailOn::any, true},  {&route, FailOn::all, true},
  };
  for (const Row& r : rows) {
    CHECK(engine::verdict_passes(engine::health_units(*r.results), r.policy) == r.passes);
  }
  auto units = engine::health_units(route);
  REQUIRE(units.size() == 1);
  CHECK(units[0].name == "r");
  CHECK(units[0].is_route);
  CHECK(engine::parse_fail_on("all") == FailOn::all);
  CHECK_FALSE(engine::parse_fail_on("some"));
}

namespace {

const char* kConfig = R"(
[providers.m]
protocol = "openai"
base_url = "http://mock/v1"
api_key_env = "M_KEY"

[providers.silent]
protocol = "openai"
base_url = "http://silent/v1"

[providers.keyless]
protocol = "anthropic"
base_url = "http://keyless"
api_key_env = "UNSET_KEY"

[models."m/listed"]
[models."m/missing"]

[routes.r]
targets = ["m/listed", "keyless/claude"]
)";

}  // namespace

TEST_CASE("health: what is probed with and without names", "[health]") {
  const auto config = config::testing::parse(kConfig, {{"M_KEY", "k"}});
  const auto env = config::testing::lookup({{"M_KEY", "k"}});
  auto all = cli::select_probes(config, {}, env);
  std::vector<std::string> names;
  for (const auto& p : all)
    names.push_back(p.target.target.model.empty() ? p.target.target.provider
                                                  : p.target.target.name());
  CHECK(names == std::vector<std::string>{"m/listed", "m/missing", "keyless/claude", "silent"});
  CHECK(all[2].not_sendable ==
        "provider keyless: environment variable UNSET_KEY is not set "
        "(needed for keyless/claude)");
  auto routed = cli::select_probes(config, {"r"}, env);
  REQUIRE(routed.size() == 2);
  CHECK(routed[0].route == "r");
  auto provider = cli::select_probes(config, {"m"}, env);
  CHECK(provider.size() == 2);
  CHECK(cli::select_probes(config, {"silent"}, env)[0].target.target.model.empty());
  CHECK_THROWS_AS(cli::select_probes(config, {"nothing-like-it"}, env), ConfigError);
}

TEST_CASE("health: probes on a fake transport, one model list per provider", "[health]") {
  const auto config = config::testing::parse(kConfig, {{"M_KEY", "k"}});
  const auto env = config::testing::lookup({{"M_KEY", "k"}});
  auto probes = cli::select_probes(config, {}, env);
  testing::FakeClock clock;
  testing::FakeTransport transport(clock, [](const net::HttpRequest& r) {
    if (r.url.find("silent") != std::string::npos)
      return testing::FakeReply{net::TransportStatus::connect_failed, 0};
    return testing::FakeReply{net::TransportStatus::ok,
                              200,
                              {},
                              {R"({"object":"list","data":[{"id":"listed"},{"id":"other"}]})"},
                              Millis(30)};
  });
  auto store = state::make_memory_store();
  engine::SharedState state(*store);
  engine::ProbeOptions options;
  auto results = engine::run_probes(probes, options, transport, clock, state);
  REQUIRE(results.size() == 4);
  CHECK(transport.requests.size() ==
        2);  // m's list once for both targets; silent; none for keyless
  CHECK(results[0].status == HealthStatus::ok);
  CHECK(results[0].http_status == 200);
  CHECK(results[0].latency == Millis(30));
  CHECK(results[1].status == HealthStatus::not_found);
  CHECK(results[1].message == "missing is not among the 2 model(s) listed by m");
  CHECK(results[2].status == HealthStatus::auth);
  CHECK_FALSE(results[2].http_status);
  CHECK(results[3].status == HealthStatus::down);
  CHECK(results[3].target == "silent");
  // Recorded like any call: the missing model's last error is in the shared state.
  auto missing = state.load(probes[1].target);
  REQUIRE(missing.stats.last_error);
  CHECK(missing.stats.last_error->error_class == "not_found");
}

TEST_CASE("health: a chat probe sends one token and learns the limits it sees", "[health]") {
  const auto config = config::testing::parse(kConfig, {{"M_KEY", "k"}});
  const auto env = config::testing::lookup({{"M_KEY", "k"}});
  auto probes = cli::select_probes(config, {"m/listed"}, env);
  testing::FakeClock clock;
  testing::FakeTransport transport(clock, [](const net::HttpRequest&) {
    return testing::FakeReply{
        net::TransportStatus::ok,
        200,
        {{"x-ratelimit-limit-requests", "500"}, {"x-ratelimit-remaining-requests", "499"}},
        {R"({"choices":[{"index":0,"message":{"role":"assistant","content":"OK"},"finish_reason":"length"}]})"},
        Millis(700)};
  });
  auto store = state::make_memory_store();
  engine::SharedState state(*store);
  engine::ProbeOptions options;
  options.kind = engine::ProbeKind::chat;
  options.slow = Millis(500);
  auto results = engine::run_probes(probes, options, transport, clock, state);
  REQUIRE(transport.requests.size() == 1);
  CHECK(json::parse(transport.requests[0].body)["max_tokens"] == 1);
  CHECK(results[0].status == HealthStatus::degraded);
  CHECK(results[0].message == "slow: 700ms > 500ms");
  CHECK(results[0].ratelimit.requests_remaining == 499);
  auto view = engine::target_view(store->get(engine::limits_key("m")), "listed", {}, {}, 0);
  CHECK(view.requests.learned == 500);
}

namespace {

std::vector<engine::ProbeResult> sample_results() {
  engine::ProbeResult ok;
  ok.target = "openai/gpt-4o";
  ok.provider = "openai";
  ok.model = "gpt-4o";
  ok.status = HealthStatus::ok;
  ok.http_status = 200;
  ok.latency = Millis(212);
  ok.ratelimit.requests_limit = 5000;
  ok.ratelimit.requests_remaining = 4999;
  engine::ProbeResult bad;
  bad.target = "anthropic/claude";
  bad.provider = "anthropic";
  bad.model = "claude";
  bad.route = "smart";
  bad.status = HealthStatus::auth;
  bad.error = ErrorClass::auth;
  bad.http_status = 401;
  bad.message = "invalid x-api-key <&>";
  bad.circuit = "open";
  return {ok, bad};
}

}  // namespace

TEST_CASE("health formats: json keys, prometheus families, junit counts, table", "[health]") {
  const auto results = sample_results();
  const auto units = engine::health_units(results);

  json parsed = json::parse(cli::health_json(results));
  REQUIRE(parsed.is_array());
  CHECK(parsed[0] == json::parse(R"({"target":"openai/gpt-4o","provider":"openai","model":"gpt-4o",
    "route":null,"status":"ok","http_status":200,"latency_ms":212,"error":null,"message":null,
    "circuit":"closed","ratelimit":{"requests_limit":5000,"requests_remaining":4999,
    "tokens_limit":null,"tokens_remaining":null}})"));
  CHECK(parsed[1]["error"] == "auth");

  const std::string prom = cli::health_prometheus(
      results, units, std::chrono::system_clock::time_point(std::chrono::seconds(1764547200)));
  CHECK_THAT(prom, Catch::Contains("# HELP detour_target_up "));
  CHECK_THAT(prom,
             Catch::Contains("# TYPE detour_target_up gauge\n"
                             "detour_target_up{provider=\"openai\",model=\"gpt-4o\"} 1\n"
                             "detour_target_up{provider=\"anthropic\",model=\"claude\"} 0\n"));
  CHECK_THAT(
      prom,
      Catch::Contains("detour_target_latency_seconds{provider=\"openai\",model=\"gpt-4o\"} 0.212"));
  CHECK_THAT(prom,
             Catch::Contains(
                 "detour_target_requests_remaining{provider=\"openai\",model=\"gpt-4o\"} 4999"));
  CHECK_THAT(prom, !Catch::Contains("detour_target_tokens_remaining"));  // nothing known
  CHECK_THAT(prom, Catch::Contains(
                       "detour_target_circuit_open{provider=\"anthropic\",model=\"claude\"} 1"));
  CHECK_THAT(prom, Catch::Contains("detour_route_up{route=\"smart\"} 0"));
  CHECK_THAT(
      prom,
      Catch::Contains(
          "detour_target_status{provider=\"anthropic\",model=\"claude\",status=\"auth\"} 1\n"));
  CHECK_THAT(
      prom, Catch::Contains(
                "detour_target_status{provider=\"anthropic\",model=\"claude\",status=\"ok\"} 0\n"));
  CHECK_THAT(prom, Catch::EndsWith("detour_health_timestamp_seconds 1764547200\n"));

  const std::string xml = cli::health_junit(results, 0.5, std::chrono::system_clock::time_point{});
  CHECK_THAT(xml, Catch::StartsWith("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
  CHECK_THAT(xml, Catch::Contains("tests=\"2\" failures=\"1\""));
  CHECK_THAT(xml, Catch::Contains("<failure type=\"auth\" message=\"auth (HTTP 401): invalid "
                                  "x-api-key &lt;&amp;&gt;\">"));
  CHECK_THAT(xml, Catch::Contains("timestamp=\"1970-01-01T00:00:00\""));

  const std::string plain = cli::health_table(results, units, false);
  CHECK_THAT(plain, Catch::StartsWith("TARGET            STATUS  HTTP"));
  CHECK_THAT(plain, Catch::Contains("route smart: cannot answer"));
  CHECK_THAT(plain, !Catch::Contains("\033["));
  const std::string coloured = cli::health_table(results, units, true);
  CHECK_THAT(coloured, Catch::Contains("\033[32mok\033[0m"));
  CHECK_THAT(coloured, Catch::Contains("\033[31mauth\033[0m"));
}

TEST_CASE("health: a chat probe's answer closes an open circuit; a model list does not",
          "[health]") {
  const auto config = config::testing::parse(kConfig, {{"M_KEY", "k"}});
  const auto env = config::testing::lookup({{"M_KEY", "k"}});
  auto probes = cli::select_probes(config, {"m/listed", "m/listed"}, env);
  REQUIRE(probes.size() == 1);  // named twice, probed once
  testing::FakeClock clock;
  testing::FakeTransport transport(clock, [](const net::HttpRequest& r) {
    const bool list = r.method == "GET";
    return testing::FakeReply{
        net::TransportStatus::ok,
        200,
        {},
        {list ? R"({"data":[{"id":"listed"}]})"
              : R"({"choices":[{"index":0,"message":{"role":"assistant","content":"OK"},"finish_reason":"stop"}]})"},
        Millis(5)};
  });
  auto store = state::make_memory_store();
  engine::SharedState state(*store);
  for (int i = 0; i < 3; ++i) {
    state.record(probes[0].target, ErrorClass::server_error, 500, "boom", Millis(5), std::nullopt,
                 clock.now(), 0);
  }
  engine::ProbeOptions options;
  auto listed = engine::run_probes(probes, options, transport, clock, state);
  CHECK(listed[0].status == HealthStatus::ok);
  CHECK(listed[0].circuit == "open");  // chat may still fail: the list proves less
  options.kind = engine::ProbeKind::chat;
  auto answered = engine::run_probes(probes, options, transport, clock, state);
  CHECK(answered[0].circuit == "closed");
  CHECK(state.gate(probes[0].target, clock.now(), Millis(1000)).allowed);
}

TEST_CASE("health: with no names each route is still summarised for display", "[health]") {
  const auto config = config::testing::parse(kConfig, {{"M_KEY", "k"}});
  engine::ProbeResult listed;
  listed.target = "m/listed";
  listed.status = HealthStatus::ok;
  engine::ProbeResult claude;
  claude.target = "keyless/claude";
  claude.status = HealthStatus::auth;
  auto units = engine::route_summaries(config.routes, {listed, claude});
  REQUIRE(units.size() == 1);
  CHECK(units[0].name == "r");
  CHECK(units[0].usable);
  listed.status = HealthStatus::down;
  CHECK_FALSE(engine::route_summaries(config.routes, {listed, claude})[0].usable);
}
