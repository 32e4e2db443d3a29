// protocol = "azure" end to end: the real detour binary against detour-mock's Azure OpenAI routes
// (tests/mock/README.md, "Azure OpenAI"; Microsoft Learn, "Azure OpenAI in Azure AI Foundry
// Models REST API reference"): the deployment in the URL, api-version, the api-key header (or a
// bearer token from api_key_cmd), zero-config from AZURE_OPENAI_API_KEY / AZURE_OPENAI_ENDPOINT /
// OPENAI_API_VERSION, the content filter's 400, a 429 with retry-after, an unknown deployment,
// `detour health` with both probes, and a route failing over from Azure to OpenAI and Anthropic
// on one mock.
//
// Azure answers in OpenAI's words, finish reasons included (Protocol::reply_family).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness.hpp"
#include "provider_test_util.hpp"

using namespace detour::testing;
using namespace detour::testing::providers;
using nlohmann::json;

namespace {

const std::string kKey = "azure-KEY-3b9e1f7c5d20a846";
const std::string kDefaultVersion = "2024-10-21";  // the feature's default api-version

std::string azure_provider(const std::string& name, const std::string& url,
                           const std::string& extra = "api_key_env = \"AZ_KEY\"\n") {
  return "[providers." + name + "]\nprotocol = \"azure\"\nbase_url = \"" + url + "\"\n" + extra +
         "\n";
}

// An Azure resource, an OpenAI-compatible provider and an Anthropic provider, all on `mock`
// (one port serves the three protocols).
std::string three_providers(const MockServer& mock) {
  return azure_provider("az", mock.url()) + "[providers.oa]\nprotocol = \"openai\"\nbase_url = \"" +
         mock.url() + "/v1\"\napi_key_env = \"AZ_KEY\"\n\n" +
         "[providers.an]\nprotocol = \"anthropic\"\nbase_url = \"" + mock.url() +
         "\"\napi_key_env = \"AZ_KEY\"\n\n";
}

std::map<std::string, std::string> key_env() {
  return {{"AZ_KEY", kKey}};
}

std::string chat_path(const std::string& deployment) {
  return "/openai/deployments/" + deployment + "/chat/completions";
}

}  // namespace

TEST_CASE("azure e2e: a chat goes to the deployment with api-version and the api-key header",
          "[providers][azure]") {
  MockServer mock({{"models", {{"prod-chat", json::object()}}}}, {"--api-key", kKey});
  TempDir dir;
  const std::string key_script = write_script(dir, "entra.sh", "echo " + kKey + "\n");
  const std::string config = dir.write(
      "config.toml",
      azure_provider("az", mock.url()) +
          azure_provider("pinned", mock.url(),
                         "api_key_env = \"AZ_KEY\"\napi_version = \"2025-01-01-preview\"\n") +
          azure_provider("old", mock.url(),
                         "api_key_env = \"AZ_KEY\"\napi_version = \"2024-06-01\"\n") +
          azure_provider("entra", mock.url(), "api_key_cmd = \"" + key_script + "\"\n") +
          // A gateway's own api-key from the environment replaces the provider's, and the
          // provider's query parameters join api-version.
          azure_provider("gw", mock.url(),
                         "api_key_env = \"WRONG_KEY\"\nheaders_env = { \"API-Key\" = \"AZ_KEY\" }\n"
                         "query = { \"tag\" = \"nightly\" }\n"));
  auto ask = [&](const std::string& target, std::map<std::string, std::string> env = key_env()) {
    return run_detour(config,
                      {"--state", "memory", "ask", "--retries", "0", "--max-tokens", "50", "-m",
                       target, "hello azure"},
                      env);
  };
  ask("az/prod-chat");
  ask("pinned/prod-chat");
  ask("old/prod-chat");
  std::map<std::string, std::string> versioned = key_env();
  versioned["OPENAI_API_VERSION"] = "2024-08-01-preview";
  ask("az/gpt-4o", versioned);
  ask("entra/prod-chat");
  std::map<std::string, std::string> gateway = key_env();
  gateway["WRONG_KEY"] = "azure-wrong-key-0000";
  ask("gw/prod-chat", gateway);

  json all = received(mock);
  REQUIRE(all.size() == 6);
  CHECK(all[5]["query"] == json{{"api-version", kDefaultVersion}, {"tag", "nightly"}});
  CHECK(all[5]["auth"] == "api-key");
  CHECK(all[5]["status"] == 200);
  all.erase(5);
  const char* const versions[] = {"2024-10-21", "2025-01-01-preview", "2024-06-01",
                                  "2024-08-01-preview", "2024-10-21"};
  const char* const deployments[] = {"prod-chat", "prod-chat", "prod-chat", "gpt-4o", "prod-chat"};
  for (std::size_t i = 0; i < all.size(); ++i) {
    json& r = all[i];
    INFO("request " << i << ": " << r.dump());
    CHECK(r["method"] == "POST");
    CHECK(r["path"] == chat_path(deployments[i]));
    CHECK(r["query"] == json{{"api-version", versions[i]}});
    CHECK(r["status"] == 200);  // the key was right, the version accepted, the body valid
    CHECK(r["model"] == deployments[i]);
    CHECK(r["prompt"] == "hello azure");
    // The deployment names the model: the body does not.
    CHECK_FALSE(r["params"].contains("model"));
  }
  // api-key, except for a token from api_key_cmd (a Microsoft Entra ID token): a bearer.
  for (int i : {0, 1, 2, 3}) {
    CHECK(all[i]["auth"] == "api-key");
    CHECK(field(all[i], "headers", "authorization").is_null());
  }
  CHECK(all[4]["auth"] == "bearer");
  CHECK(field(all[4], "headers", "api-key").is_null());
  // From 2024-09-01 on Azure takes max_completion_tokens; older versions only max_tokens.
  CHECK(all[0]["params"]["max_completion_tokens"] == 50);
  CHECK(all[2]["params"]["max_tokens"] == 50);
  CHECK_FALSE(all[2]["params"].contains("max_completion_tokens"));
}

TEST_CASE("azure e2e: a refused key is auth, exit 5", "[providers][azure]") {
  MockServer mock(json::object(), {"--api-key", kKey});
  TempDir dir;
  const std::string config = dir.write("config.toml", azure_provider("az", mock.url()));
  const RunResult r =
      run_detour(config, {"--state", "memory", "ask", "--json", "-m", "az/gpt-4o", "hi"},
                 {{"AZ_KEY", "azure-wrong-key-0000"}});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 5);
  json j = json_out(r);
  CHECK(j["error"]["class"] == "auth");
  CHECK(j["error"]["status"] == 401);
  CHECK(j["error"]["message"].get<std::string>().find("Access denied") != std::string::npos);
}

TEST_CASE("azure e2e: zero-config from AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT",
          "[providers][azure]") {
  MockServer mock(json::object(), {"--api-key", kKey});
  const std::map<std::string, std::string> env = {{"AZURE_OPENAI_API_KEY", kKey},
                                                  {"AZURE_OPENAI_ENDPOINT", mock.url()},
                                                  {"OPENAI_API_VERSION", "2024-12-01-preview"}};
  run_detour("", {"--state", "memory", "ask", "--retries", "0", "-m", "azure/gpt-4o", "zero"}, env);
  const RunResult health =
      run_detour("", {"--state", "memory", "health", "--format", "json", "azure"}, env);
  INFO(health.out << health.err);
  CHECK(health.exit_code == 0);
  json all = received(mock);
  REQUIRE(all.size() == 2);
  CHECK(all[0]["path"] == chat_path("gpt-4o"));
  CHECK(all[0]["query"] == json{{"api-version", "2024-12-01-preview"}});
  CHECK(all[0]["auth"] == "api-key");
  CHECK(all[0]["status"] == 200);
  CHECK(all[1]["method"] == "GET");
  CHECK(all[1]["path"] == "/openai/models");
  CHECK(all[1]["query"] == json{{"api-version", "2024-12-01-preview"}});
  CHECK(all[1]["status"] == 200);

  // Without the endpoint there is no provider `azure`: both variables are named.
  const RunResult missing = run_detour("", {"--state", "memory", "ask", "-m", "azure/gpt-4o", "hi"},
                                       {{"AZURE_OPENAI_API_KEY", kKey}});
  INFO(missing.err);
  CHECK(missing.exit_code == 3);
  CHECK(missing.err.find("AZURE_OPENAI_API_KEY") != std::string::npos);
  CHECK(missing.err.find("AZURE_OPENAI_ENDPOINT") != std::string::npos);
  CHECK(missing.err.find(kKey) == std::string::npos);
}

TEST_CASE("azure e2e: the deployment's answer is detour's answer, plain, streamed and zero-config",
          "[providers][azure]") {
  MockServer mock({{"models", {{"prod-chat", json::object()}}}}, {"--api-key", kKey});
  TempDir dir;
  const std::string config = dir.write("config.toml", azure_provider("az", mock.url()));
  const RunResult plain =
      run_detour(config, {"--state", "memory", "ask", "-m", "az/prod-chat", "hi"}, key_env());
  INFO(plain.err);
  CHECK(plain.exit_code == 0);
  CHECK(plain.out == "mock reply to: hi\n");

  const RunResult as_json = run_detour(
      config, {"--state", "memory", "ask", "--json", "-m", "az/prod-chat", "hello there"},
      key_env());
  json j = json_out(as_json);
  INFO(as_json.out);
  CHECK(j["ok"] == true);
  CHECK(j["content"] == "mock reply to: hello there");
  CHECK(j["provider"] == "az");
  CHECK(j["model"] == "prod-chat");
  CHECK(j["finish_reason"] == "stop");
  CHECK(j["usage"]["output_tokens"] == 5);
  CHECK(j["attempts"].size() == 1);

  // Azure's stream opens with a prompt-annotation chunk that has no choices.
  const RunResult stream = run_detour(
      config, {"--state", "memory", "ask", "--stream", "-m", "az/prod-chat", "stream me"},
      key_env());
  INFO(stream.err);
  CHECK(stream.exit_code == 0);
  CHECK(stream.out == "mock reply to: stream me\n");

  const RunResult zero =
      run_detour("", {"--state", "memory", "ask", "-m", "azure/gpt-4o", "zero"},
                 {{"AZURE_OPENAI_API_KEY", kKey}, {"AZURE_OPENAI_ENDPOINT", mock.url()}});
  INFO(zero.err);
  CHECK(zero.exit_code == 0);
  CHECK(zero.out == "mock reply to: zero\n");
}

TEST_CASE("azure e2e: the content filter's 400 stops the call, exit 4, unless the route moves on",
          "[providers][azure]") {
  MockServer mock({{"models", {{"filtered", {{"fault", "content_filter"}}}}}}, {"--api-key", kKey});
  TempDir dir;
  const std::string config =
      dir.write("config.toml", three_providers(mock) +
                                   "[routes.stops]\ntargets = [\"az/filtered\", \"oa/gpt-4o\"]\n\n"
                                   "[routes.moves]\ntargets = [\"az/filtered\", \"oa/gpt-4o\"]\n"
                                   "on_content_filter = \"next\"\n");
  for (const std::string target : {"az/filtered", "stops"}) {
    const RunResult r =
        run_detour(config, {"--state", "memory", "ask", "--json", "-m", target, "hi"}, key_env());
    INFO(target << "\n" << r.out << r.err);
    CHECK(r.exit_code == 4);
    json j = json_out(r);
    CHECK(j["ok"] == false);
    CHECK(j["error"]["class"] == "content_filter");
    CHECK(j["error"]["status"] == 400);
    CHECK(j["error"]["message"].get<std::string>().find("content management policy") !=
          std::string::npos);
    CHECK(attempt_targets(j) == std::vector<std::string>{"az/filtered"});
  }
  const RunResult moved =
      run_detour(config, {"--state", "memory", "ask", "--json", "-m", "moves", "hi"}, key_env());
  INFO(moved.out << moved.err);
  CHECK(moved.exit_code == 0);
  json j = json_out(moved);
  CHECK(j["content"] == "mock reply to: hi");
  CHECK(j["provider"] == "oa");
  CHECK(attempt_targets(j) == std::vector<std::string>{"az/filtered", "oa/gpt-4o"});
  CHECK(j["attempts"][0]["error"] == "content_filter");
  // Filtered once per call: never retried.
  int filtered = 0;
  for (json& r : received(mock))
    filtered += r["model"] == "filtered" ? 1 : 0;
  CHECK(filtered == 3);
}

TEST_CASE("azure e2e: an answer cut by the content filter is content_filter, exit 4",
          "[providers][azure]") {
  MockServer mock({{"models", {{"cut", {{"fault", "finish_content_filter"}}}}}},
                  {"--api-key", kKey});
  TempDir dir;
  const std::string config = dir.write("config.toml", azure_provider("az", mock.url()));
  const RunResult r = run_detour(
      config, {"--state", "memory", "ask", "--json", "-m", "az/cut", "a long prompt here"},
      key_env());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 4);
  CHECK(json_out(r)["error"]["class"] == "content_filter");
  CHECK(json_out(r)["attempts"].size() == 1);
}

TEST_CASE("azure e2e: a 429 with retry-after is waited out on the same deployment",
          "[providers][azure]") {
  MockServer mock(
      {{"models", {{"busy", {{"fault", "rate_limit"}, {"retry_after_s", 1}, {"times", 1}}}}}},
      {"--api-key", kKey});
  TempDir dir;
  const std::string config = dir.write("config.toml", azure_provider("az", mock.url()));
  const RunResult r = run_detour(
      config, {"--state", "memory", "ask", "--json", "--retries", "1", "-m", "az/busy", "hi"},
      key_env());
  INFO(r.out << r.err);
  json j = json_out(r);
  REQUIRE(j["attempts"].size() >= 2);
  CHECK(j["attempts"][0]["status"] == 429);
  CHECK(j["attempts"][0]["error"] == "rate_limited");
  // The hint of 1 s was waited (Azure sends retry-after and retry-after-ms), then the same
  // deployment was asked again and answered 200.
  CHECK(j["attempts"][1]["model"] == "busy");
  CHECK(j["attempts"][1]["status"] == 200);
  CHECK(j["attempts"][1]["waited_ms"].get<int>() >= 900);
  json all = received(mock);
  REQUIRE(all.size() == 2);
  CHECK(all[0]["status"] == 429);
  CHECK(all[1]["status"] == 200);
}

TEST_CASE("azure e2e: after the 429 is waited out the call succeeds", "[providers][azure]") {
  MockServer mock(
      {{"models", {{"busy", {{"fault", "rate_limit"}, {"retry_after_s", 1}, {"times", 1}}}}}},
      {"--api-key", kKey});
  TempDir dir;
  const std::string config = dir.write("config.toml", azure_provider("az", mock.url()));
  const RunResult r = run_detour(
      config, {"--state", "memory", "ask", "--json", "--retries", "1", "-m", "az/busy", "hi"},
      key_env());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  json j = json_out(r);
  CHECK(j["ok"] == true);
  CHECK(j["content"] == "mock reply to: hi");
  CHECK(j["attempts"].size() == 2);
}

TEST_CASE("azure e2e: an unknown deployment is not_found and the call moves on",
          "[providers][azure]") {
  MockServer mock(json::object(), {"--api-key", kKey});
  TempDir dir;
  const std::string config = dir.write("config.toml", three_providers(mock));
  const RunResult r = run_detour(
      config, {"--state", "memory", "ask", "--json", "-m", "az/no-such-deployment,oa/gpt-4o", "hi"},
      key_env());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  json j = json_out(r);
  CHECK(j["content"] == "mock reply to: hi");
  CHECK(attempt_targets(j) == std::vector<std::string>{"az/no-such-deployment", "oa/gpt-4o"});
  CHECK(j["attempts"][0]["status"] == 404);
  CHECK(j["attempts"][0]["error"] == "not_found");
  json all = received(mock);
  REQUIRE(all.size() == 2);  // not retried
  CHECK(all[0]["path"] == chat_path("no-such-deployment"));
}

TEST_CASE("azure e2e: health lists the resource's models and leaves deployments to --probe chat",
          "[providers][azure]") {
  MockServer mock({{"models", {{"prod-chat", json::object()}}}}, {"--api-key", kKey});
  TempDir dir;
  const std::string config = dir.write(
      "config.toml", azure_provider("az", mock.url()) + "[models.\"az/prod-chat\"]\ntier = 1\n");
  const RunResult r = run_detour(
      config, {"--state", "memory", "health", "--format", "json", "az/prod-chat"}, key_env());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  json j = json_out(r);
  REQUIRE(j.is_array());
  REQUIRE(j.size() == 1);
  CHECK(j[0]["target"] == "az/prod-chat");
  CHECK(j[0]["status"] == "ok");
  CHECK(j[0]["http_status"] == 200);
  CHECK(j[0]["message"].get<std::string>().find("--probe chat") != std::string::npos);
  json all = received(mock);
  REQUIRE(all.size() == 1);
  CHECK(all[0]["method"] == "GET");
  CHECK(all[0]["path"] == "/openai/models");
  CHECK(all[0]["query"] == json{{"api-version", kDefaultVersion}});
  CHECK(all[0]["auth"] == "api-key");

  // The chat probe asks the deployment itself: an unknown one is not_found there...
  mock.reset_stats();
  const RunResult unknown = run_detour(
      config, {"--state", "memory", "health", "--probe", "chat", "--format", "json", "az/nope"},
      key_env());
  INFO(unknown.out << unknown.err);
  CHECK(unknown.exit_code == 1);
  json u = json_out(unknown);
  CHECK(u[0]["status"] == "not_found");
  CHECK(u[0]["http_status"] == 404);
  all = received(mock);
  REQUIRE(all.size() == 1);
  CHECK(all[0]["path"] == chat_path("nope"));
  CHECK(all[0]["query"] == json{{"api-version", kDefaultVersion}});

  // ...and a key the resource refuses is auth under either probe.
  for (const std::string probe : {"models", "chat"}) {
    const RunResult bad = run_detour(
        config,
        {"--state", "memory", "health", "--probe", probe, "--format", "json", "az/prod-chat"},
        {{"AZ_KEY", "azure-wrong-key-0000"}});
    INFO(probe << ": " << bad.out << bad.err);
    CHECK(bad.exit_code == 1);
    CHECK(json_out(bad)[0]["status"] == "auth");
  }
}

TEST_CASE("azure e2e: health --probe chat sends the deployment one token and reports ok",
          "[providers][azure]") {
  MockServer mock({{"models", {{"prod-chat", json::object()}}}}, {"--api-key", kKey});
  TempDir dir;
  const std::string config = dir.write("config.toml", azure_provider("az", mock.url()));
  const RunResult r = run_detour(
      config,
      {"--state", "memory", "health", "--probe", "chat", "--format", "json", "az/prod-chat"},
      key_env());
  INFO(r.out << r.err);
  json all = received(mock);
  REQUIRE(all.size() == 1);
  CHECK(all[0]["path"] == chat_path("prod-chat"));
  CHECK(all[0]["params"]["max_completion_tokens"] == 1);
  CHECK(all[0]["status"] == 200);
  CHECK(r.exit_code == 0);
  CHECK(json_out(r)[0]["status"] == "ok");
}

TEST_CASE("azure e2e: a route fails over from an Azure deployment to OpenAI, then to Anthropic",
          "[providers][azure]") {
  // The deployment is overloaded (503), the OpenAI model is rate limited with a long hint (so
  // the call moves on at once), and Anthropic answers.
  MockServer mock({{"models",
                    {{"prod-chat", {{"fault", "overloaded"}}},
                     {"gpt-4o", {{"fault", "rate_limit"}, {"retry_after_s", 30}}}}}},
                  {"--api-key", kKey});
  TempDir dir;
  const std::string config =
      dir.write("config.toml", three_providers(mock) +
                                   "[routes.smart]\ntargets = [\"az/prod-chat\", \"oa/gpt-4o\", "
                                   "\"an/claude-haiku-4-5\"]\n");
  const RunResult r = run_detour(
      config, {"--state", "memory", "ask", "--json", "--retries", "0", "-m", "smart", "fail over"},
      key_env());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  json j = json_out(r);
  CHECK(j["ok"] == true);
  CHECK(j["content"] == "mock reply to: fail over");
  CHECK(j["provider"] == "an");
  CHECK(j["model"] == "claude-haiku-4-5");
  CHECK(j["route"] == "smart");
  CHECK(attempt_targets(j) ==
        std::vector<std::string>{"az/prod-chat", "oa/gpt-4o", "an/claude-haiku-4-5"});
  CHECK(j["attempts"][0]["status"] == 503);
  CHECK(j["attempts"][0]["error"] == "overloaded");
  CHECK(j["attempts"][1]["status"] == 429);
  CHECK(j["attempts"][1]["error"] == "rate_limited");
  CHECK(j["attempts"][2]["status"] == 200);
  json all = received(mock);
  REQUIRE(all.size() == 3);
  CHECK(all[0]["path"] == chat_path("prod-chat"));
  CHECK(all[0]["auth"] == "api-key");
  CHECK(all[1]["path"] == "/v1/chat/completions");
  CHECK(all[1]["auth"] == "bearer");
  CHECK(all[2]["path"] == "/v1/messages");
  CHECK(all[2]["auth"] == "x-api-key");

  // With retries, the overloaded deployment is retried (backoff) before the call moves on; a
  // deployment limited with a long hint is left at once for OpenAI, which answers.
  mock.set_scenario({{"models",
                      {{"prod-chat", {{"fault", "rate_limit"}, {"retry_after_s", 30}}},
                       {"gpt-4o", json::object()}}}});
  mock.reset_stats();
  const RunResult second = run_detour(
      config, {"--state", "memory", "ask", "--json", "-m", "smart", "second"}, key_env());
  INFO(second.out << second.err);
  CHECK(second.exit_code == 0);
  json k = json_out(second);
  CHECK(k["content"] == "mock reply to: second");
  CHECK(k["provider"] == "oa");
  CHECK(attempt_targets(k) == std::vector<std::string>{"az/prod-chat", "oa/gpt-4o"});
}
