// `detour ask` end to end: the real binary against detour-mock over loopback HTTP.
#include <catch2/catch.hpp>
#include <csignal>

#include "harness.hpp"

using detour::testing::MockServer;
using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::TempDir;
using nlohmann::json;

namespace {

const char* kKey = "sk-test-SECRET-0123456789abcdef";

// A config with one provider per protocol, all on the same mock.
std::string config_for(const MockServer& mock) {
  return "[providers.oa]\nprotocol = \"openai\"\nbase_url = \"" + mock.url() +
         "/v1\"\napi_key_env = \"TEST_KEY\"\n\n"
         "[providers.an]\nprotocol = \"anthropic\"\nbase_url = \"" +
         mock.url() +
         "\"\napi_key_env = \"TEST_KEY\"\n\n"
         "[providers.ge]\nprotocol = \"gemini\"\nbase_url = \"" +
         mock.url() +
         "\"\napi_key_env = \"TEST_KEY\"\n\n"
         "[models.\"oa/strong\"]\ntier = 3\ninput_cost = 2.5\noutput_cost = 10.0\n\n"
         "[models.\"oa/weak\"]\ntier = 1\n\n"
         "[routes.smart]\ntargets = [\"oa/broken\", \"oa/strong\"]\n\n"
         "[defaults]\nmodel = \"oa/default-model\"\n";
}

struct Env {
  MockServer mock;
  TempDir dir;
  std::string config;

  explicit Env(const json& scenario = json::object()) : mock(scenario, {"--api-key", kKey}) {
    config = dir.write("config.toml", config_for(mock));
  }

  RunResult ask(std::vector<std::string> args, RunOptions options = {}) {
    std::vector<std::string> argv = {detour::testing::detour_bin(), "-c", config, "ask"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!options.env.count("TEST_KEY")) options.env["TEST_KEY"] = kKey;
    return detour::testing::run(argv, options);
  }
};

RunOptions piped(std::string stdin_data) {
  RunOptions o;
  o.stdin_data = std::move(stdin_data);
  return o;
}

RunOptions terminal_stdin() {
  RunOptions o;
  o.stdin_is_tty = true;
  return o;
}

}  // namespace

TEST_CASE("ask answers on each protocol, buffered and streamed", "[ask]") {
  Env env;
  for (const char* provider : {"oa", "an", "ge"}) {
    for (const char* mode : {"--no-stream", "--stream"}) {
      INFO(provider << " " << mode);
      auto r =
          env.ask({"-m", std::string(provider) + "/m1", mode, "hello", "world"}, terminal_stdin());
      CHECK(r.exit_code == 0);
      CHECK(r.out == "mock reply to: hello world\n");
    }
  }
  auto stats = env.mock.stats();
  CHECK(stats["requests"] == 6);
}

TEST_CASE("ask streams to a terminal and buffers into a pipe by default", "[ask]") {
  Env env;
  RunOptions tty = terminal_stdin();
  tty.stdout_is_tty = true;
  auto r = env.ask({"-m", "oa/m1", "on", "a", "tty"}, tty);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "mock reply to: on a tty\n");
  auto received = env.mock.stats()["received"];
  REQUIRE(received.size() == 1);
  CHECK(received[0]["stream"] == true);

  env.mock.reset_stats();
  r = env.ask({"-m", "oa/m1", "into", "a", "pipe"}, terminal_stdin());
  CHECK(r.out == "mock reply to: into a pipe\n");
  CHECK(env.mock.stats()["received"][0]["stream"] == false);
}

TEST_CASE("every prompt source combination", "[ask]") {
  Env env;
  std::string file_a = env.dir.write("a.txt", "file A\n");
  std::string file_b = env.dir.write("b.txt", "file B");
  struct Row {
    const char* name;
    std::vector<std::string> args;
    RunOptions options;
    std::string prompt;
  };
  std::vector<Row> rows = {
      {"words", {"one", "two"}, terminal_stdin(), "one two"},
      {"piped stdin", {}, piped("from pipe\n"), "from pipe"},
      {"words then stdin", {"summarise:"}, piped("body\n"), "summarise:\n\nbody"},
      {"file", {"-f", file_a}, terminal_stdin(), "file A"},
      {"words, files in order",
       {"x", "-f", file_a, "-f", file_b},
       terminal_stdin(),
       "x\n\nfile A\n\nfile B"},
      {"-f - is stdin in its place", {"-f", "-", "-f", file_b}, piped("in\n"), "in\n\nfile B"},
      {"file then piped stdin", {"-f", file_a}, piped("tail"), "file A\n\ntail"},
      {"empty stdin adds nothing", {"only", "words"}, piped(""), "only words"},
  };
  for (auto& row : rows) {
    SECTION(row.name) {
      auto args = row.args;
      args.insert(args.begin(), {"-m", "oa/m1"});
      auto r = env.ask(args, row.options);
      CHECK(r.err == "");
      CHECK(r.exit_code == 0);
      CHECK(r.out == "mock reply to: " + row.prompt + "\n");
    }
  }
}

TEST_CASE("no prompt is a usage error, never a hang, and nothing is sent", "[ask]") {
  Env env;
  auto r = env.ask({"-m", "oa/m1"}, terminal_stdin());
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("no prompt"));
  r = env.ask({"-m", "oa/m1"}, piped(""));
  CHECK(r.exit_code == 2);
  r = env.ask({"-m", "oa/m1", "-f", env.dir.path() + "/missing.txt"}, terminal_stdin());
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("missing.txt"));
  CHECK(env.mock.stats()["requests"] == 0);
}

TEST_CASE("--json prints every field, on success and on failure", "[ask]") {
  Env env(json{{"models", {{"broken", {{"fault", "unavailable"}}}}}});
  // No retries: one attempt per target, so the attempts are exactly the chain.
  auto r = env.ask({"--json", "--retries", "0", "-m", "smart", "hi"}, terminal_stdin());
  REQUIRE(r.exit_code == 0);
  auto j = json::parse(r.out);
  CHECK(j["ok"] == true);
  CHECK(j["content"] == "mock reply to: hi");
  CHECK(j["provider"] == "oa");
  CHECK(j["model"] == "strong");
  CHECK(j["route"] == "smart");
  CHECK(j["degraded"] == false);
  CHECK(j["finish_reason"] == "stop");
  CHECK(j["usage"]["input_tokens"].is_number());
  CHECK(j["usage"]["output_tokens"] == 4);
  CHECK(j["cost_usd"].is_number());
  CHECK(j["latency_ms"].is_number());
  REQUIRE(j["attempts"].size() == 2);
  CHECK(j["attempts"][0]["model"] == "broken");
  CHECK(j["attempts"][0]["status"] == 503);
  CHECK(j["attempts"][0]["error"] == "overloaded");
  CHECK(j["attempts"][1]["status"] == 200);
  CHECK(j["attempts"][1]["error"].is_null());
  for (const auto& a : j["attempts"]) {
    CHECK(a["latency_ms"].is_number());
    CHECK(a["waited_ms"] == 0);
  }

  r = env.ask({"--json", "--retries", "0", "-m", "oa/broken", "hi"}, terminal_stdin());
  CHECK(r.exit_code == 1);
  j = json::parse(r.out);
  CHECK(j["ok"] == false);
  CHECK(j["error"]["class"] == "overloaded");
  CHECK(j["error"]["status"] == 503);
  CHECK(j["error"]["message"].is_string());
  CHECK(j["route"].is_null());
  CHECK(j["attempts"].size() == 1);
}

TEST_CASE("the chain moves to the second target when the first fails", "[ask]") {
  Env env(json{{"models", {{"broken", {{"fault", "unavailable"}}}}}});
  auto r = env.ask({"-v", "-m", "oa/broken", "-m", "an/fine", "hi"}, terminal_stdin());
  CHECK(r.exit_code == 0);
  CHECK(r.out == "mock reply to: hi\n");
  CHECK_THAT(r.err, Catch::Contains("oa/broken: 503 overloaded"));
  CHECK_THAT(r.err, Catch::Contains("next target an/fine"));
  CHECK_THAT(r.err, Catch::Contains("an/fine: 200"));

  SECTION("also on a closed port, and with a comma list") {
    TempDir dir;
    int port = detour::testing::free_port();
    std::string cfg = env.config;
    std::string extra = dir.write("dead.toml", config_for(env.mock) +
                                                   "\n[providers.dead]\nprotocol = \"openai\"\n"
                                                   "base_url = \"http://127.0.0.1:" +
                                                   std::to_string(port) + "/v1\"\n");
    RunOptions o = terminal_stdin();
    o.env["TEST_KEY"] = kKey;
    auto r2 = detour::testing::run(
        {detour::testing::detour_bin(), "-c", extra, "ask", "--json", "-m", "dead/x,oa/y", "hi"},
        o);
    CHECK(r2.exit_code == 0);
    auto j = json::parse(r2.out);
    CHECK(j["attempts"][0]["error"] == "connection");
    CHECK(j["attempts"][0]["status"].is_null());
    CHECK(j["model"] == "y");
  }
}

TEST_CASE("--no-fallback stops at the first target", "[ask]") {
  Env env(json{{"models", {{"broken", {{"fault", "unavailable"}}}}}});
  auto r = env.ask({"--no-fallback", "--retries", "1", "-m", "smart", "hi"}, terminal_stdin());
  CHECK(r.exit_code == 1);
  CHECK(env.mock.stats()["requests"] == 2);  // the first target and its one retry
}

TEST_CASE("exit codes: usage 2, configuration 3, rejected 4, auth 5", "[ask]") {
  Env env(json{{"models", {{"toolong", {{"fault", "context_length"}}}}}});
  CHECK(env.ask({"--bogus-flag", "hi"}, terminal_stdin()).exit_code == 2);
  CHECK(env.ask({"--timeout", "soon", "-m", "oa/x", "hi"}, terminal_stdin()).exit_code == 2);

  auto r = env.ask({"-m", "no-such-route", "hi"}, terminal_stdin());
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("no-such-route"));

  std::string bad = env.dir.write("bad.toml",
                                  "[providers.x]\nprotocol = \"openai\"\nbase_url = "
                                  "\"http://127.0.0.1:1/v1\"\nrpm = \"lots\"\n");
  r = detour::testing::run({detour::testing::detour_bin(), "-c", bad, "ask", "hi"},
                           terminal_stdin());
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("bad.toml:4:"));
  CHECK_THAT(r.err, Catch::Contains("rpm"));

  RunOptions no_key = terminal_stdin();
  no_key.env["TEST_KEY"] = "";
  r = detour::testing::run(
      {detour::testing::detour_bin(), "-c", env.config, "ask", "-m", "oa/x", "hi"}, no_key);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("TEST_KEY"));

  CHECK(env.ask({"-m", "oa/toolong", "hi"}, terminal_stdin()).exit_code == 4);

  RunOptions wrong_key = terminal_stdin();
  wrong_key.env["TEST_KEY"] = "sk-wrong-key-0000";
  r = env.ask({"-m", "oa/x", "-m", "an/x", "hi"}, wrong_key);
  CHECK(r.exit_code == 5);
}

TEST_CASE("zero-config: OPENAI_API_KEY and OPENAI_BASE_URL are enough", "[ask]") {
  MockServer mock(json::object(), {"--api-key", kKey});
  RunOptions o = terminal_stdin();
  o.env["OPENAI_API_KEY"] = kKey;
  o.env["OPENAI_BASE_URL"] = mock.url() + "/v1";
  auto r = detour::testing::run(
      {detour::testing::detour_bin(), "ask", "-m", "openai/gpt-4o-mini", "hi"}, o);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "mock reply to: hi\n");
}

TEST_CASE("an API key never appears in stdout or stderr, even at -vvv", "[ask]") {
  Env env(json{{"models", {{"broken", {{"fault", "unavailable"}}}}}});
  for (const char* key : {kKey, "sk-wrong-key-that-is-long-enough"}) {
    RunOptions o = terminal_stdin();
    o.env["TEST_KEY"] = key;
    for (auto args : std::vector<std::vector<std::string>>{
             {"-vvv", "-m", "smart", "hi"},
             {"-vvv", "--json", "-m", "smart", "hi"},
             {"-vvv", "--stream", "-m", "an/x", "-m", "ge/y", "hi"},
             {"-vvv", "--log-format", "json", "-m", "oa/broken", "hi"}}) {
      auto r = env.ask(args, o);
      INFO(r.err);
      CHECK(r.out.find(key) == std::string::npos);
      CHECK(r.err.find(key) == std::string::npos);
      CHECK_FALSE(r.err.empty());
    }
  }
}

TEST_CASE("-s, --max-tokens, --temperature and -o reach the provider", "[ask]") {
  Env env;
  for (const char* provider : {"oa", "an", "ge"}) {
    INFO(provider);
    env.mock.reset_stats();
    auto r = env.ask({"-m", std::string(provider) + "/m1", "--max-tokens", "2", "--json", "-s",
                      "be brief", "--temperature", "0.2", "-o", "seed=7", "one", "two", "three"},
                     terminal_stdin());
    REQUIRE(r.exit_code == 0);
    auto j = json::parse(r.out);
    CHECK(j["content"] == "mock reply");
    CHECK(j["finish_reason"] == "length");
    auto received = env.mock.stats()["received"];
    REQUIRE(received.size() == 1);
    CHECK(received[0]["system"] == "be brief");
    CHECK(received[0]["prompt"] == "one two three");
    CHECK(received[0]["max_tokens"] == 2);
    std::string params = received[0]["params"].dump();
    CHECK_THAT(params, Catch::Contains("0.2"));
    CHECK_THAT(params, Catch::Contains("\"seed\":7"));
  }
}

TEST_CASE("Anthropic gets a default max_tokens when none is given", "[ask]") {
  Env env;
  auto r = env.ask({"-m", "an/m1", "hi"}, terminal_stdin());
  REQUIRE(r.exit_code == 0);
  CHECK(env.mock.stats()["received"][0]["max_tokens"] == 4096);
}

TEST_CASE("a live stream that breaks after text was printed says so and prints the next answer",
          "[ask]") {
  Env env(json{{"models", {{"cut", {{"fault", "sse_cut"}}}}}});
  auto r = env.ask({"--stream", "-m", "oa/cut", "-m", "an/whole", "one two three four five six"},
                   terminal_stdin());
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("broke after its text was printed"));
  // Whatever the cut stream printed comes first, on its own line, then the whole answer.
  const std::string whole = "mock reply to: one two three four five six\n";
  REQUIRE(r.out.size() > whole.size());
  CHECK(r.out.substr(r.out.size() - whole.size()) == whole);
  CHECK(r.out[r.out.size() - whole.size() - 1] == '\n');
}

TEST_CASE("a buffered answer never prints text from a failed stream", "[ask]") {
  Env env(json{{"models", {{"cut", {{"fault", "sse_cut"}}}}}});
  auto r = env.ask({"--json", "--stream", "-m", "oa/cut", "-m", "an/whole", "one two three"},
                   terminal_stdin());
  REQUIRE(r.exit_code == 0);
  auto j = json::parse(r.out);
  CHECK(j["content"] == "mock reply to: one two three");
  CHECK(j["attempts"][0]["error"] == "invalid_response");
}

TEST_CASE("--timeout ends a slow attempt and --deadline ends the whole call", "[ask]") {
  // 10 s: far beyond the limits, so the bounds below can leave seconds of slack.
  Env env(json{{"models", {{"slow", {{"latency_ms", 10000}}}}}});
  auto r = env.ask({"--json", "--timeout", "200ms", "-m", "oa/slow", "-m", "an/quick", "hi"},
                   terminal_stdin());
  REQUIRE(r.exit_code == 0);
  auto j = json::parse(r.out);
  CHECK(j["attempts"][0]["error"] == "timeout");
  CHECK(j["attempts"][0]["latency_ms"] < 5000);
  CHECK(j["model"] == "quick");

  r = env.ask({"--json", "--deadline", "300ms", "-m", "oa/slow", "-m", "an/slow", "hi"},
              terminal_stdin());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  j = json::parse(r.out);
  CHECK(j["error"]["class"] == "timeout");
  CHECK(j["latency_ms"] < 5000);
  CHECK(j["attempts"].size() == 1);
}

TEST_CASE("Ctrl-C cancels the request in flight and exits 130", "[ask]") {
  Env env(json{{"models", {{"slow", {{"latency_ms", 20000}}}}}});
  RunOptions o = terminal_stdin();
  o.send_signal = SIGINT;
  o.signal_when = [&env] { return env.mock.stats()["in_flight"].get<int>() >= 1; };
  o.timeout = std::chrono::milliseconds(15000);
  auto r = env.ask({"--json", "-m", "oa/slow", "hi"}, o);
  CHECK(r.exit_code == 130);
  auto j = json::parse(r.out);
  CHECK(j["ok"] == false);
  CHECK(j["error"]["class"] == "cancelled");
  REQUIRE(j["attempts"].size() == 1);
  CHECK(j["attempts"][0]["error"] == "cancelled");
  CHECK(j["attempts"][0]["latency_ms"] < 5000);
}
