// [providers.NAME] beyond URL and key (README, "Providers"): headers, headers_env, query,
// api_version, api_key_cmd, ca_bundle, catalog; the Azure and OpenAI-organisation zero-config;
// what resolution makes of them.
#include <catch2/catch.hpp>

#include "config/key_command.hpp"
#include "config_test_support.hpp"

using namespace detour;
using namespace detour::config;
using namespace detour::config::testing;

namespace {

const char* kGateway = R"(
[providers.gw]
protocol = "openai"
base_url = "https://gateway.example/v1"
api_key_env = "GW_KEY"
headers = { "x-team" = "search", "Authorization" = "Bearer team-token" }
headers_env = { "x-gateway-key" = "GATEWAY_SECRET" }
query = { "tag" = "night ly", "v" = "2" }
)";

}  // namespace

TEST_CASE("providers: headers, headers_env and query are read (in name order)", "[config]") {
  const Config c = parse(kGateway);
  const ProviderConfig& p = c.providers.at("gw");
  CHECK(p.headers == NameValues{{"Authorization", "Bearer team-token"}, {"x-team", "search"}});
  CHECK(p.headers_env == NameValues{{"x-gateway-key", "GATEWAY_SECRET"}});
  CHECK(p.query == NameValues{{"tag", "night ly"}, {"v", "2"}});
}

TEST_CASE("providers: a header value from the environment is resolved and kept secret",
          "[config]") {
  const Env env = {{"GW_KEY", "sk-gw"}, {"GATEWAY_SECRET", "gw-SECRET-value"}};
  const Config c = parse(kGateway, env);
  const ResolvedTarget t = resolve_target(c, {"gw", "m"}, lookup(env));
  CHECK(t.headers == NameValues{{"Authorization", "Bearer team-token"},
                                {"x-team", "search"},
                                {"x-gateway-key", "gw-SECRET-value"}});
  // The file's Authorization is a credential too, and so is its token alone.
  CHECK(t.secrets ==
        std::vector<std::string>{"Bearer team-token", "team-token", "gw-SECRET-value"});
  CHECK(t.query == NameValues{{"tag", "night ly"}, {"v", "2"}});

  const std::string message = error_of([&] {
    resolve_target(c, {"gw", "m"}, lookup({{"GW_KEY", "k"}}));
  });
  CHECK(message ==
        "provider gw: environment variable GATEWAY_SECRET is not set (needed for header "
        "x-gateway-key)");
}

TEST_CASE("providers: OPENAI_ORG_ID and OPENAI_PROJECT_ID reach OpenAI as the SDKs send them",
          "[config]") {
  const Env env = {{"OPENAI_API_KEY", "sk-o"},
                   {"OPENAI_ORG_ID", "org-123456"},
                   {"OPENAI_PROJECT_ID", "proj_abcdef"}};
  SECTION("zero-config openai") {
    const Config c = parse("", env);
    const ResolvedTarget t = resolve_target(c, {"openai", "gpt-x"}, lookup(env));
    CHECK(t.headers ==
          NameValues{{"OpenAI-Organization", "org-123456"}, {"OpenAI-Project", "proj_abcdef"}});
    CHECK(t.secrets.size() == 2);
  }
  SECTION("a header the file names wins") {
    const Config c = parse(R"(
[providers.openai]
headers = { "openai-organization" = "org-file" }
)",
                           env);
    const ResolvedTarget t = resolve_target(c, {"openai", "gpt-x"}, lookup(env));
    CHECK(t.headers ==
          NameValues{{"openai-organization", "org-file"}, {"OpenAI-Project", "proj_abcdef"}});
  }
  SECTION("any provider pointed at api.openai.com, but no other") {
    const Config c = parse(R"(
[providers.work]
protocol = "openai"
base_url = "https://API.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
[providers.local]
protocol = "openai"
base_url = "http://localhost:8000/v1"
)",
                           env);
    CHECK(resolve_target(c, {"work", "m"}, lookup(env)).headers.size() == 2);
    CHECK(resolve_target(c, {"local", "m"}, lookup(env)).headers.empty());
  }
}

TEST_CASE("providers: azure from the file and from the SDKs' variables", "[config]") {
  SECTION("a table: api_version given, or OPENAI_API_VERSION, or the default") {
    const char* text = R"(
[providers.az]
protocol = "azure"
base_url = "https://res.openai.azure.com/"
api_key_env = "AZ_KEY"
)";
    CHECK(parse(text).providers.at("az").api_version == "2024-10-21");
    CHECK(parse(text, {{"OPENAI_API_VERSION", "2025-01-01-preview"}})
              .providers.at("az")
              .api_version == "2025-01-01-preview");
    CHECK(parse(std::string(text) + "api_version = \"2024-06-01\"\n")
              .providers.at("az")
              .api_version == "2024-06-01");
    CHECK(parse(text).providers.at("az").base_url == "https://res.openai.azure.com");
  }
  SECTION("zero-config needs both the key and the endpoint") {
    const Env both = {{"AZURE_OPENAI_API_KEY", "az-key"},
                      {"AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com"},
                      {"OPENAI_API_VERSION", "2024-10-21"}};
    const Config c = parse("", both);
    const ProviderConfig& p = c.providers.at("azure");
    CHECK(p.protocol == "azure");
    CHECK(p.base_url == "https://res.openai.azure.com");
    CHECK(p.api_key_env == "AZURE_OPENAI_API_KEY");
    CHECK(p.zero_config);

    const Env key_only = {{"AZURE_OPENAI_API_KEY", "az-key"}};
    CHECK(parse("", key_only).providers.count("azure") == 0);
    CHECK_THAT(
        error_of([&] { resolve_chain(parse("", key_only), {"azure/gpt-x"}, lookup(key_only)); }),
        Catch::Contains("AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT are not both set"));
  }
  SECTION("api_version belongs to azure alone") {
    CHECK_THAT(error_of([] {
                 parse(
                     "[providers.x]\nprotocol = \"openai\"\nbase_url = \"http://h/v1\"\n"
                     "api_version = \"2024-10-21\"\n");
               }),
               Catch::Contains("config.toml:4:15: providers.x.api_version: only protocol = "
                               "\"azure\" takes an api_version"));
  }
}

TEST_CASE("providers: api_key_cmd and its errors", "[config]") {
  const Config c = parse(R"(
[providers.vertex]
protocol = "openai"
base_url = "https://example.googleapis.com/v1"
api_key_cmd = "gcloud auth print-access-token"
api_key_ttl = "50m"
)");
  const ProviderConfig& p = c.providers.at("vertex");
  CHECK(p.api_key_cmd == "gcloud auth print-access-token");
  CHECK(p.api_key_ttl == Millis(50 * 60 * 1000));
  CHECK(p.api_key_env.empty());
  const ResolvedTarget t = resolve_target(c, {"vertex", "m"}, lookup({}));
  REQUIRE(t.key_command);
  CHECK(t.key_command->provider() == "vertex");
  CHECK(t.api_key.empty());

  struct Row {
    const char* toml;
    const char* error;
  };
  const Row rows[] = {
      {"api_key_cmd = \"pass show openai | head -1\"",
       "providers.p.api_key_cmd: '|' needs a shell: api_key_cmd runs its program directly"},
      {"api_key_cmd = \"get-key > /tmp/k\"", "providers.p.api_key_cmd: '>' needs a shell"},
      {"api_key_cmd = \"echo \\\"$TOKEN\\\"\"", "'$' inside double quotes needs a shell"},
      {"api_key_cmd = \"get 'key\"", "providers.p.api_key_cmd: a quote is not closed"},
      {"api_key_cmd = \"  \"", "providers.p.api_key_cmd: names no program"},
      {"api_key_env = \"K\"\napi_key_cmd = \"get-key\"",
       "providers.p.api_key_cmd: give api_key_env or api_key_cmd, not both"},
      {"api_key_ttl = \"5m\"", "providers.p.api_key_ttl: only applies with api_key_cmd"},
      {"headers = { \"x team\" = \"a\" }",
       "providers.p.headers.\"x team\": not a valid HTTP header name"},
      {"headers = { \"x-a\" = \"a\\nb\" }",
       "providers.p.headers.x-a: a value cannot contain a line break"},
      {"headers_env = { \"x-a\" = \"sk-pasted-value!\" }",
       "providers.p.headers_env.x-a: expected the name of an environment variable"},
      {"catalog = \"bedrock\"",
       "providers.p.catalog: expected one of openai, anthropic, gemini, "
       "deepseek, mistral, groq, none"},
  };
  for (const auto& row : rows) {
    INFO(row.toml);
    const std::string text = std::string(
                                 "[providers.p]\nprotocol = \"openai\"\nbase_url = "
                                 "\"http://h/v1\"\n") +
                             row.toml + "\n";
    const std::string message = error_of([&] { parse(text); });
    CHECK_THAT(message, Catch::Contains(row.error));
    CHECK_THAT(message, Catch::StartsWith("config.toml:"));
    CHECK_THAT(message, !Catch::Contains("sk-pasted-value"));
  }
}

TEST_CASE("providers: split_command splits words and quotes like a shell, nothing more",
          "[config]") {
  using V = std::vector<std::string>;
  CHECK(split_command("gcloud auth print-access-token") ==
        V{"gcloud", "auth", "print-access-token"});
  CHECK(split_command("  az  account get-access-token --query accessToken -o tsv ") ==
        V{"az", "account", "get-access-token", "--query", "accessToken", "-o", "tsv"});
  CHECK(split_command("pass show 'work/open ai'") == V{"pass", "show", "work/open ai"});
  CHECK(split_command("get \"a \\\"b\\\" c\" d\\ e") == V{"get", "a \"b\" c", "d e"});
  CHECK(split_command("get '|;$'") == V{"get", "|;$"});
  CHECK(split_command("get ''") == V{"get", ""});
  CHECK_THROWS_AS(split_command("a;b"), ConfigError);
  CHECK_THROWS_AS(split_command("a && b"), ConfigError);
  CHECK_THROWS_AS(split_command("$(get)"), ConfigError);
  CHECK_THROWS_AS(split_command("~/bin/get"), ConfigError);
}

TEST_CASE("providers: ca_bundle is relative to its file, and must be a readable file when used",
          "[config]") {
  const char* table =
      "[providers.p]\nprotocol = \"openai\"\nbase_url = \"https://h/v1\"\n"
      "ca_bundle = \"certs/corp.pem\"\n";
  const Config c = parse_config(table, "/etc/detour/config.toml", lookup({}));
  CHECK(c.providers.at("p").ca_bundle == "/etc/detour/certs/corp.pem");
  CHECK(error_of([&] {
          resolve_target(c, {"p", "m"}, lookup({}));
        }) ==
        "provider p: ca_bundle /etc/detour/certs/corp.pem: cannot read it: No such file or "
        "directory");

  const Config plain = parse("[providers.p]\nprotocol = \"openai\"\nbase_url = \"https://h/v1\"\n");
  CHECK(resolve_target(plain, {"p", "m"}, lookup({{"SSL_CERT_FILE", "/dev/null"}})).ca_bundle ==
        "/dev/null");
  CHECK(resolve_target(plain, {"p", "m"}, lookup({{"SSL_CERT_DIR", "/etc/ssl/certs"}})).ca_path ==
        "/etc/ssl/certs");
  CHECK(error_of([&] {
          resolve_target(plain, {"p", "m"}, lookup({{"SSL_CERT_FILE", "/no/such.pem"}}));
        }) == "SSL_CERT_FILE /no/such.pem: cannot read it: No such file or directory");
  // A directory passes a readability check but is no bundle: named here, not as a TLS error
  // on every request.
  const Config dir = parse(
      "[providers.p]\nprotocol = \"openai\"\nbase_url = \"https://h/v1\"\nca_bundle = \"/tmp\"\n");
  CHECK(error_of([&] {
          resolve_target(dir, {"p", "m"}, lookup({}));
        }) ==
        "provider p: ca_bundle /tmp: is a directory, not a PEM file (a directory of hashed "
        "certificates goes in SSL_CERT_DIR)");
  CHECK_THAT(error_of([&] {
               resolve_target(plain, {"p", "m"}, lookup({{"SSL_CERT_FILE", "/tmp"}}));
             }),
             Catch::StartsWith("SSL_CERT_FILE /tmp: is a directory"));
}

TEST_CASE("models: max_output_tokens and cached_input_cost are read like the rest", "[config]") {
  const Config c = parse(R"(
[providers.p]
protocol = "openai"
base_url = "http://h/v1"
[models."p/m"]
max_output_tokens = 16384
cached_input_cost = 0.125
)");
  CHECK(c.models.at("p/m").max_output_tokens == 16384);
  CHECK(c.models.at("p/m").cached_input_cost == 0.125);
  CHECK_THAT(error_of([] {
               parse(
                   "[providers.p]\nprotocol = \"openai\"\nbase_url = \"http://h/v1\"\n"
                   "[models.\"p/m\"]\nmax_output_tokens = 0\n");
             }),
             Catch::Contains("models.\"p/m\".max_output_tokens: must be at least 1, got 0"));
}
