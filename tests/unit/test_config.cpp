// Configuration: TOML validation with positions, zero-config, environment precedence and
// finding the file. Resolving -m names is in test_config_resolve.cpp.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

#include "config_test_support.hpp"

namespace fs = std::filesystem;
using namespace detour::config;
using namespace detour::config::testing;
using detour::Millis;

namespace {

std::string parse_error(std::string_view text, const Env& env = {}) {
  return error_of([&] { parse(text, env); });
}

// A scratch directory, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("detour-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string write(const std::string& relative, const std::string& text) const {
    fs::path file = path / relative;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
    return file.string();
  }
};

}  // namespace

TEST_CASE("config errors name file:line:column, the key and what is wrong", "[config]") {
  struct Row {
    const char* toml;
    std::vector<std::string> expected;  // substrings of the message
  };
  const Row rows[] = {
      {"[providers.openai]\nrpm = \"lots\"\n",
       {"config.toml:2:7: providers.openai.rpm: expected a positive integer, got string \"lots\""}},
      {"[providers.openai]\nrpm = 0\n",
       {"config.toml:2:7: providers.openai.rpm: must be at least 1"}},
      {"[providers.openai]\nrmp = 5\n",
       {"config.toml:2:1: providers.openai.rmp: unknown key (did you mean 'rpm'?)"}},
      {"[providers.openai]\napi_key = \"x\"\n",
       {"config.toml:2:1: providers.openai.api_key: unknown key", "api_key_env"}},
      {"[limits]\nrpm = 3\n", {"config.toml:1:2: limits: unknown table", "[defaults]"}},
      {"model = \"smart\"\n",
       {"config.toml:1:1: model: unknown key", "did you mean to put it under [defaults]?"}},
      {"providers = 5\n", {"config.toml:1:13: providers: expected a table, got integer 5"}},
      {"[providers.local]\nprotocol = \"grpc\"\nbase_url = \"http://h\"\n",
       {"config.toml:2:12: providers.local.protocol: expected one of openai, anthropic, gemini, "
        "azure, got string \"grpc\""}},
      {"[providers.local]\nbase_url = \"http://localhost:11434/v1\"\n",
       {"config.toml:1:1: providers.local: missing key 'protocol'"}},
      {"[providers.local]\nprotocol = \"openai\"\n",
       {"config.toml:1:1: providers.local: missing key 'base_url'"}},
      {"[providers.local]\nprotocol = \"openai\"\nbase_url = \"localhost:11434\"\n",
       {"config.toml:3:12: providers.local.base_url: expected a URL starting with http:// or "
        "https://"}},
      {"[providers.local]\nprotocol = \"openai\"\nbase_url = \"http://h\"\nconcurrency = 1.5\n",
       {"config.toml:4:15: providers.local.concurrency: expected a positive integer, got float "
        "1.5"}},
      {"[providers.\"a/b\"]\nprotocol = \"openai\"\nbase_url = \"http://h\"\n",
       {"config.toml:1:12: providers.\"a/b\": provider names cannot contain '/'"}},
      {"[models.gpt4]\ntier = 1\n",
       {"config.toml:1:9: models.gpt4: expected \"provider/model\", got \"gpt4\""}},
      {"[models.\"nope/m\"]\ntier = 1\n",
       {"config.toml:1:9: models.\"nope/m\": unknown provider 'nope'"}},
      {"[models.\"openai/gpt-4o\"]\ntier = -1\n",
       {"config.toml:2:8: models.\"openai/gpt-4o\".tier: must be 0 or more, got -1"}},
      {"[models.\"openai/gpt-4o\"]\ninput_cost = -0.5\n",
       {"config.toml:2:14: models.\"openai/gpt-4o\".input_cost: must be 0 or more, got float "
        "-0.5"}},
      {"[models.\"openai/gpt-4o\"]\noutput_cost = \"ten\"\n",
       {"config.toml:2:15: models.\"openai/gpt-4o\".output_cost: expected a number, got string "
        "\"ten\""}},
      {"[models.\"openai/gpt-4o\"]\ncontext_window = -5\n",
       {"config.toml:2:18: models.\"openai/gpt-4o\".context_window: must be 0 or more"}},
      {"[models.\"openai/gpt-4o\"]\ncontext = 5\n",
       {"config.toml:2:1: models.\"openai/gpt-4o\".context: unknown key"}},
      {"[routes.r]\nstrategy = \"random\"\ntargets = [\"openai/gpt-4o\"]\n",
       {"config.toml:2:12: routes.r.strategy: expected one of fallback, fastest, cheapest, "
        "weighted, round-robin, got string \"random\""}},
      {"[routes.r]\ntargets = [\"gpt-4o\"]\n",
       {"config.toml:2:12: routes.r.targets[0]: expected \"provider/model\", got \"gpt-4o\""}},
      {"[routes.r]\ntargets = [\"openai/gpt-4o\", \"nope/m\"]\n",
       {"config.toml:2:29: routes.r.targets[1]: unknown provider 'nope'"}},
      {"[routes.r]\ntargets = [\"openai/a\", \"openai/a\"]\n",
       {"config.toml:2:24: routes.r.targets[1]: duplicate target \"openai/a\""}},
      {"[routes.r]\ntargets = []\n",
       {"config.toml:2:11: routes.r.targets: must name at least one"}},
      {"[routes.r]\ntargets = \"openai/a\"\n",
       {"config.toml:2:11: routes.r.targets: expected an array"}},
      {"[routes.r]\nstrategy = \"fallback\"\n",
       {"config.toml:1:1: routes.r: missing key 'targets'"}},
      {"[routes.r]\ntargets = [\"openai/a\", 5]\n",
       {"config.toml:2:24: routes.r.targets[1]: expected a string, got integer 5"}},
      {"[routes.r]\nstrategy = \"weighted\"\ntargets = [\"openai/a\", \"openai/b\"]\nweights = "
       "[1]\n",
       {"config.toml:4:11: routes.r.weights: has 1 weights for 2 targets"}},
      {"[routes.r]\ntargets = [\"openai/a\"]\nweights = [-1]\n",
       {"config.toml:3:12: routes.r.weights[0]: must be 0 or more, got integer -1"}},
      {"[routes.r]\ntargets = [\"openai/a\", \"openai/b\"]\nweights = [0, 0]\n",
       {"config.toml:3:11: routes.r.weights: at least one weight must be above 0"}},
      {"[routes.r]\ntargets = [\"openai/a\"]\nmin_tier = 1.5\n",
       {"config.toml:3:12: routes.r.min_tier: expected an integer, got float 1.5"}},
      {"[routes.r]\ntargets = [\"openai/a\"]\ntier = 1\n",
       {"config.toml:3:1: routes.r.tier: unknown key (did you mean 'min_tier'?)"}},
      {"[routes.\"a,b\"]\ntargets = [\"openai/a\"]\n",
       {"config.toml:1:9: routes.\"a,b\": route names cannot contain"}},
      {"[defaults]\ntimeout = \"soon\"\n",
       {"config.toml:2:11: defaults.timeout: expected a duration", "got string \"soon\""}},
      {"[defaults]\ndeadline = 0\n",
       {"config.toml:2:12: defaults.deadline: must be longer than zero"}},
      {"[defaults]\ndeadline = true\n",
       {"config.toml:2:12: defaults.deadline: expected a duration", "got boolean true"}},
      {"[defaults]\nretries = -1\n", {"config.toml:2:11: defaults.retries: must be 0 or more"}},
      {"[defaults]\nretries = \"2\"\n",
       {"config.toml:2:11: defaults.retries: expected an integer, got string \"2\""}},
      {"[defaults]\nretries = 1000\n", {"config.toml:2:11: defaults.retries: must be at most 100"}},
      {"[defaults]\nmax_tokens = 0\n",
       {"config.toml:2:14: defaults.max_tokens: must be at least 1"}},
      {"[defaults]\ntemperature = 3\n",
       {"config.toml:2:15: defaults.temperature: must be from 0 to 2, got integer 3"}},
      {"[defaults]\ntemperature = nan\n", {"config.toml:2:15: defaults.temperature"}},
      {"[defaults]\nmodel = 5\n",
       {"config.toml:2:9: defaults.model: expected a string, got integer 5"}},
      {"[defaults]\nstate = [\"memory\"]\n",
       {"config.toml:2:9: defaults.state: expected a string, got an array"}},
      {"[defaults]\nmodle = \"smart\"\n",
       {"config.toml:2:1: defaults.modle: unknown key (did you mean 'model'?)"}},
      {"[defaults]\nmodel = \n", {"config.toml:2:", "invalid TOML"}},
      {"[defaults]\nretries = 1\nretries = 2\n", {"config.toml:3:", "invalid TOML"}},
  };
  for (const auto& row : rows) {
    INFO("toml:\n" << row.toml);
    std::string message = parse_error(row.toml, kKeys);
    for (const auto& expected : row.expected)
      CHECK_THAT(message, Catch::Contains(expected));
    CHECK_THAT(message, !Catch::Contains("SECRET"));
  }
}

TEST_CASE("api_key_env holding a key is refused without echoing it", "[config]") {
  std::string message = parse_error(
      "[providers.local]\nprotocol = \"openai\"\nbase_url = \"http://h\"\n"
      "api_key_env = \"sk-proj-abc123\"\n");
  CHECK_THAT(message, Catch::Contains("config.toml:4:15: providers.local.api_key_env"));
  CHECK_THAT(message, !Catch::Contains("sk-proj-abc123"));
}

TEST_CASE("a valid file is read into the structs", "[config]") {
  Config config = parse(R"(
[defaults]
model = "smart"
timeout = 90
deadline = "10m"
retries = 0
max_tokens = 512
temperature = 1
state = "memory"

[providers.local]
protocol = "openai"
base_url = "http://localhost:11434/v1///"
rpm = 60
tpm = 100000
burst = 3
concurrency = 4

[models."local/llama3"]
context_window = 8192
input_cost = 0
output_cost = 0.5
tier = 1

[routes.smart]
strategy = "weighted"
targets = ["local/llama3", "local/qwen"]
weights = [2, 1.5]
min_tier = 1
)");
  CHECK(config.path == "config.toml");
  CHECK(config.defaults.model == "smart");
  CHECK(config.defaults.timeout == Millis(90'000));
  CHECK(config.defaults.deadline == Millis(600'000));
  CHECK(config.defaults.retries == 0);
  CHECK(config.defaults.max_tokens == 512);
  CHECK(config.defaults.temperature == 1.0);
  CHECK(config.defaults.state == "memory");

  REQUIRE(config.providers.size() == 1);
  const auto& local = config.providers.at("local");
  CHECK(local.name == "local");
  CHECK(local.protocol == "openai");
  CHECK(local.base_url == "http://localhost:11434/v1");
  CHECK(local.api_key_env.empty());
  CHECK(local.rpm == 60);
  CHECK(local.tpm == 100000);
  CHECK(local.burst == 3);
  CHECK(local.concurrency == 4);
  CHECK_FALSE(local.zero_config);

  const auto& llama = config.models.at("local/llama3");
  CHECK(llama.context_window == 8192);
  CHECK(llama.input_cost == 0.0);
  CHECK(llama.output_cost == 0.5);
  CHECK(llama.tier == 1);

  const auto& smart = config.routes.at("smart");
  CHECK(smart.name == "smart");
  CHECK(smart.strategy == "weighted");
  CHECK(smart.targets == std::vector<std::string>{"local/llama3", "local/qwen"});
  CHECK(smart.weights == std::vector<double>{2.0, 1.5});
  CHECK(smart.min_tier == 1);
}

TEST_CASE("built-in defaults apply to an empty file", "[config]") {
  Config config = parse("");
  CHECK(config.defaults.model.empty());
  CHECK(config.defaults.timeout == Millis(60'000));
  CHECK(config.defaults.deadline == Millis(300'000));
  CHECK(config.defaults.retries == 2);
  CHECK_FALSE(config.defaults.max_tokens);
  CHECK_FALSE(config.defaults.temperature);
  CHECK(config.defaults.state.empty());
  CHECK(config.providers.empty());
}

// toml++ 3.3.0 classifies some code points (U+00A1..U+0499) by reaching __builtin_unreachable
// (marzer/tomlplusplus #190, #295; found here by tests/fuzz/fuzz_config). GCC's release code
// answers "not whitespace", the behaviour upstream's fix (#305) chose; this test fails if a
// compiler ever makes that UB do something else. The ASan+UBSan build reports the UB itself,
// so it skips the test (DETOUR_SANITIZE).
#ifndef DETOUR_SANITIZE
TEST_CASE("non-ASCII text toml++ 3.3.0 misclassifies", "[config]") {
  // After a line-ending backslash in a multi-line string: valid TOML, kept as written.
  Config config = parse("[defaults]\nmodel = \"\"\"\\\n\u00a7ab\"\"\"\n");
  CHECK(config.defaults.model == "\u00a7ab");
  // In a bare key: not TOML, and the error says where.
  CHECK_THAT(parse_error("[routes.rou\u0463x]\n"),
             Catch::Contains(":1:12: invalid TOML") && Catch::Contains("expected ']'"));
}
#endif

TEST_CASE("zero-config makes a provider for each key variable set", "[config]") {
  struct Row {
    const char* variable;
    const char* provider;
    const char* protocol;
    const char* base_url;
  };
  const Row rows[] = {
      {"OPENAI_API_KEY", "openai", "openai", "https://api.openai.com/v1"},
      {"ANTHROPIC_API_KEY", "anthropic", "anthropic", "https://api.anthropic.com"},
      {"GEMINI_API_KEY", "gemini", "gemini", "https://generativelanguage.googleapis.com"},
      {"GOOGLE_API_KEY", "gemini", "gemini", "https://generativelanguage.googleapis.com"},
      {"DEEPSEEK_API_KEY", "deepseek", "openai", "https://api.deepseek.com/v1"},
      {"OPENROUTER_API_KEY", "openrouter", "openai", "https://openrouter.ai/api/v1"},
      {"GROQ_API_KEY", "groq", "openai", "https://api.groq.com/openai/v1"},
      {"MISTRAL_API_KEY", "mistral", "openai", "https://api.mistral.ai/v1"},
  };
  for (const auto& row : rows) {
    INFO(row.variable);
    Config config = parse("", {{row.variable, "k"}});
    REQUIRE(config.providers.size() == 1);
    const auto& p = config.providers.begin()->second;
    CHECK(p.name == row.provider);
    CHECK(config.providers.begin()->first == row.provider);
    CHECK(p.protocol == row.protocol);
    CHECK(p.base_url == row.base_url);
    CHECK(p.api_key_env == row.variable);
    CHECK(p.zero_config);
  }
}

TEST_CASE("zero-config is off without keys, with empty keys, and for names the file defines",
          "[config]") {
  CHECK(parse("").providers.empty());
  CHECK(parse("", {{"OPENAI_API_KEY", ""}, {"OPENAI_BASE_URL", "http://x"}}).providers.empty());

  Config config = parse(
      "[providers.openai]\nprotocol = \"openai\"\nbase_url = \"https://proxy.example/v1\"\n"
      "api_key_env = \"PROXY_KEY\"\n",
      {{"OPENAI_API_KEY", "k"}, {"OPENAI_BASE_URL", "http://elsewhere/v1"}, {"GROQ_API_KEY", "k"}});
  REQUIRE(config.providers.size() == 2);
  const auto& openai = config.providers.at("openai");
  CHECK_FALSE(openai.zero_config);
  CHECK(openai.base_url == "https://proxy.example/v1");  // the file's base_url is kept
  CHECK(openai.api_key_env == "PROXY_KEY");
  CHECK(config.providers.at("groq").zero_config);  // the others still come from the env
}

TEST_CASE("gemini prefers GEMINI_API_KEY over GOOGLE_API_KEY", "[config]") {
  Config both = parse("", {{"GEMINI_API_KEY", "a"}, {"GOOGLE_API_KEY", "b"}});
  CHECK(both.providers.at("gemini").api_key_env == "GEMINI_API_KEY");
  Config google = parse("", {{"GEMINI_API_KEY", ""}, {"GOOGLE_API_KEY", "b"}});
  CHECK(google.providers.at("gemini").api_key_env == "GOOGLE_API_KEY");
}

TEST_CASE("*_BASE_URL moves zero-config providers only", "[config]") {
  struct Row {
    const char* key;
    const char* url_variable;
    const char* provider;
  };
  const Row rows[] = {
      {"OPENAI_API_KEY", "OPENAI_BASE_URL", "openai"},
      {"ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "anthropic"},
      {"GEMINI_API_KEY", "GEMINI_BASE_URL", "gemini"},
      {"DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL", "deepseek"},
      {"OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "openrouter"},
      {"GROQ_API_KEY", "GROQ_BASE_URL", "groq"},
      {"MISTRAL_API_KEY", "MISTRAL_BASE_URL", "mistral"},
  };
  for (const auto& row : rows) {
    INFO(row.url_variable);
    Config config = parse("", {{row.key, "k"}, {row.url_variable, "http://127.0.0.1:8080/v1/"}});
    CHECK(config.providers.at(row.provider).base_url == "http://127.0.0.1:8080/v1");
  }

  // A file provider of a well-known name without base_url takes the built-in one, which the
  // variable moves; one with base_url keeps it.
  Config bare = parse("[providers.openai]\nrpm = 10\n", {{"OPENAI_BASE_URL", "http://local/v1"}});
  CHECK(bare.providers.at("openai").base_url == "http://local/v1");
  CHECK(bare.providers.at("openai").protocol == "openai");
  CHECK(bare.providers.at("openai").api_key_env == "OPENAI_API_KEY");
  CHECK_FALSE(bare.providers.at("openai").zero_config);

  std::string message = parse_error("", {{"OPENAI_API_KEY", "k"}, {"OPENAI_BASE_URL", "ftp://x"}});
  CHECK_THAT(message, Catch::Contains("OPENAI_BASE_URL"));
  CHECK_THAT(message, Catch::Contains("http://"));
}

TEST_CASE("environment overrides beat the file, which beats the built-ins", "[config]") {
  const char* file =
      "[defaults]\nmodel = \"smart\"\ntimeout = \"60s\"\ndeadline = \"5m\"\n"
      "retries = 2\nstate = \"memory\"\n";
  Config from_file = parse(file);
  CHECK(from_file.defaults.model == "smart");
  CHECK(from_file.defaults.timeout == Millis(60'000));

  Config overridden = parse(file, {{"DETOUR_MODEL", "openai/gpt-4o"},
                                   {"DETOUR_TIMEOUT", "90s"},
                                   {"DETOUR_DEADLINE", "10m"},
                                   {"DETOUR_RETRIES", "5"},
                                   {"DETOUR_STATE", "sqlite:///tmp/s.db"}});
  CHECK(overridden.defaults.model == "openai/gpt-4o");
  CHECK(overridden.defaults.timeout == Millis(90'000));
  CHECK(overridden.defaults.deadline == Millis(600'000));
  CHECK(overridden.defaults.retries == 5);
  CHECK(overridden.defaults.state == "sqlite:///tmp/s.db");

  // Empty variables count as unset.
  Config empty = parse(file, {{"DETOUR_MODEL", ""}, {"DETOUR_TIMEOUT", ""}});
  CHECK(empty.defaults.model == "smart");
  CHECK(empty.defaults.timeout == Millis(60'000));
}

TEST_CASE("bad DETOUR_* values name the variable", "[config]") {
  struct Row {
    const char* variable;
    const char* value;
    const char* expected;
  };
  const Row rows[] = {
      {"DETOUR_TIMEOUT", "soon", "DETOUR_TIMEOUT: not a duration: \"soon\""},
      {"DETOUR_DEADLINE", "-5m", "DETOUR_DEADLINE: not a duration: \"-5m\""},
      {"DETOUR_TIMEOUT", "0", "DETOUR_TIMEOUT: must be longer than zero"},
      {"DETOUR_RETRIES", "-1", "DETOUR_RETRIES: expected an integer from 0 to 100, got \"-1\""},
      {"DETOUR_RETRIES", "two", "DETOUR_RETRIES: expected an integer"},
      {"DETOUR_RETRIES", "3x", "DETOUR_RETRIES: expected an integer"},
  };
  for (const auto& row : rows) {
    INFO(row.variable << "=" << row.value);
    CHECK_THAT(parse_error("", {{row.variable, row.value}}), Catch::Contains(row.expected));
  }
}

TEST_CASE("split_target splits at the first slash", "[config]") {
  auto plain = split_target("openai/gpt-4o");
  REQUIRE(plain);
  CHECK(plain->provider == "openai");
  CHECK(plain->model == "gpt-4o");
  auto nested = split_target("openrouter/meta-llama/llama-3-8b");
  REQUIRE(nested);
  CHECK(nested->provider == "openrouter");
  CHECK(nested->model == "meta-llama/llama-3-8b");
  CHECK(nested->name() == "openrouter/meta-llama/llama-3-8b");
  for (const char* bad : {"", "gpt-4o", "/gpt-4o", "openai/"}) {
    INFO(bad);
    CHECK_FALSE(split_target(bad));
  }
}

TEST_CASE("load_config finds the file", "[config]") {
  TempDir dir;
  const std::string body = "[defaults]\nmodel = \"from-%\"\n";
  auto file_for = [&](const std::string& where) {
    std::string text = body;
    text.replace(text.find('%'), 1, where);
    return text;
  };
  std::string explicit_path = dir.write("explicit.toml", file_for("explicit"));
  std::string env_path = dir.write("env.toml", file_for("env"));
  dir.write("xdg/detour/config.toml", file_for("xdg"));
  dir.write("home/.config/detour/config.toml", file_for("home"));
  const std::string xdg = (dir.path / "xdg").string();
  const std::string home = (dir.path / "home").string();

  SECTION("explicit path beats everything") {
    Config c = load_config(explicit_path, lookup({{"DETOUR_CONFIG", env_path}, {"HOME", home}}));
    CHECK(c.defaults.model == "from-explicit");
    CHECK(c.path == explicit_path);
  }
  SECTION("then DETOUR_CONFIG") {
    Config c =
        load_config(std::nullopt, lookup({{"DETOUR_CONFIG", env_path}, {"XDG_CONFIG_HOME", xdg}}));
    CHECK(c.defaults.model == "from-env");
  }
  SECTION("then XDG_CONFIG_HOME") {
    Config c = load_config(std::nullopt, lookup({{"XDG_CONFIG_HOME", xdg}, {"HOME", home}}));
    CHECK(c.defaults.model == "from-xdg");
    CHECK(c.path == xdg + "/detour/config.toml");
  }
  SECTION("then ~/.config") {
    Config c = load_config(std::nullopt, lookup({{"HOME", home}}));
    CHECK(c.defaults.model == "from-home");
  }
  SECTION("no file at all is zero-config") {
    Config c = load_config(std::nullopt, lookup({{"HOME", (dir.path / "nothing").string()},
                                                 {"OPENAI_API_KEY", "k"},
                                                 {"DETOUR_MODEL", "gpt-4o"}}));
    CHECK(c.path.empty());
    CHECK(c.providers.at("openai").zero_config);
    CHECK(c.defaults.model == "gpt-4o");
  }
  SECTION("an explicit file that cannot be read is an error naming it") {
    std::string missing = (dir.path / "missing.toml").string();
    std::string message = error_of([&] { load_config(missing, lookup({{"HOME", home}})); });
    CHECK_THAT(message, Catch::Contains(missing));
    CHECK_THAT(message, Catch::Contains("No such file or directory"));
    message = error_of([&] { load_config(std::nullopt, lookup({{"DETOUR_CONFIG", missing}})); });
    CHECK_THAT(message, Catch::Contains(missing));
    CHECK_THAT(message, Catch::Contains("DETOUR_CONFIG"));
    message = error_of([&] { load_config(dir.path.string(), lookup({})); });
    CHECK_THAT(message, Catch::Contains("Is a directory"));
  }
  SECTION("errors in a loaded file name its path") {
    std::string bad = dir.write("bad.toml", "[defaults]\nretries = \"many\"\n");
    CHECK_THAT(error_of([&] { load_config(bad, lookup({})); }),
               Catch::Contains(bad + ":2:11: defaults.retries"));
  }
}
