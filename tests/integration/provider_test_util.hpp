#pragma once
// Shared by the provider feature tests (test_provider_headers.cpp, test_azure_e2e.cpp,
// test_key_command.cpp, test_network.cpp, test_secrets_providers.cpp, test_model_catalog_e2e.cpp):
// running detour with a config, reading what detour-mock received, executable scripts for
// api_key_cmd, and searching text for secrets. Header-only.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "test_mock_util.hpp"

namespace detour::testing::providers {

using nlohmann::json;

// detour -c CONFIG ARGS... with exactly `env` added to the harness's minimal environment.
inline RunResult run_detour(const std::string& config, const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env = {},
                            const std::string& home = "") {
  std::vector<std::string> argv = {detour_bin()};
  if (!config.empty()) {
    argv.push_back("-c");
    argv.push_back(config);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  options.env = env;
  options.home = home;
  options.timeout = std::chrono::milliseconds(20000);
  return run(argv, options);
}

// The --json object on stdout; {"unparsable_stdout": ...} when it is not JSON, so that a CHECK
// on it fails with the text in view instead of throwing.
inline json json_out(const RunResult& r) {
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return json{{"unparsable_stdout", r.out}};
  return j;
}

// The JSON lines of a `detour batch` output, by id.
inline std::map<std::string, json> batch_lines(const std::string& out) {
  std::map<std::string, json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("id")) lines[j["id"].get<std::string>()] = j;
  }
  return lines;
}

// What the mock received, once every request it is still answering has ended.
inline json received(MockServer& mock) {
  return mock_util::settled_stats(mock)["received"];
}

// A field of a received request ("headers" or "query"); null when absent.
inline json field(const json& request, const std::string& group, const std::string& name) {
  if (!request.contains(group) || !request[group].contains(name)) return nullptr;
  return request[group][name];
}

// provider/model names of --json attempts, in order.
inline std::vector<std::string> attempt_targets(const json& j) {
  std::vector<std::string> out;
  if (!j.contains("attempts") || !j["attempts"].is_array()) return out;
  for (const json& a : j["attempts"])
    out.push_back(a["provider"].get<std::string>() + "/" + a["model"].get<std::string>());
  return out;
}

// Writes an executable /bin/sh script into `dir` and returns its path.
inline std::string write_script(const TempDir& dir, const std::string& name,
                                const std::string& body) {
  const std::string path = dir.write(name, "#!/bin/sh\n" + body);
  ::chmod(path.c_str(), 0755);
  return path;
}

// Lines in a file; 0 when it does not exist (a counter a script appends to).
inline int lines_in(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);)
    ++n;
  return n;
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every regular file under `root`, concatenated (the state store with its -wal and -shm files,
// batch output, anything else detour wrote there).
inline std::string all_files_under(const std::string& root) {
  std::string all;
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root, ec)) {
    if (entry.is_regular_file()) all += read_bytes(entry.path());
  }
  return all;
}

// Shorter than this, a piece of a secret could occur by chance; longer, and a secret cut short
// (an excerpt that ends inside it) would go unnoticed.
constexpr std::size_t kPiece = 12;

// Where `text` holds one of `secrets` or a kPiece-long piece of one: "" when clean, else which
// and the text around it (test values, so printing them is fine).
inline std::string leak_in(std::string_view text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    const std::string_view s = secret;
    const std::size_t piece = std::min(kPiece, s.size());
    for (std::size_t from = 0; from + piece <= s.size(); ++from) {
      const std::size_t at = text.find(s.substr(from, piece));
      if (at == std::string_view::npos) continue;
      const std::size_t start = at > 60 ? at - 60 : 0;
      return secret + " at byte " + std::to_string(at) + ": ..." +
             std::string(text.substr(start, at - start + s.size() + 60)) + "...";
    }
  }
  return "";
}

}  // namespace detour::testing::providers
