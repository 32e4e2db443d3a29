// The built-in model catalog (README, "Model catalog"; data/model_catalog.json, compiled in) end
// to end: prices and context windows of the major providers' models without any [models] in the
// config, so that `ask --json` reports a cost, `batch --max-cost` can stop, the `cheapest`
// strategy can order a route, context-length failover knows which windows are larger, and
// `detour limits` shows them with their source. The mock
// stands in for the providers (OPENAI_BASE_URL / ANTHROPIC_BASE_URL move the zero-config
// providers `openai` and `anthropic` to it); the models used are ones the catalog lists, with
// their prices written out here (USD per million tokens) so that a changed catalog shows up as a
// changed price, not as a silent pass.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "forward_proxy.hpp"
#include "harness.hpp"
#include "provider_test_util.hpp"

using namespace detour::testing;
using namespace detour::testing::providers;
using nlohmann::json;

namespace {

struct Price {
  double input;
  double output;
};
// From data/model_catalog.json (taken 2026-12-03).
constexpr Price kMini{0.75, 4.5};  // openai/gpt-5.4-mini
constexpr Price kNano{0.2, 1.25};  // openai/gpt-5.4-nano
constexpr Price kBig{5.0, 30.0};   // openai/gpt-5.5
constexpr Price kHaiku{1.0, 5.0};  // anthropic/claude-haiku-4-5

std::map<std::string, std::string> env_for(const MockServer& mock) {
  return {{"OPENAI_API_KEY", "sk-catalog-KEY"},
          {"OPENAI_BASE_URL", mock.url() + "/v1"},
          {"ANTHROPIC_API_KEY", "sk-ant-catalog-KEY"},
          {"ANTHROPIC_BASE_URL", mock.url()}};
}

// The cost of a --json answer at `price`, from the usage it reports.
double expected_cost(const json& j, Price price) {
  return (j["usage"]["input_tokens"].get<double>() * price.input +
          j["usage"]["output_tokens"].get<double>() * price.output) /
         1e6;
}

bool near(const json& value, double expected) {
  return value.is_number() && std::abs(value.get<double>() - expected) <= expected * 1e-6;
}

}  // namespace

TEST_CASE("catalog: a known provider's models are priced with no [models] in the config",
          "[providers][catalog]") {
  MockServer mock;
  TempDir dir;
  // `local` is not a catalog provider: no prices, whatever its models are called, unless its
  // `catalog` key says whose models it serves. `catalog = "none"` turns the catalog off.
  const std::string config = dir.write(
      "config.toml", "[providers.local]\nprotocol = \"openai\"\nbase_url = \"" + mock.url() +
                         "/v1\"\n\n" + "[providers.proxied]\nprotocol = \"openai\"\nbase_url = \"" +
                         mock.url() + "/v1\"\ncatalog = \"openai\"\n\n" +
                         "[providers.own]\nprotocol = \"openai\"\nbase_url = \"" + mock.url() +
                         "/v1\"\ncatalog = \"none\"\n");
  struct Case {
    std::string target;
    std::optional<Price> price;
  };
  const std::vector<Case> cases = {
      {"openai/gpt-5.4-mini", kMini},       {"anthropic/claude-haiku-4-5", kHaiku},
      {"proxied/gpt-5.4-nano", kNano},      {"openai/mock-1", std::nullopt},
      {"local/gpt-5.4-mini", std::nullopt}, {"own/gpt-5.4-mini", std::nullopt},
  };
  for (const Case& c : cases) {
    const RunResult r =
        run_detour(config, {"--state", "memory", "ask", "--json", "-m", c.target, "price me now"},
                   env_for(mock));
    INFO(c.target << "\n" << r.out << r.err);
    CHECK(r.exit_code == 0);
    json j = json_out(r);
    CHECK(j["ok"] == true);
    if (c.price) {
      CHECK(near(j["cost_usd"], expected_cost(j, *c.price)));
    } else {
      CHECK(j["cost_usd"].is_null());
    }
  }
  // Without a config file at all, too.
  const RunResult zero = run_detour(
      "", {"--state", "memory", "ask", "--json", "-m", "openai/gpt-5.4-mini", "hi"}, env_for(mock));
  json z = json_out(zero);
  CHECK(near(z["cost_usd"], expected_cost(z, kMini)));
}

TEST_CASE("catalog: a provider of any name at an official API host is priced as that vendor",
          "[providers][catalog]") {
  // The base URLs name the real hosts; the proxy sends every request to the mock instead, so
  // nothing leaves the machine (forward_proxy.hpp, send_everything_to).
  MockServer mock;
  detour::testing::network::ForwardProxy proxy;
  proxy.send_everything_to(mock.port());
  TempDir dir;
  const std::string config = dir.write(
      "config.toml",
      "[providers.work]\nprotocol = \"openai\"\nbase_url = \"http://api.openai.com/v1\"\n\n"
      "[providers.claude]\nprotocol = \"anthropic\"\nbase_url = \"http://api.anthropic.com\"\n"
      "api_key_env = \"ANTHROPIC_API_KEY\"\n\n"
      "[providers.lookalike]\nprotocol = \"openai\"\nbase_url = "
      "\"http://api.openai.com.example/v1\"\n");
  std::map<std::string, std::string> env = env_for(mock);
  env["http_proxy"] = proxy.url();
  for (const auto& [target, price] : std::vector<std::pair<std::string, std::optional<Price>>>{
           {"work/gpt-5.4-mini", kMini},
           {"claude/claude-haiku-4-5", kHaiku},
           {"lookalike/gpt-5.4-mini", std::nullopt}}) {
    const RunResult r = run_detour(
        config, {"--state", "memory", "ask", "--json", "-m", target, "priced by host"}, env);
    INFO(target << "\n" << r.out << r.err);
    CHECK(r.exit_code == 0);
    json j = json_out(r);
    if (price) {
      CHECK(near(j["cost_usd"], expected_cost(j, *price)));
    } else {
      CHECK(j["cost_usd"].is_null());
    }
  }
  CHECK(proxy.requests().size() == 3);
}

TEST_CASE("catalog: [models] in the config wins, and its prices go together",
          "[providers][catalog]") {
  MockServer mock;
  TempDir dir;
  const std::string config =
      dir.write("config.toml",
                // Both prices: the config's.
                "[models.\"openai/gpt-5.4-mini\"]\ninput_cost = 10.0\noutput_cost = 20.0\n\n"
                // One price: it replaces both of the catalog's, so no cost can be worked out.
                "[models.\"openai/gpt-5.4-nano\"]\ninput_cost = 10.0\n\n"
                // No price: the catalog's stay.
                "[models.\"openai/gpt-5.5\"]\ntier = 2\n");
  auto ask = [&](const std::string& target) {
    const RunResult r = run_detour(
        config, {"--state", "memory", "ask", "--json", "-m", target, "who pays"}, env_for(mock));
    INFO(target << "\n" << r.out << r.err);
    CHECK(r.exit_code == 0);
    return json_out(r);
  };
  json both = ask("openai/gpt-5.4-mini");
  CHECK(near(both["cost_usd"], expected_cost(both, {10.0, 20.0})));
  json one = ask("openai/gpt-5.4-nano");
  CHECK(one["cost_usd"].is_null());
  json none = ask("openai/gpt-5.5");
  CHECK(near(none["cost_usd"], expected_cost(none, kBig)));
}

TEST_CASE("catalog: a cheapest route is ordered by catalog prices, Azure deployments included",
          "[providers][catalog]") {
  // The priced models answer not_found, which moves on without a retry, so the attempts show
  // the order; the unpriced one goes last and answers.
  MockServer mock({{"models",
                    {{"gpt-5.5", {{"fault", "not_found"}}},
                     {"gpt-5.4-mini", {{"fault", "not_found"}}},
                     {"gpt-5.4-nano", {{"fault", "not_found"}}}}}});
  TempDir dir;
  const std::string config =
      dir.write("config.toml",
                "[providers.az]\nprotocol = \"azure\"\nbase_url = \"" + mock.url() +
                    "\"\napi_key_env = \"OPENAI_API_KEY\"\n\n"
                    "[routes.c]\nstrategy = \"cheapest\"\n"
                    "targets = [\"openai/mock-1\", \"openai/gpt-5.5\", \"openai/gpt-5.4-nano\", "
                    "\"openai/gpt-5.4-mini\"]\n\n"
                    // Azure deployments are looked up as OpenAI models of their name.
                    "[routes.az]\nstrategy = \"cheapest\"\n"
                    "targets = [\"openai/mock-1\", \"az/gpt-5.5\", \"az/gpt-5.4-mini\", "
                    "\"az/gpt-5.4-nano\"]\n");
  const RunResult r =
      run_detour(config, {"--state", "memory", "ask", "--json", "-m", "c", "hi"}, env_for(mock));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  json j = json_out(r);
  CHECK(attempt_targets(j) == std::vector<std::string>{"openai/gpt-5.4-nano", "openai/gpt-5.4-mini",
                                                       "openai/gpt-5.5", "openai/mock-1"});
  CHECK(j["model"] == "mock-1");

  const RunResult a =
      run_detour(config, {"--state", "memory", "ask", "--json", "-m", "az", "hi"}, env_for(mock));
  INFO(a.out << a.err);
  CHECK(a.exit_code == 0);
  json k = json_out(a);
  CHECK(attempt_targets(k) == std::vector<std::string>{"az/gpt-5.4-nano", "az/gpt-5.4-mini",
                                                       "az/gpt-5.5", "openai/mock-1"});
}

TEST_CASE("catalog: batch --max-cost stops on catalog prices", "[providers][catalog]") {
  MockServer mock;
  TempDir dir;
  std::string lines;
  for (int i = 1; i <= 6; ++i)
    lines += "{\"id\":\"" + std::to_string(i) + "\",\"prompt\":\"hello number " +
             std::to_string(i) + "\"}\n";
  const std::string input = dir.write("in.jsonl", lines);
  auto batch = [&](const std::string& model, const std::string& max_cost) {
    return run_detour("",
                      {"--state", "memory", "batch", "-j", "1", "--progress", "none",
                       "--max-tokens", "10", "--max-cost", max_cost, "-m", model, input},
                      env_for(mock));
  };
  // gpt-5.5 costs about $0.0002 a line here and a line is estimated at up to about $0.00035:
  // $0.001 pays for a few lines, not six.
  const RunResult priced = batch("openai/gpt-5.5", "0.001");
  INFO(priced.out << priced.err);
  CHECK(priced.exit_code == 1);
  const auto out = batch_lines(priced.out);
  REQUIRE(out.size() == 6);
  int ok = 0, over = 0;
  double spent = 0;
  bool stopped = false;
  for (const auto& [id, line] : out) {
    if (line["ok"] == true) {
      CHECK_FALSE(stopped);  // one at a time: the answered lines come first
      ++ok;
      REQUIRE(line["cost_usd"].is_number());
      spent += line["cost_usd"].get<double>();
    } else {
      stopped = true;
      ++over;
      CHECK(line["error"]["class"] == "budget_exceeded");
    }
  }
  CHECK(ok >= 1);
  CHECK(over >= 1);
  CHECK(spent <= 0.001);

  // The same batch on a model the catalog does not price cannot be held to a budget by price.
  const RunResult unpriced = batch("openai/mock-1", "0.001");
  INFO(unpriced.err);
  CHECK(unpriced.exit_code == 0);
  CHECK(batch_lines(unpriced.out).size() == 6);

  // --dry-run estimates with the catalog's prices.
  const RunResult dry = run_detour("",
                                   {"--state", "memory", "batch", "--dry-run", "--max-tokens", "10",
                                    "-m", "openai/gpt-5.5", input},
                                   env_for(mock));
  INFO(dry.out << dry.err);
  CHECK(dry.exit_code == 0);
  CHECK(dry.out.find("estimated cost: $0.0") != std::string::npos);
  CHECK(dry.out.find("no price") == std::string::npos);
  CHECK(received(mock).size() == static_cast<std::size_t>(ok + 6));
}

TEST_CASE("catalog: context-length failover skips targets whose catalog window is not larger",
          "[providers][catalog]") {
  // gpt-5.4-nano (400000 tokens) says the input is too long: gpt-5.4-mini (400000) and
  // claude-haiku-4-5 (200000) cannot do better and are skipped; gpt-5.5 (1050000) is asked.
  MockServer mock({{"models", {{"gpt-5.4-nano", {{"fault", "context_length"}}}}}});
  const RunResult r = run_detour(
      "",
      {"--state", "memory", "ask", "--json", "-m",
       "openai/gpt-5.4-nano,openai/gpt-5.4-mini,anthropic/claude-haiku-4-5,openai/gpt-5.5", "hi"},
      env_for(mock));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  json j = json_out(r);
  CHECK(j["model"] == "gpt-5.5");
  CHECK(attempt_targets(j) == std::vector<std::string>{"openai/gpt-5.4-nano", "openai/gpt-5.5"});
  CHECK(received(mock).size() == 2);
}

TEST_CASE("catalog: detour limits shows a target's window and prices and where they came from",
          "[providers][catalog]") {
  MockServer mock;
  TempDir dir;
  const std::string config =
      dir.write("config.toml",
                "[models.\"openai/gpt-5.4-mini\"]\ncontext_window = 1000\n\n"
                "[models.\"openai/gpt-5.4-nano\"]\ninput_cost = 1.0\noutput_cost = 2.0\n\n"
                "[models.\"openai/local-model\"]\ninput_cost = 3.0\noutput_cost = 4.0\n");
  const RunResult r = run_detour(config,
                                 {"limits", "--json", "openai/gpt-5.5", "openai/gpt-5.4-mini",
                                  "openai/gpt-5.4-nano", "openai/local-model"},
                                 env_for(mock));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  json j = json_out(r);
  std::map<std::string, json> models;
  for (json& p : j["providers"])
    for (json& t : p["targets"])
      models[t["target"].get<std::string>()] = t["model"];
  REQUIRE(models.size() == 4);
  json& big = models["openai/gpt-5.5"];
  CHECK(big["context_window"] == 1050000);
  CHECK(big["max_output_tokens"] == 128000);
  CHECK(big["input_cost"] == kBig.input);
  CHECK(big["output_cost"] == kBig.output);
  CHECK(big["cached_input_cost"] == 0.5);
  CHECK(big["source"].get<std::string>().rfind("catalog", 0) == 0);
  // The config's window, the catalog's prices.
  json& mini = models["openai/gpt-5.4-mini"];
  CHECK(mini["context_window"] == 1000);
  CHECK(mini["input_cost"] == kMini.input);
  CHECK(mini["source"].get<std::string>().find("config") != std::string::npos);
  CHECK(mini["source"].get<std::string>().find("catalog") != std::string::npos);
  // The config's prices, the catalog's window; the catalog's cached price goes with its others.
  json& nano = models["openai/gpt-5.4-nano"];
  CHECK(nano["input_cost"] == 1.0);
  CHECK(nano["output_cost"] == 2.0);
  CHECK(nano["context_window"] == 400000);
  json& local = models["openai/local-model"];
  CHECK(local["context_window"].is_null());
  CHECK(local["source"] == "config");
}
