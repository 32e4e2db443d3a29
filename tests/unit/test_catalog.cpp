// The built-in model catalog (README, "Model catalog"): the file parses, covers the providers it
// claims, and fills only what the config leaves out.
#include <set>

#include <catch2/catch.hpp>

#include "config/catalog.hpp"
#include "config_test_support.hpp"

using namespace detour;
using namespace detour::config;
using namespace detour::config::testing;

TEST_CASE("catalog: the built-in file parses and covers every catalog provider", "[catalog]") {
  const Catalog& catalog = Catalog::builtin();
  REQUIRE(catalog.size() > 20);
  CHECK(catalog.taken().size() == 10);  // a date, YYYY-MM-DD
  std::set<std::string> providers;
  for (auto name : catalog_providers()) {
    if (name != "none") providers.insert(std::string(name));
  }
  CHECK(providers.size() == 6);
  // Parsing again from the text gives the same entries; every entry has a window.
  const auto doc = nlohmann::json::parse(
      R"({"models":{"openai/a":{"context_window":1000,"input_cost":1.5,"output_cost":6,"cached_input_cost":0.15,"max_output_tokens":100}}})");
  const Catalog small = Catalog::parse(doc.dump());
  const ModelConfig* a = small.find("openai", "a");
  REQUIRE(a);
  CHECK(a->context_window == 1000);
  CHECK(a->max_output_tokens == 100);
  CHECK(a->input_cost == 1.5);
  CHECK(a->output_cost == 6);
  CHECK(a->cached_input_cost == 0.15);
  CHECK(small.find("openai", "b") == nullptr);
  CHECK(small.find("anthropic", "a") == nullptr);
}

TEST_CASE("catalog: bad catalog text is refused with where it is wrong", "[catalog]") {
  CHECK_THROWS_WITH(Catalog::parse("[]"), "not a JSON object");
  CHECK_THROWS_WITH(Catalog::parse("{}"), "no \"models\" object");
  CHECK_THROWS_WITH(Catalog::parse(R"({"models":{"gpt":{}}})"),
                    "models.gpt: expected \"provider/model\"");
  CHECK_THROWS_WITH(Catalog::parse(R"({"models":{"openai/x":{"input_cost":"2"}}})"),
                    "models.openai/x.input_cost: expected a number of 0 or more");
}

TEST_CASE("catalog: which catalog provider a configured provider's models belong to", "[catalog]") {
  auto provider = [](std::string name, std::string protocol, std::string url,
                     std::string catalog = "") {
    ProviderConfig p;
    p.name = std::move(name);
    p.protocol = std::move(protocol);
    p.base_url = std::move(url);
    p.catalog = std::move(catalog);
    return p;
  };
  CHECK(catalog_provider_of(provider("openai", "openai", "http://127.0.0.1:9/v1")) == "openai");
  CHECK(catalog_provider_of(provider("work", "openai", "https://API.OpenAI.com/v1")) == "openai");
  CHECK(catalog_provider_of(provider("claude", "anthropic", "https://api.anthropic.com")) ==
        "anthropic");
  CHECK(catalog_provider_of(provider("g", "gemini", "https://generativelanguage.googleapis.com")) ==
        "gemini");
  CHECK(catalog_provider_of(provider("az", "azure", "https://r.openai.azure.com")) == "openai");
  CHECK(catalog_provider_of(provider("ollama", "openai", "http://localhost:11434/v1")) ==
        std::nullopt);
  CHECK(catalog_provider_of(provider("openrouter", "openai", "https://openrouter.ai/api/v1")) ==
        std::nullopt);
  CHECK(catalog_provider_of(provider("vllm", "openai", "http://gpu:8000/v1", "groq")) == "groq");
  CHECK(catalog_provider_of(provider("openai", "openai", "http://x/v1", "none")) == std::nullopt);
}

TEST_CASE("catalog: the config wins, and prices go together", "[catalog]") {
  ModelConfig entry;
  entry.context_window = 100000;
  entry.max_output_tokens = 8000;
  entry.input_cost = 2;
  entry.output_cost = 8;
  entry.cached_input_cost = 0.5;

  ModelConfig empty;
  const ModelConfig filled = with_catalog(empty, entry);
  CHECK(filled.context_window == 100000);
  CHECK(filled.input_cost == 2);
  CHECK(filled.cached_input_cost == 0.5);

  ModelConfig own;
  own.context_window = 5000;
  own.output_cost = 1;  // a negotiated price: the catalog's input price must not join it
  own.tier = 2;
  const ModelConfig merged = with_catalog(own, entry);
  CHECK(merged.context_window == 5000);
  CHECK(merged.max_output_tokens == 8000);
  CHECK_FALSE(merged.input_cost);
  CHECK(merged.output_cost == 1);
  CHECK_FALSE(merged.cached_input_cost);
  CHECK(merged.tier == 2);
}

TEST_CASE("catalog: a resolved target knows its model's window and prices with no config",
          "[catalog]") {
  // Any model of the built-in catalog, under the zero-config provider of its vendor.
  const Catalog& catalog = Catalog::builtin();
  const Env env = {{"OPENAI_API_KEY", "sk-o"}};
  const Config c = parse(R"(
[models."openai/catalog-test-model"]
tier = 1
)",
                         env);
  // A model the catalog lacks keeps what the config says, and nothing else.
  const ResolvedTarget unknown = resolve_target(c, {"openai", "catalog-test-model"}, lookup(env));
  CHECK(unknown.model.tier == 1);
  CHECK_FALSE(unknown.model.context_window);

  // Every openai entry of the catalog resolves to its catalog facts.
  int seen = 0;
  for (const char* model : {"gpt-5.4-mini", "gpt-5.5", "gpt-6-luna"}) {
    const ModelConfig* entry = catalog.find("openai", model);
    if (!entry) continue;
    ++seen;
    const ResolvedTarget t = resolve_target(c, {"openai", model}, lookup(env));
    CHECK(t.model.context_window == entry->context_window);
    CHECK(t.model.input_cost == entry->input_cost);
    CHECK(t.model.output_cost == entry->output_cost);
  }
  CHECK(seen > 0);
}
