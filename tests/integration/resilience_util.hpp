#pragma once
// Shared set-up for the resilience tests (test_resilience*.cpp): one mock, a config with an
// OpenAI-compatible provider `oa` and an Anthropic provider `an` on it (separate providers, so
// separate retry budgets), and helpers to count what the mock received and to time a run.
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness.hpp"

namespace detour::testing::resilience {

using nlohmann::json;

inline const char* kKey = "sk-resilience-KEY-0123456789abcdef";

inline std::string providers_toml(const MockServer& mock) {
  return "[providers.oa]\nprotocol = \"openai\"\nbase_url = \"" + mock.url() +
         "/v1\"\napi_key_env = \"TEST_KEY\"\n\n"
         "[providers.an]\nprotocol = \"anthropic\"\nbase_url = \"" +
         mock.url() + "\"\napi_key_env = \"TEST_KEY\"\n\n";
}

// A provider whose base URL is a loopback port nobody listens on: every attempt is refused.
inline std::string dead_provider_toml(const std::string& name = "dead") {
  return "[providers." + name +
         "]\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:" + std::to_string(free_port()) +
         "/v1\"\n\n";
}

struct Timed {
  RunResult r;
  long long ms = 0;  // wall time of the whole detour process
};

struct Env {
  MockServer mock;
  TempDir dir;
  std::string config;

  // `extra_toml` is appended to the providers (models, routes, [breaker], more providers).
  explicit Env(const json& scenario = json::object(), const std::string& extra_toml = "")
      : mock(scenario) {
    config = dir.write("config.toml", providers_toml(mock) + extra_toml);
  }

  // A state file in this test's directory, for runs that must share what they learn.
  std::string state_url(const std::string& name = "s.db") const {
    return "sqlite://" + dir.file(name);
  }

  // detour -c CONFIG ask ARGS...; stdin is an empty pipe and stdout a pipe (buffered output).
  RunResult ask(const std::vector<std::string>& args, RunOptions options = {}) {
    std::vector<std::string> argv = {detour_bin(), "-c", config, "ask"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!options.env.count("TEST_KEY")) options.env["TEST_KEY"] = kKey;
    return run(argv, options);
  }

  Timed timed_ask(const std::vector<std::string>& args, RunOptions options = {}) {
    const auto start = std::chrono::steady_clock::now();
    Timed t;
    t.r = ask(args, std::move(options));
    t.ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
               .count();
    return t;
  }

  // Chat requests the mock received for `model` (by_model counts every request that named it).
  int requests(const std::string& model) {
    const json by_model = mock.stats()["by_model"];
    return by_model.contains(model) ? by_model[model].get<int>() : 0;
  }
};

// The --json object of a run; fails the test (not the harness) when stdout is not JSON.
inline json parse_json(const RunResult& r) {
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return json{{"unparsable_stdout", r.out}};
  return j;
}

// Lines of stderr that contain `needle`.
inline int count_lines(const std::string& text, const std::string& needle) {
  int n = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (std::string_view(text).substr(start, end - start).find(needle) != std::string_view::npos)
      ++n;
    start = end + 1;
  }
  return n;
}

// The attempts of a --json object made to `model`, in order.
inline std::vector<json> attempts_of(const json& j, const std::string& model) {
  std::vector<json> out;
  if (!j.contains("attempts")) return out;
  for (const auto& a : j["attempts"]) {
    if (a["model"] == model) out.push_back(a);
  }
  return out;
}

}  // namespace detour::testing::resilience
