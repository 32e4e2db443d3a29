// Per-provider headers, headers_env and query parameters end to end (README, "Providers"): the
// real detour binary against detour-mock, which records each request's headers and query
// (tests/mock/README.md, "Stats": `headers`, `query`). Also the OpenAI SDKs' OPENAI_ORG_ID /
// OPENAI_PROJECT_ID variables, the config error of an unset headers_env variable, and that a
// header value taken from the environment is a secret: never in output at any -v (-vvv shows it
// as [redacted]), in --json, in health or limits output, or in the state file.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "forward_proxy.hpp"
#include "harness.hpp"
#include "provider_test_util.hpp"

using namespace detour::testing;
using namespace detour::testing::providers;
using nlohmann::json;

namespace {

const std::string kKey = "sk-headers-KEY-5c1e7a90d2b4";
const std::string kGatewayKey = "gw-SECRET-header-8f3d21c7b6a94e05";
const std::string kTraceToken = "trace-SECRET-env-41b7e9a2d03c";

std::string gateway_provider(const std::string& name, const std::string& protocol,
                             const std::string& base_url) {
  return "[providers." + name + "]\nprotocol = \"" + protocol + "\"\nbase_url = \"" + base_url +
         "\"\napi_key_env = \"TEST_KEY\"\n"
         "headers = { \"x-team\" = \"search\", \"X-Cost-Center\" = \"cc 42/7\" }\n"
         "headers_env = { \"x-gateway-key\" = \"GATEWAY_KEY\", \"x-trace-token\" = "
         "\"TRACE_TOKEN\" }\n"
         "query = { \"tag\" = \"nightly\", \"team id\" = \"a&b=c\" }\n\n";
}

std::map<std::string, std::string> gateway_env() {
  return {{"TEST_KEY", kKey}, {"GATEWAY_KEY", kGatewayKey}, {"TRACE_TOKEN", kTraceToken}};
}

// The extras every request of a gateway provider carries, whatever its protocol or endpoint.
void check_extras(const json& request) {
  INFO(request.dump());
  CHECK(field(request, "headers", "x-team") == "search");
  CHECK(field(request, "headers", "x-cost-center") == "cc 42/7");
  CHECK(field(request, "headers", "x-gateway-key") == kGatewayKey);
  CHECK(field(request, "headers", "x-trace-token") == kTraceToken);
  // Percent-encoded on the wire; the mock records them decoded.
  CHECK(field(request, "query", "tag") == "nightly");
  CHECK(field(request, "query", "team id") == "a&b=c");
}

}  // namespace

TEST_CASE("provider headers: headers, headers_env and query reach every request of the provider",
          "[providers][headers]") {
  MockServer mock;
  TempDir dir;
  const std::string config =
      dir.write("config.toml", gateway_provider("gw", "openai", mock.url() + "/v1") +
                                   gateway_provider("gwa", "anthropic", mock.url()) +
                                   "[providers.plain]\nprotocol = \"openai\"\nbase_url = \"" +
                                   mock.url() + "/v1\"\napi_key_env = \"TEST_KEY\"\n");

  // Chat on both protocols, twice on one: every request, not only the first.
  for (const std::string target : {"gw/mock-1", "gw/mock-2", "gwa/claude-haiku-4-5"}) {
    const RunResult r =
        run_detour(config, {"--state", "memory", "ask", "-m", target, "hi"}, gateway_env());
    INFO(target << "\n" << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "mock reply to: hi\n");
  }
  // A batch of two lines (one process, requests in flight together) and a streamed ask.
  const std::string input = dir.write("in.jsonl",
                                      "{\"id\":\"a\",\"prompt\":\"one\"}\n"
                                      "{\"id\":\"b\",\"prompt\":\"two\"}\n");
  const RunResult batch = run_detour(
      config, {"--state", "memory", "batch", "-m", "gw/mock-1", "--progress", "none", input},
      gateway_env());
  INFO(batch.err);
  CHECK(batch.exit_code == 0);
  const RunResult stream =
      run_detour(config, {"--state", "memory", "ask", "--stream", "-m", "gw/mock-1", "streamed"},
                 gateway_env());
  CHECK(stream.exit_code == 0);
  CHECK(stream.out == "mock reply to: streamed\n");

  // Model listings (detour health's default probe) carry them too.
  const RunResult health = run_detour(
      config, {"--state", "memory", "health", "gw", "gwa", "--format", "json"}, gateway_env());
  INFO(health.out << health.err);
  CHECK(health.exit_code == 0);

  // A provider without extras sends none of them.
  const RunResult plain = run_detour(
      config, {"--state", "memory", "ask", "-m", "plain/mock-1", "plain"}, gateway_env());
  CHECK(plain.exit_code == 0);

  json all = received(mock);
  int chats = 0, listings = 0, plains = 0;
  for (const json& request : all) {
    if (request["prompt"] == "plain") {
      ++plains;
      CHECK(field(request, "headers", "x-team").is_null());
      CHECK(field(request, "headers", "x-gateway-key").is_null());
      CHECK(request["query"] == json::object());
      continue;
    }
    check_extras(request);
    CHECK(request["status"] == 200);  // the key and the protocol's own headers went along
    if (request["method"] == "GET") {
      ++listings;
    } else {
      ++chats;
    }
  }
  CHECK(chats == 6);
  CHECK(listings == 2);
  CHECK(plains == 1);
}

TEST_CASE("provider headers: a configured header replaces the protocol's, whatever its case",
          "[providers][headers]") {
  // The gateway wants its own bearer token in Authorization, not the provider key. Were both
  // sent, the mock would see them joined ("Bearer a, Bearer b") and refuse the request.
  const std::string gateway_token = "gateway-token-7d1c9e3b5a";
  MockServer mock(json::object(), {"--api-key", gateway_token});
  TempDir dir;
  const std::string config = dir.write(
      "config.toml", "[providers.gw]\nprotocol = \"openai\"\nbase_url = \"" + mock.url() +
                         "/v1\"\napi_key_env = \"TEST_KEY\"\n"
                         "headers = { \"AUTHORIZATION\" = \"Bearer " +
                         gateway_token +
                         "\", \"Content-Type\" = \"application/json; charset=utf-8\" }\n\n" +
                         "[providers.gwenv]\nprotocol = \"openai\"\nbase_url = \"" + mock.url() +
                         "/v1\"\napi_key_env = \"TEST_KEY\"\n"
                         "headers_env = { \"authorization\" = \"GATEWAY_AUTH\" }\n\n"
                         "[providers.an]\nprotocol = \"anthropic\"\nbase_url = \"" +
                         mock.url() +
                         "\"\napi_key_env = \"GATEWAY_TOKEN\"\n"
                         "headers = { \"Anthropic-Version\" = \"2023-06-01\" }\n");
  const std::map<std::string, std::string> env = {{"TEST_KEY", "sk-wrong-provider-key"},
                                                  {"GATEWAY_AUTH", "Bearer " + gateway_token},
                                                  {"GATEWAY_TOKEN", gateway_token}};
  for (const std::string target : {"gw/mock-1", "gwenv/mock-1", "an/claude-haiku-4-5"}) {
    const RunResult r = run_detour(config, {"--state", "memory", "ask", "-m", target, target}, env);
    INFO(target << "\n" << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "mock reply to: " + target + "\n");
  }
  json all = received(mock);
  REQUIRE(all.size() == 3);
  for (const json& request : all)
    CHECK(request["status"] == 200);
  // One value each, exactly as configured: not the protocol's joined with it.
  CHECK(field(all[0], "headers", "content-type") == "application/json; charset=utf-8");
  CHECK(all[0]["auth"] == "bearer");
  CHECK(field(all[1], "headers", "content-type") == "application/json");
  CHECK(field(all[2], "headers", "anthropic-version") == "2023-06-01");
}

TEST_CASE("provider headers: OPENAI_ORG_ID and OPENAI_PROJECT_ID go to OpenAI only",
          "[providers][headers]") {
  MockServer mock;
  TempDir dir;
  // Zero-config `openai` (OPENAI_BASE_URL moves it to the mock), a provider of another name on
  // the same URL, and an Anthropic provider: only the first is OpenAI.
  const std::string config = dir.write(
      "config.toml", "[providers.local]\nprotocol = \"openai\"\nbase_url = \"" + mock.url() +
                         "/v1\"\n\n[providers.an]\nprotocol = \"anthropic\"\n"
                         "base_url = \"" +
                         mock.url() + "\"\napi_key_env = \"OPENAI_API_KEY\"\n");
  const std::map<std::string, std::string> env = {{"OPENAI_API_KEY", kKey},
                                                  {"OPENAI_BASE_URL", mock.url() + "/v1"},
                                                  {"OPENAI_ORG_ID", "org-detour4test42"},
                                                  {"OPENAI_PROJECT_ID", "proj_detour4test77"}};
  for (const std::string target : {"openai/gpt-4o-mini", "local/llama3", "an/claude-haiku-4-5"}) {
    const RunResult r = run_detour(config, {"--state", "memory", "ask", "-m", target, target}, env);
    INFO(target << "\n" << r.err);
    CHECK(r.exit_code == 0);
  }
  // Zero-config with no file at all.
  const RunResult zero =
      run_detour("", {"--state", "memory", "ask", "-m", "openai/gpt-4o-mini", "zero"}, env);
  CHECK(zero.exit_code == 0);

  json all = received(mock);
  REQUIRE(all.size() == 4);
  for (int i : {0, 3}) {
    INFO(all[i].dump());
    CHECK(field(all[i], "headers", "openai-organization") == "org-detour4test42");
    CHECK(field(all[i], "headers", "openai-project") == "proj_detour4test77");
  }
  for (int i : {1, 2}) {
    INFO(all[i].dump());
    CHECK(field(all[i], "headers", "openai-organization").is_null());
    CHECK(field(all[i], "headers", "openai-project").is_null());
  }
}

TEST_CASE("provider headers: OPENAI_ORG_ID goes to a provider of any name at api.openai.com",
          "[providers][headers]") {
  // The base URLs name real hosts; the proxy sends every request to the mock instead, so
  // nothing leaves the machine (forward_proxy.hpp, send_everything_to).
  MockServer mock;
  detour::testing::network::ForwardProxy proxy;
  proxy.send_everything_to(mock.port());
  TempDir dir;
  const std::string config =
      dir.write("config.toml",
                "[providers.corp]\nprotocol = \"openai\"\nbase_url = \"http://API.OpenAI.com/v1\"\n"
                "api_key_env = \"TEST_KEY\"\n\n"
                "[providers.elsewhere]\nprotocol = \"openai\"\nbase_url = "
                "\"http://api.openai.com.example/v1\"\n"
                "api_key_env = \"TEST_KEY\"\n");
  for (const std::string target : {"corp/gpt-4o", "elsewhere/gpt-4o"}) {
    const RunResult r = run_detour(config, {"--state", "memory", "ask", "-m", target, target},
                                   {{"TEST_KEY", kKey},
                                    {"http_proxy", proxy.url()},
                                    {"OPENAI_ORG_ID", "org-corp"},
                                    {"OPENAI_PROJECT_ID", "proj_corp"}});
    INFO(target << "\n" << r.err);
    CHECK(r.exit_code == 0);
  }
  CHECK(proxy.requests().size() == 2);
  json all = received(mock);
  REQUIRE(all.size() == 2);
  CHECK(field(all[0], "headers", "host") == "API.OpenAI.com");
  CHECK(field(all[0], "headers", "openai-organization") == "org-corp");
  CHECK(field(all[0], "headers", "openai-project") == "proj_corp");
  CHECK(field(all[1], "headers", "openai-organization").is_null());
  CHECK(field(all[1], "headers", "openai-project").is_null());
}

TEST_CASE("provider headers: the file's OpenAI-Organization wins over OPENAI_ORG_ID",
          "[providers][headers]") {
  MockServer mock;
  TempDir dir;
  const std::string config = dir.write(
      "config.toml", "[providers.openai]\nheaders = { \"openai-organization\" = \"org-file\" }\n");
  const RunResult r = run_detour(config, {"--state", "memory", "ask", "-m", "openai/gpt-4o", "hi"},
                                 {{"OPENAI_API_KEY", kKey},
                                  {"OPENAI_BASE_URL", mock.url() + "/v1"},
                                  {"OPENAI_ORG_ID", "org-env"}});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  json all = received(mock);
  REQUIRE(all.size() == 1);
  CHECK(field(all[0], "headers", "openai-organization") == "org-file");
}

TEST_CASE("provider headers: an unset headers_env variable is a config error naming it",
          "[providers][headers]") {
  MockServer mock;
  TempDir dir;
  const std::string config =
      dir.write("config.toml", gateway_provider("gw", "openai", mock.url() + "/v1") +
                                   "[providers.plain]\nprotocol = \"openai\"\nbase_url = \"" +
                                   mock.url() + "/v1\"\n");
  std::map<std::string, std::string> env = gateway_env();
  env.erase("GATEWAY_KEY");
  for (const auto& args :
       {std::vector<std::string>{"ask", "-m", "gw/mock-1", "hi"},
        std::vector<std::string>{"ask", "--json", "-m", "gw/mock-1,plain/mock-1", "hi"}}) {
    const RunResult r = run_detour(config, args, env);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("gw") != std::string::npos);
    CHECK(r.err.find("x-gateway-key") != std::string::npos);
    CHECK(r.err.find("GATEWAY_KEY") != std::string::npos);
    // The variable that is set is no business of this error, and its value never is.
    CHECK(leak_in(r.out + r.err, {kTraceToken}) == "");
  }
  // Nothing was sent; a provider that does not need the variable still works.
  CHECK(received(mock).empty());
  const RunResult other = run_detour(config, {"ask", "-m", "plain/mock-1", "hi"}, env);
  CHECK(other.exit_code == 0);
  // A bad table is caught when the file is read: a value that is not a variable name.
  const std::string bad = dir.write(
      "bad.toml", "[providers.gw]\nprotocol = \"openai\"\nbase_url = \"" + mock.url() +
                      "/v1\"\nheaders_env = { \"x-gateway-key\" = \"gw-literal value\" }\n");
  const RunResult r = run_detour(bad, {"ask", "-m", "gw/mock-1", "hi"}, env);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("providers.gw.headers_env") != std::string::npos);
}

// A headers_env value with a line break (a variable read from a file with its newline, or an
// attempt at header injection) is a config error, as the same value written into the file is:
// exit 3, naming the provider, header and variable, and nothing is sent.
TEST_CASE("provider headers: a headers_env value with a line break is a config error",
          "[providers][headers]") {
  MockServer mock;
  TempDir dir;
  const std::string config =
      dir.write("config.toml", gateway_provider("gw", "openai", mock.url() + "/v1"));
  std::map<std::string, std::string> env = gateway_env();
  env["GATEWAY_KEY"] = kGatewayKey + "\nX-Injected: yes";
  const RunResult r =
      run_detour(config, {"--state", "memory", "ask", "--json", "-m", "gw/mock-1", "hi"}, env);
  INFO(r.out << r.err);
  CHECK(received(mock).empty());
  CHECK(leak_in(r.out + r.err, {kGatewayKey}) == "");
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("GATEWAY_KEY") != std::string::npos);
  CHECK(json_out(r)["attempts"].size() <= 1);
}

TEST_CASE("provider headers: values from the environment never show, at -vvv, in JSON or reports",
          "[providers][headers][secrets]") {
  // The default model answers; `broken` fails with a 500 and `denied` with a 401, so error
  // paths are printed too. The mock requires the key: a 401 is only ever the fault's.
  MockServer mock({{"models",
                    {{"broken", {{"fault", "server_error"}}},
                     {"denied", {{"fault", "auth"}}},
                     {"limited", {{"fault", "rate_limit"}, {"retry_after_s", 30}}}}}},
                  {"--api-key", kKey});
  TempDir dir;
  TempDir home;
  const std::string config = dir.write(
      "config.toml", gateway_provider("gw", "openai", mock.url() + "/v1") +
                         "[routes.all]\ntargets = [\"gw/broken\", \"gw/denied\", \"gw/limited\", "
                         "\"gw/mock-1\"]\n");
  const std::vector<std::string> secrets = {kGatewayKey, kTraceToken};
  std::vector<std::pair<std::string, RunResult>> runs;
  auto go = [&](const std::string& what, const std::vector<std::string>& args) {
    runs.emplace_back(what, run_detour(config, args, gateway_env(), home.path()));
    return runs.back().second;
  };

  for (const std::string verbose : {"-vv", "-vvv"}) {
    for (const std::string format : {"text", "json"}) {
      const RunResult ask =
          go("ask " + verbose + " " + format,
             {verbose, "--log-format", format, "ask", "--retries", "0", "-m", "all", "hi"});
      INFO(ask.err);
      CHECK(ask.exit_code == 0);
      CHECK(ask.out == "mock reply to: hi\n");
      // -vvv shows the request headers, these two as [redacted] (README, "Providers").
      if (verbose == "-vvv" && format == "text") {
        CHECK(ask.err.find("> x-team: search") != std::string::npos);
        CHECK(ask.err.find("> x-gateway-key: [redacted]") != std::string::npos);
        CHECK(ask.err.find("> x-trace-token: [redacted]") != std::string::npos);
      }
    }
  }
  const RunResult as_json =
      go("ask --json", {"-vvv", "ask", "--json", "--retries", "0", "-m", "all", "hi"});
  json j = json_out(as_json);
  CHECK(j["ok"] == true);
  CHECK(j["attempts"].size() == 4);
  const RunResult failed =
      go("ask failing", {"-vvv", "--state", "memory", "ask", "--json", "-m", "gw/denied", "hi"});
  CHECK(failed.exit_code == 5);
  for (const std::string format : {"json", "table", "prometheus", "junit"}) {
    go("health models " + format, {"-vvv", "health", "--format", format, "--fail-on", "none"});
    go("health chat " + format,
       {"-vvv", "health", "--probe", "chat", "--format", format, "--fail-on", "none"});
  }
  go("limits", {"limits"});
  const RunResult limits_json = go("limits --json", {"limits", "--json"});
  CHECK(limits_json.exit_code == 0);

  // The requests really carried the values: the search below is worth something.
  int carried = 0;
  for (json& request : received(mock)) {
    if (field(request, "headers", "x-gateway-key") == kGatewayKey) ++carried;
  }
  CHECK(carried >= 10);

  for (const auto& [what, r] : runs) {
    INFO(what);
    CHECK(leak_in(r.out, secrets) == "");
    CHECK(leak_in(r.err, secrets) == "");
  }
  INFO("state files under HOME");
  CHECK(leak_in(all_files_under(home.path()), secrets) == "");
}
