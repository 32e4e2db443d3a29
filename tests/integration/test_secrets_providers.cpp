// The secrets guarantee (README, "Exit codes": secrets never appear in output, logs, error
// messages or the state file; README "Providers", "Secrets") for the secrets the provider features
// bring: header values taken from the environment (headers_env, OPENAI_ORG_ID and
// OPENAI_PROJECT_ID) and what an api_key_cmd prints. Every subcommand at
// -vvv, with text and JSON logs, meets every class of failure detour-mock produces and a provider
// that echoes the credential it was sent back in its errors (secrets_echo_server.hpp); then
// stdout, stderr and every file under HOME (the state store with its -wal and -shm files, batch
// output) are searched for the secrets, whole or cut short. test_secrets.cpp does the same for
// API keys from api_key_env.
//
// Each search is only worth something if the secret really was sent and really came back: the
// mock requires the command's key (a reply other than 401 proves it arrived) and records the
// x-gateway-key header; the echo server records what it was sent; "[redacted]" must show up where
// echoed text was reported.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "harness.hpp"
#include "provider_test_util.hpp"
#include "secret_faults.hpp"
#include "secrets_echo_server.hpp"

using namespace detour::testing;
using namespace detour::testing::providers;
using detour::testing::secrets::EchoServer;
using detour::testing::secrets::Fault;
using detour::testing::secrets::kEchoChat;
using detour::testing::secrets::kEchoStopping;
using detour::testing::secrets::kEchoStream;
using detour::testing::secrets::Proto;
using nlohmann::json;

namespace {

// The key api_key_cmd prints, and a second line of its output (pass(1) prints metadata there).
const std::string kCmdKey = "cmdkey-SECRET-5e0a9c3f71b2d468";
const std::string kCmdExtra = "cmdline2-SECRET-8d4f6b1e03a7";
// headers_env values: a header whose name says nothing of secrets, one whose name does, and a
// gateway's whole Authorization header.
const std::string kGatewayKey = "gwkey-SECRET-hdr-2c7e91d5a4f0";
const std::string kApiToken = "apitok-SECRET-hdr-6b3d08f2c95e";
const std::string kGatewayToken = "gwtok-SECRET-auth-9a1f4c7e2d60";

// OPENAI_ORG_ID and OPENAI_PROJECT_ID, sent to the provider `openai` (README, "Providers":
// secrets too).
const std::string kOrgId = "org-SECRET-4e8b2d6f0a13c7";
const std::string kProjectId = "proj_SECRET-7c1a5e9d3b28f4";

const std::vector<std::string> kAll = {kCmdKey,       kCmdExtra, kGatewayKey, kApiToken,
                                       kGatewayToken, kOrgId,    kProjectId};

// Every failure detour-mock can produce (secret_faults.hpp), the provider echoing the secrets
// in an unknown finish reason among them.
std::vector<Fault> faults() {
  return secrets::faults(kCmdKey + " " + kGatewayKey + " " + kApiToken);
}

json scenario() {
  json models = json::object();
  for (const Fault& f : faults())
    models[f.model] = f.behaviour;
  // The same for the provider `openai`, which sends the command's key and the organisation and
  // project (each provider's own secrets are what it can echo).
  models["echo-org-in-finish"] = {{"finish_reason", kCmdKey + " " + kOrgId + " " + kProjectId}};
  models["sse-cut"] = {{"fault", "sse_cut"}};
  models["sse-error"] = {{"fault", "sse_error"}};
  return {{"models", models}};
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "\"" : ", \"") + item + "\"";
  return "[" + out + "]";
}

struct World {
  MockServer mock;  // requires the command's key
  EchoServer echo;
  TempDir dir;
  std::string config;
  std::string counter;

  World() : mock(scenario(), {"--api-key", kCmdKey}) {
    counter = dir.file("count");
    const std::string script = write_script(
        dir, "key.sh",
        "echo run >> '" + counter + "'\necho '" + kCmdKey + "'\necho '" + kCmdExtra + "'\n");
    config = dir.write(
        "config.toml",
        // The mock: the command's key, and two header values from the environment.
        "[providers.gw]\nprotocol = \"openai\"\nbase_url = \"" + mock.url() +
            "/v1\"\napi_key_cmd = \"" + script +
            "\"\nheaders_env = { \"x-gateway-key\" = \"GATEWAY_KEY\", \"x-api-token\" = "
            "\"API_TOKEN\" }\n\n"
            // The provider `openai` (on the mock), which carries OPENAI_ORG_ID and
            // OPENAI_PROJECT_ID.
            "[providers.openai]\nbase_url = \"" +
            mock.url() + "/v1\"\napi_key_cmd = \"" + script +
            "\"\n\n"
            // Echoes the command's key (Authorization: Bearer KEY) back in its errors.
            "[providers.echo-cmd]\nprotocol = \"openai\"\nbase_url = \"" +
            echo.url("/v1") + "\"\napi_key_cmd = \"" + script +
            "\"\n\n"
            // Echoes the token of an Authorization header taken whole from the environment.
            "[providers.echo-hdr]\nprotocol = \"openai\"\nbase_url = \"" +
            echo.url("/v1") +
            "\"\nheaders_env = { \"Authorization\" = \"GATEWAY_AUTH\" }\n\n"
            "[routes.gauntlet]\non_content_filter = \"next\"\ntargets = " +
            join(moving_targets({"echo-cmd"})) +
            "\n\n[routes.hdr]\ntargets = " + join(moving_targets({"echo-hdr"}, false)) + "\n");
  }

  // Targets whose failure lets a call move on: the mock's faults and the echo models of the
  // echo providers named.
  static std::vector<std::string> moving_targets(const std::vector<std::string>& echoes,
                                                 bool with_mock = true) {
    std::vector<std::string> out;
    if (with_mock) {
      for (const Fault& f : faults())
        if (!f.stops) out.push_back(std::string("gw/") + f.model);
      for (const char* m : {"auth", "server-error", "echo-org-in-finish"})
        out.push_back(std::string("openai/") + m);
    }
    for (const auto& p : echoes)
      for (const char* m : kEchoChat)
        if (std::find(std::begin(kEchoStopping), std::end(kEchoStopping), std::string(m)) ==
            std::end(kEchoStopping))
          out.push_back(p + "/" + m);
    return out;
  }

  static std::vector<std::string> stopping_targets(const std::string& echo) {
    std::vector<std::string> out;
    if (echo != "echo-hdr")
      for (const Fault& f : faults())
        if (f.stops) out.push_back(std::string("gw/") + f.model);
    for (const char* m : kEchoStopping)
      out.push_back(echo + "/" + m);
    return out;
  }

  static std::string stream_chain(const std::string& echo) {
    std::string chain = echo == "echo-hdr" ? "" : "gw/sse-cut,gw/sse-error";
    for (const char* m : kEchoStream)
      chain += (chain.empty() ? "" : ",") + echo + "/" + m;
    return chain;
  }

  RunResult detour(const std::string& home, const std::string& format,
                   const std::vector<std::string>& args) {
    std::vector<std::string> all = {"-vvv", "--log-format", format};
    all.insert(all.end(), args.begin(), args.end());
    return run_detour(config, all,
                      {{"GATEWAY_KEY", kGatewayKey},
                       {"API_TOKEN", kApiToken},
                       {"GATEWAY_AUTH", "Bearer " + kGatewayToken},
                       {"OPENAI_ORG_ID", kOrgId},
                       {"OPENAI_PROJECT_ID", kProjectId}},
                      home);
  }
};

void check_clean(const std::string& where, const std::string& text) {
  INFO(where);
  CHECK(leak_in(text, kAll) == "");
}

// Runs every subcommand through `echo` (echo-cmd or echo-hdr) and the mock; returns the runs.
std::vector<std::pair<std::string, RunResult>> run_everything(World& w, const std::string& home,
                                                              const std::string& format,
                                                              const std::string& echo) {
  std::vector<std::pair<std::string, RunResult>> runs;
  auto go = [&](const std::string& what, const std::vector<std::string>& args) {
    runs.emplace_back(what + " (--log-format " + format + ", " + echo + ")",
                      w.detour(home, format, args));
    return runs.back().second;
  };
  const std::string route = echo == "echo-cmd" ? "gauntlet" : "hdr";
  std::vector<std::string> gauntlet = {"ask",       "-m",    route,         "--retries", "0",
                                       "--timeout", "400ms", "--no-stream", "tell me"};
  if (format == "json") gauntlet.push_back("--json");
  const RunResult& g = go("gauntlet", gauntlet);
  {
    INFO(g.err);
    CHECK(g.exit_code == 1);
  }
  for (const auto& target : World::stopping_targets(echo)) {
    const RunResult& r =
        go("ask " + target, {"ask", "--json", "-m", target, "--retries", "0", "x"});
    INFO(target << "\n" << r.err);
    CHECK((r.exit_code == 1 || r.exit_code == 4));
  }
  go("stream", {"ask", "-m", World::stream_chain(echo), "--retries", "0", "--stream", "stream"});
  const std::string input = w.dir.write("in.jsonl",
                                        "{\"id\":\"1\",\"prompt\":\"a\",\"model\":\"gw/mock-1\"}\n"
                                        "{\"id\":\"2\",\"prompt\":\"b\",\"model\":\"" +
                                            echo + "/echo-auth\"}\n");
  go("batch", {"batch", "--progress", "none", "-o", home + "/out.jsonl", input});
  for (const std::string f : {"json", "table", "prometheus", "junit"}) {
    go("health models " + f, {"health", "--format", f, "--fail-on", "none", "gw", "openai", echo});
    go("health chat " + f,
       {"health", "--probe", "chat", "--format", f, "--fail-on", "none", "gw/mock-1", "gw/auth",
        "openai/echo-org-in-finish", echo + "/echo-auth", echo + "/echo-server"});
  }
  go("limits", {"limits"});
  go("limits --json", {"limits", "--json"});
  return runs;
}

}  // namespace

TEST_CASE("secrets providers: the leak search finds each secret, whole or cut",
          "[providers][secrets]") {
  for (const std::string& s : kAll) {
    CHECK(leak_in("before " + s + " after", kAll) != "");
    CHECK(leak_in("cut: " + s.substr(0, kPiece), kAll) != "");
    CHECK(leak_in("cut: " + s.substr(s.size() - kPiece), kAll) != "");
  }
  CHECK(leak_in("GATEWAY_KEY and [redacted]", kAll) == "");
}

TEST_CASE("secrets providers: a key command's output and header values never show or stay",
          "[providers][secrets]") {
  World w;
  for (const std::string format : {"text", "json"}) {
    TempDir home;
    const auto runs = run_everything(w, home.path(), format, "echo-cmd");
    std::string err;
    for (const auto& [what, r] : runs) {
      check_clean(what + ": stdout", r.out);
      check_clean(what + ": stderr", r.err);
      err += r.err + r.out;
    }
    // The echoed key was reported, redacted.
    CHECK(err.find("[redacted]") != std::string::npos);
    const std::string files = all_files_under(home.path());
    CHECK(files.find("[redacted]") != std::string::npos);
    check_clean("files under HOME (--log-format " + format + ")", files);
  }
  // The secrets went out: the mock saw the header values and accepted the command's key; the
  // echo server was sent the command's key and quoted it back.
  int carried = 0, accepted = 0, org = 0;
  for (json& r : received(w.mock)) {
    if (field(r, "headers", "x-gateway-key") == kGatewayKey) ++carried;
    if (field(r, "headers", "openai-organization") == kOrgId &&
        field(r, "headers", "openai-project") == kProjectId)
      ++org;
    if (r["status"] != 401) ++accepted;
    if (field(r, "headers", "openai-organization").is_null())
      CHECK(field(r, "headers", "x-api-token") == kApiToken);
  }
  CHECK(org >= 6);
  CHECK(carried > 20);
  CHECK(accepted > 20);
  CHECK(w.echo.keys_seen(Proto::openai) == std::set<std::string>{kCmdKey});
  CHECK(w.echo.echoes(Proto::openai) > 10);
  CHECK(lines_in(w.counter) > 0);
}

// An Authorization header taken whole from the environment ("Bearer TOKEN"): a provider that
// quotes the TOKEN alone in an error ("Incorrect API key provided: TOKEN", as OpenAI does) must
// not get it printed in the attempt lines, --json, health or limits, nor stored in the state
// file. (Until 9d10ed6 only the whole value "Bearer TOKEN" was redacted.)
TEST_CASE("secrets providers: a bearer token in a header from the environment is redacted",
          "[providers][secrets]") {
  World w;
  TempDir home;
  const auto runs = run_everything(w, home.path(), "json", "echo-hdr");
  for (const auto& [what, r] : runs) {
    check_clean(what + ": stdout", r.out);
    check_clean(what + ": stderr", r.err);
  }
  check_clean("files under HOME", all_files_under(home.path()));
  CHECK(w.echo.keys_seen(Proto::openai) == std::set<std::string>{kGatewayToken});
  CHECK(w.echo.echoes(Proto::openai) > 10);
}
