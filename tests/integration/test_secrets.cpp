// API keys never leave detour (README, "Exit codes": "API keys never appear in output, logs or
// error messages"): every subcommand at -vvv, with text and JSON logs, is driven through every
// class of failure detour-mock can produce and through a provider that echoes the key back in
// its errors, and then stdout, stderr, the state store's raw bytes and every file detour wrote
// are searched for the keys, whole or cut short. Also: the files that may hold provider text
// are born 0600, and nothing can turn TLS verification off. (The config takes no header values
// from the environment, README "Configuration": the keys are the only secrets it reads.)
//
// Each search is only worth something if the key really was sent and really came back: each
// protocol's mock requires its key (a reply other than 401 proves it arrived), the echo server
// records the keys it saw and puts them in its replies, and "[redacted]" must show up where the
// echoed text was reported.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "harness.hpp"
#include "secret_faults.hpp"
#include "secrets_echo_server.hpp"
#include "transport_test_server.hpp"

using detour::testing::MockServer;
using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::TempDir;
using detour::testing::secrets::Fault;
using detour::testing::secrets::faults;
using detour::testing::transport::TestServer;
using nlohmann::json;
using namespace detour::testing::secrets;

namespace {

// Distinctive values, so that a hit can only be a leak. The variable names are the providers'
// usual ones: the config below uses the known provider names, as most users' configs do.
struct Secret {
  const char* env;
  const char* value;
};
const Secret kOpenAi{"OPENAI_API_KEY", "sk-SECRET-openai-3f9a7c21d84e6b05"};
const Secret kAnthropic{"ANTHROPIC_API_KEY", "sk-ant-SECRET-anthropic-81c4e2f7a9d3"};
const Secret kGemini{"GEMINI_API_KEY", "AIzaSECRET-gemini-5d2b8e71c6f04a93"};
// A custom provider's key, which its mock refuses: a key that is wrong is still a secret.
const Secret kCustom{"CUSTOM_LLM_TOKEN", "tok-SECRET-custom-0b7e4d19a2c6f835"};
const Secret kSecrets[] = {kOpenAi, kAnthropic, kGemini, kCustom};

// Shorter than this, a piece of a key could occur by chance; longer, and a key cut short (an
// excerpt that ends inside it) would go unnoticed.
constexpr std::size_t kPiece = 12;

// Where `text` holds a key or a piece of one: empty when clean, else what and where, with the
// text around it (test keys, so printing them is fine).
std::string leaks_in(std::string_view text) {
  for (const Secret& s : kSecrets) {
    const std::string_view key = s.value;
    for (std::size_t from = 0; from + kPiece <= key.size(); ++from) {
      const std::size_t at = text.find(key.substr(from, kPiece));
      if (at == std::string_view::npos) continue;
      const std::size_t start = at > 60 ? at - 60 : 0;
      return std::string(s.env) +
             (from == 0 && text.substr(at, key.size()) == key ? "" : " (part)") + " at byte " +
             std::to_string(at) + ": ..." +
             std::string(text.substr(start, at - start + key.size() + 60)) + "...";
    }
  }
  return "";
}

void check_clean(const std::string& where, std::string_view text) {
  INFO(where);
  CHECK(leaks_in(text) == "");
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

unsigned mode_of(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// ---- the faults ----

// Faults that only a streamed request shows.
const char* const kStreamFaults[][2] = {{"sse-cut", "sse_cut"}, {"sse-error", "sse_error"}};

json scenario_for(const std::string& key) {
  json models = json::object();
  for (const Fault& f : faults(key))
    models[f.model] = f.behaviour;
  for (const auto& [model, fault] : kStreamFaults)
    models[model] = {{"fault", fault}};
  json scenario = json::object();
  scenario["models"] = models;
  return scenario;
}

// ---- the world ----

const char* const kProtocols[] = {"openai", "anthropic", "gemini"};
const char* const kEchoProviders[] = {"echo-openai", "echo-anthropic", "echo-gemini"};

std::string provider_toml(const std::string& name, const std::string& base_url,
                          const char* protocol = nullptr, const char* key_env = nullptr) {
  std::string toml = "[providers." + name + "]\nbase_url = \"" + base_url + "\"\n";
  if (protocol) toml += std::string("protocol = \"") + protocol + "\"\n";
  if (key_env) toml += std::string("api_key_env = \"") + key_env + "\"\n";
  return toml + "\n";
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& item : items)
    out += (out.size() > 1 ? ", \"" : "\"") + item + "\"";
  return out + "]";
}

struct World {
  // One mock per protocol, each requiring its own key: a reply other than 401 proves that the
  // key arrived.
  MockServer openai;
  MockServer anthropic;
  MockServer gemini;
  EchoServer echo;
  TempDir dir;
  std::string config;

  // Parentheses, not braces: a braced list would be taken as the scenario itself.
  World()
      : openai(scenario_for(kOpenAi.value), {"--api-key", kOpenAi.value}),
        anthropic(scenario_for(kAnthropic.value), {"--api-key", kAnthropic.value}),
        gemini(scenario_for(kGemini.value), {"--api-key", kGemini.value}) {
    // The known names take their protocol and key variable from detour's defaults.
    std::string toml =
        provider_toml("openai", openai.url() + "/v1") +
        provider_toml("anthropic", anthropic.url()) + provider_toml("gemini", gemini.url()) +
        provider_toml("custom", openai.url() + "/v1", "openai", kCustom.env) +
        provider_toml("dead",
                      "http://127.0.0.1:" + std::to_string(detour::testing::free_port()) + "/v1",
                      "openai", kOpenAi.env);
    const Secret* keys[] = {&kOpenAi, &kAnthropic, &kGemini};
    for (int i = 0; i < 3; ++i) {
      toml += provider_toml(kEchoProviders[i], echo.url(i == 0 ? "/v1" : ""), kProtocols[i],
                            keys[i]->env);
    }
    // Content filters move on here, so one call meets every failure but a bad request.
    toml += "[routes.gauntlet]\non_content_filter = \"next\"\ntargets = " +
            quoted_list(moving_targets()) + "\n";
    config = dir.write("config.toml", toml);
  }

  // Targets whose failure lets a call move on to the next one.
  static std::vector<std::string> moving_targets() {
    std::vector<std::string> out;
    for (const char* p : kProtocols)
      for (const Fault& f : faults(""))
        if (!f.stops) out.push_back(std::string(p) + "/" + f.model);
    for (const char* p : kEchoProviders)
      for (const char* m : kEchoChat)
        if (std::find(std::begin(kEchoStopping), std::end(kEchoStopping), std::string(m)) ==
            std::end(kEchoStopping))
          out.push_back(std::string(p) + "/" + m);
    out.push_back("custom/wrong-key");
    out.push_back("dead/refused");
    return out;
  }

  // Targets that end a call: each gets one of its own.
  static std::vector<std::string> stopping_targets() {
    std::vector<std::string> out;
    for (const char* p : kProtocols)
      for (const Fault& f : faults(""))
        if (f.stops) out.push_back(std::string(p) + "/" + f.model);
    for (const char* p : kEchoProviders)
      for (const char* m : kEchoStopping)
        out.push_back(std::string(p) + "/" + m);
    return out;
  }

  static std::vector<std::string> stream_targets() {
    std::vector<std::string> out;
    for (const char* p : kProtocols)
      for (const auto& [model, fault] : kStreamFaults)
        out.push_back(std::string(p) + "/" + model);
    for (const char* p : kEchoProviders)
      for (const char* m : kEchoStream)
        out.push_back(std::string(p) + "/" + m);
    return out;
  }

  static std::vector<std::string> all_targets() {
    std::vector<std::string> out = moving_targets();
    for (const auto& t : stopping_targets())
      out.push_back(t);
    return out;
  }

  // detour -c CONFIG -vvv --log-format FORMAT ARGS..., every key in the environment, and
  // `home` as HOME (so the state is $XDG_STATE_HOME/detour/state.db under it).
  RunResult detour(const std::string& home, const std::string& format,
                   const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        detour::testing::detour_bin(), "-c", config, "-vvv", "--log-format", format};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions options;
    options.home = home;
    for (const Secret& s : kSecrets)
      options.env[s.env] = s.value;
    return detour::testing::run(argv, options);
  }

  // Every model in `mock_models` reached each protocol's mock with the right key (anything but
  // the key check's 401), and `wrong-key` reached it with the wrong one; with `listings`, each
  // mock also listed its models for the right key. The echo server saw exactly the configured
  // keys, quoted them back, and was asked for each of `echo_models`.
  void check_keys_were_sent(const std::set<std::string>& mock_models,
                            const std::set<std::string>& echo_models, bool listings) {
    struct M {
      MockServer& mock;
      const char* name;
      const char* credential;
    };
    for (M m : {M{openai, "openai", "bearer"}, M{anthropic, "anthropic", "x-api-key"},
                M{gemini, "gemini", "x-goog-api-key"}}) {
      INFO("mock " << m.name);
      const json stats = m.mock.stats();
      std::set<std::string> seen;
      int listed = 0;
      for (const json& r : stats["received"]) {
        const std::string model = r["model"].is_string() ? r["model"].get<std::string>() : "";
        INFO("model " << model << " " << r["path"] << " status " << r["status"]);
        CHECK(r["auth"] == m.credential);
        if (model.empty()) {
          // A model listing: `custom` lists with its wrong key, the others with the right one.
          if (r["status"] == 200) ++listed;
          continue;
        }
        seen.insert(model);
        if (model == "wrong-key") {
          CHECK(r["status"] == 401);
        } else if (model != "auth" && model != "forbidden") {
          CHECK(r["status"] != 401);
        }
      }
      std::set<std::string> want = mock_models;
      if (std::string(m.name) == "openai") want.insert("wrong-key");
      CHECK(seen == want);
      if (listings) CHECK(listed > 0);
    }
    CHECK(echo.keys_seen(Proto::openai) == std::set<std::string>{kOpenAi.value});
    CHECK(echo.keys_seen(Proto::anthropic) == std::set<std::string>{kAnthropic.value});
    CHECK(echo.keys_seen(Proto::gemini) == std::set<std::string>{kGemini.value});
    for (Proto p : {Proto::openai, Proto::anthropic, Proto::gemini})
      CHECK(echo.echoes(p) > 0);
    CHECK(echo.models_seen() == echo_models);
  }
};

std::set<std::string> chat_fault_models() {
  std::set<std::string> out;
  for (const Fault& f : faults(""))
    out.insert(f.model);
  return out;
}

// Every file under `home` (the state store and its -wal/-shm, batch output, anything else
// detour may have written there) is free of keys, byte for byte; the state files are 0600.
void check_files(const std::string& where, const std::string& home) {
  const std::filesystem::path state_dir = std::filesystem::path(home) / ".local/state/detour";
  REQUIRE(std::filesystem::exists(state_dir / "state.db"));
  std::string all;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(home)) {
    if (!entry.is_regular_file()) continue;
    const std::string bytes = read_bytes(entry.path());
    check_clean(where + ": file " + entry.path().string(), bytes);
    all += bytes;
    if (entry.path().parent_path() == state_dir) {
      INFO(entry.path());
      CHECK(mode_of(entry.path()) == 0600);
    }
  }
  // The echoed messages were stored, redacted: the search above looked at them.
  INFO(where);
  CHECK(all.find("[redacted]") != std::string::npos);
}

// `detour limits` reads that state back: it must show the stored, redacted messages and no key.
void check_limits(World& w, const std::string& home, const std::string& format) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"limits"}, std::vector<std::string>{"limits", "--json"}}) {
    const RunResult r = w.detour(home, format, args);
    const std::string where =
        "limits " + std::string(args.size() > 1 ? "--json" : "table") + ", --log-format " + format;
    INFO(where << "\nstderr: " << r.err);
    CHECK(r.exit_code == 0);
    check_clean(where + ": stdout", r.out);
    check_clean(where + ": stderr", r.err);
    // The table shows only each last error's class; --json has its message.
    if (args.size() > 1) CHECK(r.out.find("[redacted]") != std::string::npos);
  }
}

const char* const kFormats[] = {"text", "json"};

}  // namespace

TEST_CASE("secrets: the leak search finds a key, whole or cut, and nothing else", "[secrets]") {
  for (const Secret& s : kSecrets) {
    const std::string key = s.value;
    CHECK(leaks_in("before " + key + " after") != "");
    CHECK(leaks_in("cut at the end: " + key.substr(0, kPiece)) != "");
    CHECK(leaks_in("cut at the start: " + key.substr(key.size() - kPiece)) != "");
    CHECK(leaks_in(std::string("the variable ") + s.env + " and [redacted]") == "");
  }
}

TEST_CASE("secrets: ask at -vvv never shows or stores a key, whatever fails", "[secrets]") {
  World w;
  for (const std::string format : kFormats) {
    INFO("--log-format " << format);
    TempDir home;
    std::vector<RunResult> runs;
    // Every failure that moves on, in one call; --json in the JSON run, so its object is
    // searched too.
    std::vector<std::string> gauntlet = {"ask",       "-m",          "gauntlet",
                                         "--retries", "0",           "--timeout",
                                         "400ms",     "--no-stream", "tell me a secret"};
    if (format == "json") gauntlet.push_back("--json");
    runs.push_back(w.detour(home.path(), format, gauntlet));
    {
      INFO(runs.back().err);
      CHECK(runs.back().exit_code == 1);
    }
    // The failures that end a call, one call each.
    for (const auto& target : World::stopping_targets()) {
      runs.push_back(
          w.detour(home.path(), format, {"ask", "-m", target, "--retries", "0", "tell me"}));
      INFO(target << "\n" << runs.back().err);
      CHECK((runs.back().exit_code == 1 || runs.back().exit_code == 4));
    }
    // Streams fail in their own ways.
    std::string chain;
    for (const auto& t : World::stream_targets())
      chain += (chain.empty() ? "" : ",") + t;
    runs.push_back(w.detour(home.path(), format,
                            {"ask", "-m", chain, "--retries", "0", "--stream", "stream it"}));
    CHECK(runs.back().exit_code == 1);

    std::string err;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      check_clean("ask run " + std::to_string(i) + ": stdout", runs[i].out);
      check_clean("ask run " + std::to_string(i) + ": stderr", runs[i].err);
      err += runs[i].err;
    }
    // -vvv printed the echoed messages, redacted.
    CHECK(err.find("[redacted]") != std::string::npos);
    check_files("ask", home.path());
    check_limits(w, home.path(), format);
  }
  std::set<std::string> models = chat_fault_models();
  for (const auto& [model, fault] : kStreamFaults)
    models.insert(model);
  std::set<std::string> echo_models(std::begin(kEchoChat), std::end(kEchoChat));
  echo_models.insert(std::begin(kEchoStream), std::end(kEchoStream));
  w.check_keys_were_sent(models, echo_models, false);
}

TEST_CASE("secrets: batch at -vvv never writes a key, to its output or its state", "[secrets]") {
  World w;
  // Streams are not batch's: every other failure, one line each, all in one run.
  std::string input;
  for (const auto& target : World::all_targets())
    input += json{{"id", target}, {"prompt", "tell me a secret"}, {"model", target}}.dump() + "\n";
  for (const char* p : kProtocols)
    for (const auto& [model, fault] : kStreamFaults) {
      const std::string target = std::string(p) + "/" + model;
      input += json{{"id", target}, {"prompt", "plain"}, {"model", target}}.dump() + "\n";
    }
  const std::string in = w.dir.write("in.jsonl", input);
  for (const std::string format : kFormats) {
    INFO("--log-format " << format);
    TempDir home;
    // Both output formats: detour's lines with the text logs, OpenAI's with the JSON logs.
    const std::string output_format = format == "text" ? "detour" : "openai";
    const std::string out = home.file("answers.jsonl");
    const RunResult r = w.detour(home.path(), format,
                                 {"batch", in, "-o", out, "--output-format", output_format, "-j",
                                  "16", "--retries", "0", "--timeout", "400ms"});
    INFO(r.err);
    CHECK(r.exit_code == 1);
    check_clean("batch: stdout", r.out);
    check_clean("batch: stderr", r.err);
    CHECK(r.err.find("[redacted]") != std::string::npos);
    const std::string written = home.read("answers.jsonl");
    CHECK(std::count(written.begin(), written.end(), '\n') ==
          std::count(input.begin(), input.end(), '\n'));
    CHECK(written.find("[redacted]") != std::string::npos);
    CHECK(mode_of(out) == 0600);
    check_files("batch", home.path());  // the output file included
    check_limits(w, home.path(), format);
  }
  std::set<std::string> models = chat_fault_models();
  for (const auto& [model, fault] : kStreamFaults)
    models.insert(model);
  w.check_keys_were_sent(models, {std::begin(kEchoChat), std::end(kEchoChat)}, false);
}

TEST_CASE("secrets: health at -vvv never shows a key, in any of its formats", "[secrets]") {
  World w;
  std::vector<std::string> chat = {"health", "--probe", "chat", "--timeout", "400ms"};
  for (const auto& target : World::all_targets())
    chat.push_back(target);
  // Model listings: the mocks' with the right keys (and `custom`'s wrong one), the echo
  // server's quoting the key.
  std::vector<std::string> listings = {"health", "--probe",   "models", "--timeout", "400ms",
                                       "openai", "anthropic", "gemini", "custom",    "dead"};
  for (const char* p : kEchoProviders)
    listings.push_back(p);
  for (const std::string format : kFormats) {
    INFO("--log-format " << format);
    TempDir home;
    struct Run {
      std::vector<std::string> args;
      const char* output;
    };
    // The four output formats, two with each log format.
    const std::vector<Run> runs = format == "text"
                                      ? std::vector<Run>{{chat, "table"}, {listings, "junit"}}
                                      : std::vector<Run>{{chat, "json"}, {listings, "prometheus"}};
    std::string err;
    for (const Run& run : runs) {
      std::vector<std::string> args = run.args;
      args.insert(args.begin() + 1, {"--format", run.output});
      const RunResult r = w.detour(home.path(), format, args);
      const std::string where = std::string("health --format ") + run.output;
      INFO(where << "\n" << r.err);
      CHECK(r.exit_code == 1);
      check_clean(where + ": stdout", r.out);
      check_clean(where + ": stderr", r.err);
      // Prometheus has no messages; the others quote the echoes, redacted.
      if (std::string(run.output) != "prometheus")
        CHECK(r.out.find("[redacted]") != std::string::npos);
      err += r.err;
    }
    CHECK(err.find("[redacted]") != std::string::npos);
    check_files("health", home.path());
    check_limits(w, home.path(), format);
  }
  std::set<std::string> models = chat_fault_models();
  w.check_keys_were_sent(models, {std::begin(kEchoChat), std::end(kEchoChat)}, true);
}

// TLS: the transport pins CURLOPT_SSL_VERIFYPEER and VERIFYHOST on (src/net/curl_util.cpp),
// and no flag, config key or variable turns them off: there is no `--insecure` to warn about.
// Should one be added, this test fails and must become one that it warns on every call.
TEST_CASE("secrets: nothing turns TLS verification off", "[secrets]") {
  World w;
  TempDir home;
  const std::vector<std::vector<std::string>> flags = {
      {"--insecure", "ask", "-m", "openai/ok", "hi"},
      {"ask", "--insecure", "-m", "openai/ok", "hi"},
      {"-k", "ask", "-m", "openai/ok", "hi"},
      {"ask", "--no-verify", "-m", "openai/ok", "hi"},
      {"batch", "--insecure", "-"},
      {"health", "--insecure"},
      {"limits", "--insecure"}};
  for (const auto& args : flags) {
    const RunResult r = w.detour(home.path(), "text", args);
    INFO(args[0] << " " << args[1] << "\n" << r.err);
    CHECK(r.exit_code == 2);
    check_clean("usage error", r.err);
  }
  for (const char* key : {"insecure = true", "verify = false", "tls_verify = false"}) {
    TempDir dir;
    const std::string config =
        dir.write("config.toml",
                  "[providers.openai]\nbase_url = \"" + w.openai.url() + "/v1\"\n" + key + "\n");
    RunOptions options;
    options.env[kOpenAi.env] = kOpenAi.value;
    const RunResult r = detour::testing::run(
        {detour::testing::detour_bin(), "-c", config, "ask", "-m", "openai/ok", "hi"}, options);
    INFO(key << "\n" << r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("unknown key") != std::string::npos);
  }
  CHECK(w.openai.stats()["requests"] == 0);
}
