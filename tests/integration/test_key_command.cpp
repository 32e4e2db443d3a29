// api_key_cmd end to end: a provider's key is the first line a program prints (a password
// store, `gcloud auth print-access-token`, `az account get-access-token`), run without a shell
// when the provider is first used, cached for the process or for api_key_ttl, run again after a
// 401 to the cached key. The commands here are small shell scripts in a TempDir that count their
// runs in a file. detour-mock requires a key (tests/mock/README.md, `--api-key`), so a 200 proves
// the command's key arrived as the bearer token.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "harness.hpp"
#include "provider_test_util.hpp"
#include "transport_test_server.hpp"

using namespace detour::testing;
using namespace detour::testing::providers;
using nlohmann::json;

namespace {

const std::string kToken = "tok-CMD-key-2f8a6c4e1b9d7053";
// What a failing command prints: it must never be shown, whatever detour reports.
const std::string kFakeSecret = "fake-SECRET-cmd-output-6a2e9d41c7";
const std::string kSecretArg = "arg-SECRET-vault-path-93b1d5f7";

// A command that appends to `counter` and prints `output` (its first line is the key), saving
// its arguments one per line in `counter`.args.
std::string key_script(const TempDir& dir, const std::string& name, const std::string& counter,
                       const std::string& output) {
  return write_script(dir, name,
                      "echo run >> '" + counter + "'\nprintf '%s\\n' \"$@\" > '" + counter +
                          ".args'\nprintf '" + output + "'\n");
}

std::string provider(const std::string& name, const std::string& base_url,
                     const std::string& command, const std::string& extra = "") {
  return "[providers." + name + "]\nprotocol = \"openai\"\nbase_url = \"" + base_url +
         "\"\napi_key_cmd = \"" + command + "\"\n" + extra + "\n";
}

std::string jsonl(int lines) {
  std::string out;
  for (int i = 1; i <= lines; ++i)
    out += "{\"id\":\"" + std::to_string(i) + "\",\"prompt\":\"line " + std::to_string(i) + "\"}\n";
  return out;
}

// An OpenAI-compatible server whose accepted token changes: `tok-1` until it has answered once,
// then only `tok-2` (a short-lived token that expired). Records the Authorization headers.
class RotatingTokenServer {
 public:
  RotatingTokenServer() {
    server_->Post("/v1/chat/completions", [this](const httplib::Request& req,
                                                 httplib::Response& res) {
      const std::string auth = req.get_header_value("Authorization");
      std::lock_guard lock(mutex_);
      seen_.push_back(auth);
      const std::string wanted = answered_ ? "Bearer tok-2" : "Bearer tok-1";
      if (auth != wanted) {
        res.status = 401;
        res.set_content(
            R"({"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})",
            "application/json");
        return;
      }
      answered_ = true;
      const json body = json::parse(req.body);
      const json reply = {
          {"id", "chatcmpl-rotating"},
          {"object", "chat.completion"},
          {"created", 0},
          {"model", body["model"]},
          {"choices",
           {{{"index", 0},
             {"message", {{"role", "assistant"}, {"content", "rotating reply"}}},
             {"finish_reason", "stop"}}}},
          {"usage", {{"prompt_tokens", 2}, {"completion_tokens", 2}, {"total_tokens", 4}}}};
      res.set_content(reply.dump(), "application/json");
    });
    server_.start();
  }
  std::string url() const { return server_.url("/v1"); }
  std::vector<std::string> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  transport::TestServer server_;
  std::mutex mutex_;
  std::vector<std::string> seen_;
  bool answered_ = false;
};

}  // namespace

TEST_CASE("key command: its first line is the bearer key, and it runs once per process",
          "[providers][key_cmd]") {
  MockServer mock(json::object(), {"--api-key", kToken});
  TempDir dir;
  const std::string counter = dir.file("count");
  // Blanks around the key and a second line (pass(1) prints metadata after the password).
  const std::string script =
      key_script(dir, "with space/key.sh", counter, "  " + kToken + "  \\nuser: someone\\n");
  // A quoted program path with a space, and quoted arguments: split as a shell would, but run
  // without one.
  const std::string config = dir.write(
      "config.toml",
      provider("kc", mock.url() + "/v1", "'" + script + "' 'two words' \\\"a|b\\\" plain"));

  const RunResult ask = run_detour(config, {"--state", "memory", "ask", "-m", "kc/mock-1", "hi"});
  INFO(ask.err);
  CHECK(ask.exit_code == 0);
  CHECK(ask.out == "mock reply to: hi\n");
  CHECK(lines_in(counter) == 1);
  CHECK(dir.read("count.args") == "two words\na|b\nplain\n");

  // Three lines in flight together in one process: one run of the command.
  const std::string input = dir.write("in.jsonl", jsonl(3));
  const RunResult batch = run_detour(config, {"--state", "memory", "batch", "-j", "3", "-m",
                                              "kc/mock-1", "--progress", "none", input});
  INFO(batch.err);
  CHECK(batch.exit_code == 0);
  const auto lines = batch_lines(batch.out);
  CHECK(lines.size() == 3);
  for (const auto& [id, line] : lines)
    CHECK(line["ok"] == true);
  CHECK(lines_in(counter) == 2);

  // health: one listing, one run.
  const RunResult health =
      run_detour(config, {"--state", "memory", "health", "--format", "json", "kc"});
  INFO(health.out << health.err);
  CHECK(health.exit_code == 0);
  CHECK(lines_in(counter) == 3);

  json all = received(mock);
  REQUIRE(all.size() == 5);
  for (json& r : all) {
    CHECK(r["auth"] == "bearer");
    CHECK(r["status"] == 200);  // the mock requires exactly kToken
  }
  CHECK(leak_in(ask.out + ask.err + batch.out + batch.err + health.out + health.err, {kToken}) ==
        "");
}

TEST_CASE("key command: not run for calls that do not use its provider", "[providers][key_cmd]") {
  MockServer mock;
  TempDir dir;
  const std::string counter = dir.file("count");
  const std::string script = key_script(dir, "key.sh", counter, kToken + "\\n");
  const std::string config =
      dir.write("config.toml", provider("kc", mock.url() + "/v1", script) +
                                   "[providers.plain]\nprotocol = \"openai\"\nbase_url = \"" +
                                   mock.url() + "/v1\"\n");
  const RunResult ask =
      run_detour(config, {"--state", "memory", "ask", "-m", "plain/mock-1", "hi"});
  CHECK(ask.exit_code == 0);
  const RunResult health = run_detour(config, {"--state", "memory", "health", "plain"});
  CHECK(health.exit_code == 0);
  const RunResult limits = run_detour(config, {"limits"});
  CHECK(limits.exit_code == 0);
  CHECK(lines_in(counter) == 0);
}

TEST_CASE("key command: api_key_ttl runs it again once the key is older", "[providers][key_cmd]") {
  // One line at a time, each answered after 700 ms: line 2 starts about 0.7 s after the key was
  // fetched (still good for 1 s), line 3 about 1.4 s after (expired). About 2 s in all.
  MockServer mock({{"default", {{"latency_ms", 700}}}}, {"--api-key", kToken});
  TempDir dir;
  const std::string counter = dir.file("count");
  const std::string script = key_script(dir, "key.sh", counter, kToken + "\\n");
  const std::string config =
      dir.write("config.toml", provider("kc", mock.url() + "/v1", script, "api_key_ttl = \"1s\""));
  const std::string input = dir.write("in.jsonl", jsonl(3));
  const RunResult batch = run_detour(config, {"--state", "memory", "batch", "-j", "1", "-m",
                                              "kc/mock-1", "--progress", "none", input});
  INFO(batch.out << batch.err);
  CHECK(batch.exit_code == 0);
  CHECK(batch_lines(batch.out).size() == 3);
  CHECK(lines_in(counter) == 2);
}

TEST_CASE("key command: a 401 to the cached key runs it again and retries the target once",
          "[providers][key_cmd]") {
  RotatingTokenServer server;
  TempDir dir;
  const std::string counter = dir.file("count");
  // Prints tok-1 on its first run, tok-2 after.
  const std::string script =
      write_script(dir, "rotate.sh",
                   "echo run >> '" + counter + "'\necho \"tok-$(wc -l < '" + counter + "')\"\n");
  const std::string config = dir.write("config.toml", provider("kc", server.url(), script));
  const std::string input = dir.write("in.jsonl", jsonl(3));
  const RunResult batch = run_detour(config, {"-v", "--state", "memory", "batch", "-j", "1", "-m",
                                              "kc/model", "--progress", "none", input});
  INFO(batch.out << batch.err);
  CHECK(batch.exit_code == 0);
  auto lines = batch_lines(batch.out);
  REQUIRE(lines.size() == 3);
  CHECK(lines["1"]["ok"] == true);
  CHECK(lines["1"]["attempts"] == 1);
  // Line 2 met the expired token: the 401, then the same target with the new one.
  CHECK(lines["2"]["ok"] == true);
  CHECK(lines["2"]["attempts"] == 2);
  CHECK(lines["2"]["content"] == "rotating reply");
  CHECK(lines["3"]["ok"] == true);
  CHECK(lines["3"]["attempts"] == 1);
  CHECK(lines_in(counter) == 2);
  CHECK(server.seen() ==
        std::vector<std::string>{"Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-2"});
  CHECK(batch.err.find("api_key_cmd") != std::string::npos);
}

TEST_CASE("key command: a key refused when fresh is auth at once, the command is not rerun",
          "[providers][key_cmd]") {
  MockServer mock(json::object(), {"--api-key", kToken});
  TempDir dir;
  const std::string counter = dir.file("count");
  const std::string script = key_script(dir, "key.sh", counter, "tok-wrong-0123456789\\n");
  const std::string config = dir.write("config.toml", provider("kc", mock.url() + "/v1", script));
  const RunResult r =
      run_detour(config, {"--state", "memory", "ask", "--json", "-m", "kc/mock-1", "hi"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 5);
  CHECK(json_out(r)["error"]["class"] == "auth");
  CHECK(lines_in(counter) == 1);
  CHECK(received(mock).size() == 1);
}

TEST_CASE("key command: a failing command fails the target as auth, naming provider and program",
          "[providers][key_cmd][secrets]") {
  MockServer mock;
  TempDir dir;
  struct Case {
    const char* name;
    std::string body;  // the script's body
    const char* why;   // in the message
  };
  const std::vector<Case> cases = {
      {"fails", "echo '" + kFakeSecret + "'\nexit 1\n", "exit status 1"},
      {"silent", "exit 0\n", "printed no key"},
      {"blank", "echo\necho '" + kFakeSecret + "'\n", "printed no key"},
  };
  for (const Case& c : cases) {
    const std::string script = write_script(dir, std::string(c.name) + ".sh", c.body);
    const std::string config =
        dir.write(std::string(c.name) + ".toml",
                  provider("vault", mock.url() + "/v1", script + " --path " + kSecretArg));
    for (const std::string format : {"text", "json"}) {
      const RunResult r = run_detour(config, {"-vvv", "--log-format", format, "--state", "memory",
                                              "ask", "--json", "-m", "vault/mock-1", "hi"});
      INFO(c.name << ", " << format << "\n" << r.out << r.err);
      CHECK(r.exit_code == 5);
      json j = json_out(r);
      CHECK(j["error"]["class"] == "auth");
      CHECK(j["error"]["status"].is_null());
      const std::string message = j["error"]["message"].is_string() ? j["error"]["message"] : "";
      CHECK(message.find("vault") != std::string::npos);
      CHECK(message.find("api_key_cmd") != std::string::npos);
      CHECK(message.find(script) != std::string::npos);
      CHECK(message.find(c.why) != std::string::npos);
      // Neither its output nor its arguments (a vault path may be one) are shown.
      CHECK(leak_in(r.out, {kFakeSecret, kSecretArg}) == "");
      CHECK(leak_in(r.err, {kFakeSecret, kSecretArg}) == "");
    }
  }
  // health reports the same, and shows nothing of the output either.
  {
    const std::string config = dir.file("fails.toml");
    const RunResult health = run_detour(
        config, {"--state", "memory", "health", "--probe", "chat", "--format", "json", "vault/m"});
    INFO(health.out << health.err);
    CHECK(health.exit_code == 1);
    json h = json_out(health);
    CHECK(h[0]["status"] == "auth");
    CHECK(h[0]["message"].get<std::string>().find("api_key_cmd") != std::string::npos);
    CHECK(leak_in(health.out + health.err, {kFakeSecret, kSecretArg}) == "");
  }
  // A program that does not exist.
  const std::string config =
      dir.write("missing.toml", provider("vault", mock.url() + "/v1", dir.file("no-such-program")));
  const RunResult missing =
      run_detour(config, {"--state", "memory", "ask", "--json", "-m", "vault/mock-1", "hi"});
  INFO(missing.out << missing.err);
  CHECK(missing.exit_code == 5);
  json j = json_out(missing);
  CHECK(j["error"]["class"] == "auth");
  CHECK(j["error"]["message"].get<std::string>().find("could not be run") != std::string::npos);
  // No key, no request.
  CHECK(received(mock).empty());
}

TEST_CASE("key command: the call moves on, and the target's circuit is not opened by it",
          "[providers][key_cmd]") {
  MockServer mock(json::object(), {"--api-key", kToken});
  TempDir dir;
  TempDir home;  // one state file for every run
  const std::string counter = dir.file("count");
  const std::string broken = write_script(dir, "broken.sh", "echo '" + kFakeSecret + "'\nexit 3\n");
  const std::string good = key_script(dir, "good.sh", counter, kToken + "\\n");
  const std::string config =
      dir.write("config.toml", provider("first", mock.url() + "/v1", dir.file("key.sh")) +
                                   provider("second", mock.url() + "/v1", good));
  // first's command fails (a copy of broken.sh under the configured name) ...
  dir.write("key.sh", dir.read("broken.sh"));
  ::chmod(dir.file("key.sh").c_str(), 0755);
  // Four calls in a row: an auth failure would open the circuit for an hour at once, and three
  // failures in a row would open it anyway.
  for (int i = 0; i < 4; ++i) {
    const RunResult r = run_detour(
        config, {"ask", "--json", "-m", "first/mock-1,second/mock-2", "call " + std::to_string(i)},
        {}, home.path());
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    json j = json_out(r);
    CHECK(j["content"] == "mock reply to: call " + std::to_string(i));
    CHECK(j["provider"] == "second");
    REQUIRE(j["attempts"].size() == 2);
    CHECK(j["attempts"][0]["provider"] == "first");
    CHECK(j["attempts"][0]["error"] == "auth");
    CHECK(j["attempts"][0]["status"].is_null());
    CHECK(leak_in(r.out + r.err, {kFakeSecret}) == "");
  }
  // ... then it is fixed: the very next call uses `first` (not skipped_open).
  dir.write("key.sh", dir.read("good.sh"));
  const RunResult fixed = run_detour(
      config, {"ask", "--json", "-m", "first/mock-1,second/mock-2", "fixed"}, {}, home.path());
  INFO(fixed.out << fixed.err);
  CHECK(fixed.exit_code == 0);
  json j = json_out(fixed);
  CHECK(j["provider"] == "first");
  CHECK(j["attempts"].size() == 1);
  // Only answered requests reached the mock: 4 to second, 1 to first.
  CHECK(received(mock).size() == 5);
  CHECK(leak_in(all_files_under(home.path()), {kFakeSecret}) == "");
}

TEST_CASE("key command: shell syntax and a second key source are config errors",
          "[providers][key_cmd]") {
  MockServer mock;
  TempDir dir;
  const std::string counter = dir.file("count");
  const std::string script = key_script(dir, "key.sh", counter, kToken + "\\n");
  const std::string url = mock.url() + "/v1";
  // What only a shell could do: refused, naming the key; the program never runs.
  for (const std::string tail : {"| tee x", "; rm x", "$HOME", "> out", "< in", "&", "`id`",
                                 "$(id)", "\\\"$HOME\\\"", "a && b", "*.key"}) {
    const std::string config = dir.write("c.toml", provider("kc", url, script + " " + tail));
    const RunResult r = run_detour(config, {"ask", "-m", "kc/mock-1", "hi"});
    INFO(tail << "\n" << r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("providers.kc.api_key_cmd") != std::string::npos);
    CHECK(r.err.find("shell") != std::string::npos);
  }
  CHECK(lines_in(counter) == 0);
  // Quoted, the same characters are plain arguments.
  const std::string quoted =
      dir.write("q.toml", provider("kc", url, script + " '| tee x' 'a;b' '$HOME'"));
  const RunResult ok = run_detour(quoted, {"--state", "memory", "ask", "-m", "kc/mock-1", "hi"});
  INFO(ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(dir.read("count.args") == "| tee x\na;b\n$HOME\n");

  struct Bad {
    std::string toml;
    const char* key;
  };
  const std::vector<Bad> bad = {
      {provider("kc", url, script, "api_key_env = \"SOME_KEY\""), "api_key_cmd"},
      {"[providers.kc]\nprotocol = \"openai\"\nbase_url = \"" + url +
           "\"\napi_key_env = \"SOME_KEY\"\napi_key_ttl = \"50m\"\n",
       "api_key_ttl"},
      {provider("kc", url, script, "api_key_ttl = \"soon\""), "api_key_ttl"},
      {provider("kc", url, "'" + script), "api_key_cmd"},  // a quote not closed
      {provider("kc", url, ""), "api_key_cmd"},
  };
  for (const Bad& b : bad) {
    const std::string config = dir.write("bad.toml", b.toml);
    const RunResult r =
        run_detour(config, {"ask", "-m", "kc/mock-1", "hi"}, {{"SOME_KEY", "sk-some-key-1234"}});
    INFO(b.toml << "\n" << r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find(std::string("providers.kc.") + b.key) != std::string::npos);
  }
  CHECK(received(mock).size() == 1);  // only the quoted call
}

// The command runs on a thread of its own (config/key_command.cpp) while the attempt that needs
// it waits on the loop: a batch line for another provider, which needs no command, is sent at
// once. `gcloud auth print-access-token` takes a second or two; a hung command must not stall
// every request and stream in flight for its 30 s timeout.
TEST_CASE("key command: a slow command does not hold up requests to other providers",
          "[providers][key_cmd]") {
  MockServer mock;
  TempDir dir;
  const std::string slow = write_script(dir, "slow.sh", "sleep 1.5\necho " + kToken + "\n");
  const std::string config =
      dir.write("config.toml", provider("slow", mock.url() + "/v1", slow) +
                                   "[providers.fast]\nprotocol = \"openai\"\nbase_url = \"" +
                                   mock.url() + "/v1\"\n");
  // The slow provider's line first, so that its command starts before the fast line is sent.
  const std::string input = dir.write("in.jsonl",
                                      "{\"id\":\"s\",\"prompt\":\"slow\",\"model\":\"slow/m\"}\n"
                                      "{\"id\":\"f\",\"prompt\":\"fast\",\"model\":\"fast/m\"}\n");
  const RunResult batch =
      run_detour(config, {"--state", "memory", "batch", "-j", "2", "--progress", "none", input});
  INFO(batch.out << batch.err);
  CHECK(batch.exit_code == 0);
  long long slow_at = -1, fast_at = -1;
  for (json& r : received(mock)) {
    if (r["prompt"] == "slow") slow_at = r["t_ms"].get<long long>();
    if (r["prompt"] == "fast") fast_at = r["t_ms"].get<long long>();
  }
  INFO("slow line sent at " << slow_at << " ms, fast line at " << fast_at << " ms");
  REQUIRE(slow_at >= 0);
  REQUIRE(fast_at >= 0);
  CHECK(slow_at - fast_at >= 1000);
}
