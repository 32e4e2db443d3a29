// Resolving -m names (routes, provider/model, bare names, "a,b" lists) into chains, and the
// reference config.example.toml.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config_test_support.hpp"

using namespace detour::config;
using namespace detour::config::testing;
using detour::Millis;

namespace {

const char* kResolveToml = R"(
[defaults]
model = "smart"

[providers.local]
protocol = "openai"
base_url = "http://localhost:11434/v1"

[models."openai/gpt-4o"]
tier = 3
context_window = 128000

[models."openai/gpt-4o-mini"]
tier = 2

[models."openrouter/meta-llama/llama-3-8b"]
tier = 1

[models."local/llama3"]

[models."local/gpt-4o"]

[routes.smart]
strategy = "cheapest"
targets = ["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]
min_tier = 2
)";

std::vector<std::string> names_of(const Chain& chain) {
  std::vector<std::string> out;
  for (const auto& t : chain.targets)
    out.push_back(t.target.name());
  return out;
}

}  // namespace

TEST_CASE("resolve_chain turns names into targets", "[config]") {
  const Config config = parse(kResolveToml, kKeys);
  const auto env = lookup(kKeys);
  auto resolve = [&](std::vector<std::string> names) { return resolve_chain(config, names, env); };

  SECTION("a route") {
    Chain chain = resolve({"smart"});
    CHECK(chain.route == "smart");
    CHECK(chain.strategy == "cheapest");
    CHECK(chain.min_tier == 2);
    CHECK(names_of(chain) == std::vector<std::string>{"openai/gpt-4o", "openai/gpt-4o-mini",
                                                      "anthropic/claude-sonnet-4-5"});
    CHECK(chain.targets[0].provider == &config.providers.at("openai"));
    CHECK(chain.targets[0].api_key == "sk-SECRET-openai");
    CHECK(chain.targets[0].model.tier == 3);
    CHECK(chain.targets[0].model.context_window == 128000);
    CHECK(chain.targets[2].provider->protocol == "anthropic");
    CHECK(chain.targets[2].api_key == "sk-SECRET-anthropic");
    CHECK_FALSE(chain.targets[2].model.tier);
  }
  SECTION("no names: [defaults] model") {
    Chain chain = resolve({});
    CHECK(chain.route == "smart");
    CHECK(chain.targets.size() == 3);
  }
  SECTION("provider/model") {
    Chain chain = resolve({"openai/gpt-4o"});
    CHECK_FALSE(chain.route);
    CHECK(chain.strategy == "fallback");
    CHECK_FALSE(chain.min_tier);
    REQUIRE(chain.targets.size() == 1);
    CHECK(chain.targets[0].target.provider == "openai");
    CHECK(chain.targets[0].target.model == "gpt-4o");
  }
  SECTION("provider/model not in [models]") {
    Chain chain = resolve({"anthropic/claude-opus-4-1"});
    REQUIRE(chain.targets.size() == 1);
    CHECK_FALSE(chain.targets[0].model.tier);
  }
  SECTION("an OpenRouter model with a slash in its name") {
    Chain chain = resolve({"openrouter/meta-llama/llama-3-8b"});
    REQUIRE(chain.targets.size() == 1);
    CHECK(chain.targets[0].target.provider == "openrouter");
    CHECK(chain.targets[0].target.model == "meta-llama/llama-3-8b");
    CHECK(chain.targets[0].model.tier == 1);
  }
  SECTION("a bare name with a slash that one target serves") {
    Chain chain = resolve({"meta-llama/llama-3-8b"});
    CHECK(names_of(chain) == std::vector<std::string>{"openrouter/meta-llama/llama-3-8b"});
  }
  SECTION("a bare name that one target serves") {
    Chain chain = resolve({"llama3"});
    REQUIRE(chain.targets.size() == 1);
    CHECK(chain.targets[0].target.name() == "local/llama3");
    CHECK(chain.targets[0].api_key.empty());  // a local server needs no key
    CHECK(resolve({"gpt-4o-mini"}).targets[0].target.name() == "openai/gpt-4o-mini");
  }
  SECTION("well-known prefixes of zero-config providers") {
    CHECK(names_of(resolve({"gpt-4.1-nano"})) == std::vector<std::string>{"openai/gpt-4.1-nano"});
    CHECK(names_of(resolve({"o3-mini"})) == std::vector<std::string>{"openai/o3-mini"});
    CHECK(names_of(resolve({"chatgpt-4o-latest"})) ==
          std::vector<std::string>{"openai/chatgpt-4o-latest"});
    CHECK(names_of(resolve({"claude-opus-4-1"})) ==
          std::vector<std::string>{"anthropic/claude-opus-4-1"});
  }
  SECTION("comma lists and repeated names keep their order") {
    Chain chain = resolve({"openai/gpt-4o, local/llama3", "claude-haiku-4-5"});
    CHECK_FALSE(chain.route);
    CHECK(names_of(chain) ==
          std::vector<std::string>{"openai/gpt-4o", "local/llama3", "anthropic/claude-haiku-4-5"});
  }
  SECTION("duplicates keep the first occurrence") {
    Chain chain = resolve({"openai/gpt-4o-mini,smart", "openai/gpt-4o"});
    CHECK_FALSE(chain.route);  // more than one name: not the route's chain
    CHECK(chain.strategy == "fallback");
    CHECK(names_of(chain) == std::vector<std::string>{"openai/gpt-4o-mini", "openai/gpt-4o",
                                                      "anthropic/claude-sonnet-4-5"});
  }
  SECTION("one route with stray commas is still the route") {
    CHECK(resolve({" smart , "}).route == "smart");
  }
}

TEST_CASE("resolve_chain errors name what is wrong and never a key", "[config]") {
  const Config config = parse(kResolveToml, kKeys);
  struct Row {
    std::vector<std::string> names;
    Env env;
    std::vector<std::string> expected;
  };
  const Row rows[] = {
      {{"nope"}, kKeys, {"unknown model or route 'nope'", "smart"}},
      {{"nope/x"}, kKeys, {"unknown model or route 'nope/x'", "no provider named 'nope'"}},
      {{"openai/gpt-4o", "mystery"}, kKeys, {"unknown model or route 'mystery'"}},
      {{"gpt-4o"}, kKeys, {"ambiguous model 'gpt-4o'", "openai/gpt-4o", "local/gpt-4o"}},
      {{"gemini-2.5-flash"}, kKeys, {"gemini", "GEMINI_API_KEY (or GOOGLE_API_KEY)"}},
      {{"gemini/gemini-2.5-flash"},
       kKeys,
       {"provider gemini: environment variable GEMINI_API_KEY"}},
      {{"smart"},
       {{"OPENAI_API_KEY", "sk-SECRET-openai"}},
       {"provider anthropic: environment variable ANTHROPIC_API_KEY is not set"}},
  };
  for (const auto& row : rows) {
    INFO(row.names.front());
    Config c = parse(kResolveToml, row.env);
    std::string message = error_of([&] { resolve_chain(c, row.names, lookup(row.env)); });
    for (const auto& expected : row.expected)
      CHECK_THAT(message, Catch::Contains(expected));
    CHECK_THAT(message, !Catch::Contains("SECRET"));
  }
}

TEST_CASE("resolve_chain names a key variable that is not set", "[config]") {
  // A file provider keeps its key variable even when it is unset; resolving says which.
  Config config = parse(
      "[providers.openai]\n[providers.corp]\nprotocol = \"openai\"\n"
      "base_url = \"https://llm.corp/v1\"\napi_key_env = \"CORP_KEY\"\n");
  CHECK(error_of([&] { resolve_chain(config, {"openai/gpt-4o"}, lookup({})); }) ==
        "provider openai: environment variable OPENAI_API_KEY is not set (needed for "
        "openai/gpt-4o)");
  CHECK_THAT(error_of([&] {
               resolve_chain(config, {"corp/m"}, lookup({{"CORP_KEY", ""}}));
             }),
             Catch::Contains("provider corp: environment variable CORP_KEY is not set"));
  Chain chain = resolve_chain(config, {"corp/m"}, lookup({{"CORP_KEY", "secret"}}));
  CHECK(chain.targets[0].api_key == "secret");
}

TEST_CASE("resolve_chain without any model says how to give one", "[config]") {
  Config config = parse("", kKeys);
  CHECK(error_of([&] { resolve_chain(config, {}, lookup(kKeys)); }) ==
        "no model: give -m or set [defaults] model");
  CHECK(error_of([&] { resolve_chain(config, {" , "}, lookup(kKeys)); }) ==
        "no model: give -m or set [defaults] model");
}

TEST_CASE("zero-config alone serves provider/model and prefixes", "[config]") {
  Config config = parse("", {{"OPENAI_API_KEY", "k1"}, {"DEEPSEEK_API_KEY", "k2"}});
  Chain chain = resolve_chain(config, {"gpt-4o-mini,deepseek-chat,openai/gpt-4o"},
                              lookup({{"OPENAI_API_KEY", "k1"}, {"DEEPSEEK_API_KEY", "k2"}}));
  CHECK(names_of(chain) ==
        std::vector<std::string>{"openai/gpt-4o-mini", "deepseek/deepseek-chat", "openai/gpt-4o"});
  CHECK(chain.targets[1].api_key == "k2");
  CHECK(chain.targets[1].provider->base_url == "https://api.deepseek.com/v1");
}

TEST_CASE("config.example.toml parses and documents working routes", "[config]") {
  std::ifstream in(DETOUR_SOURCE_DIR "/config.example.toml");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  const Env env = {{"OPENAI_API_KEY", "k-openai"},
                   {"ANTHROPIC_API_KEY", "k-anthropic"},
                   {"GEMINI_API_KEY", "k-gemini"}};
  Config config = parse_config(text.str(), "config.example.toml", lookup(env));

  CHECK(config.defaults.model == "smart");
  CHECK(config.defaults.timeout == Millis(60'000));
  CHECK(config.defaults.deadline == Millis(300'000));
  CHECK(config.defaults.retries == 2);
  CHECK(config.providers.at("openai").rpm == 500);
  CHECK(config.providers.at("anthropic").protocol == "anthropic");
  CHECK(config.providers.at("gemini").base_url == "https://generativelanguage.googleapis.com");
  const auto& ollama = config.providers.at("ollama");
  CHECK(ollama.protocol == "openai");
  CHECK(ollama.api_key_env.empty());
  CHECK(config.models.at("openai/gpt-4o").input_cost == 2.50);
  CHECK(config.models.at("openai/gpt-4o").tier == 3);
  CHECK(config.providers.at("azure").api_version == "2024-10-21");
  CHECK(config.providers.at("gateway").headers_env ==
        NameValues{{"x-gateway-key", "GATEWAY_KEY"}});
  CHECK(config.providers.at("vertex").api_key_cmd == "gcloud auth print-access-token");

  // Every strategy is shown.
  std::set<std::string> strategies;
  for (const auto& [name, route] : config.routes)
    strategies.insert(route.strategy);
  CHECK(strategies ==
        std::set<std::string>{"fallback", "fastest", "cheapest", "weighted", "round-robin"});

  // Every route resolves with the keys set.
  for (const auto& [name, route] : config.routes) {
    INFO(name);
    Chain chain = resolve_chain(config, {name}, lookup(env));
    CHECK(chain.route == name);
    CHECK(chain.targets.size() == route.targets.size());
  }
}

TEST_CASE("[breaker], on_content_filter and route weights reach the engine", "[config]") {
  Config config = parse(
      "[providers.p]\nprotocol = \"openai\"\nbase_url = \"http://x/v1\"\n"
      "[routes.r]\nstrategy = \"weighted\"\ntargets = [\"p/a\", \"p/b\"]\nweights = [3, 0.5]\n"
      "on_content_filter = \"next\"\n"
      "[breaker]\nconsecutive_failures = 5\nfailure_rate = 0.25\nmin_calls = 20\n"
      "window = \"2m\"\ncooldown = \"10s\"\nmax_cooldown = \"5m\"\nlong_cooldown = \"2h\"\n");
  CHECK(config.breaker.consecutive_failures == 5);
  CHECK(config.breaker.failure_rate == 0.25);
  CHECK(config.breaker.min_calls == 20);
  CHECK(config.breaker.window == Millis(120'000));
  CHECK(config.breaker.cooldown == Millis(10'000));
  CHECK(config.breaker.max_cooldown == Millis(300'000));
  CHECK(config.breaker.long_cooldown == Millis(7'200'000));
  Chain chain = resolve_chain(config, {"r"}, lookup({}));
  CHECK(chain.next_on_content_filter);
  CHECK(chain.strategy == "weighted");
  CHECK(chain.targets[0].weight == 3);
  CHECK(chain.targets[1].weight == 0.5);

  CHECK_THROWS_WITH(parse("[breaker]\ncooldown = \"1m\"\nmax_cooldown = \"30s\"\n"),
                    Catch::Contains("breaker.max_cooldown: must not be shorter than cooldown"));
  CHECK_THROWS_WITH(parse("[providers.p]\nprotocol = \"openai\"\nbase_url = \"http://x/v1\"\n"
                          "[routes.r]\ntargets = [\"p/a\"]\non_content_filter = \"maybe\"\n"),
                    Catch::Contains("routes.r.on_content_filter"));
}
