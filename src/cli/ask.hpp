#pragma once
// `detour ask`: one prompt, one answer (README, "detour ask").
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/global_options.hpp"
#include "engine/call.hpp"

namespace CLI {
class App;
}

namespace detour::cli {

struct AskOptions {
  std::vector<std::string> words;   // PROMPT...
  std::vector<std::string> files;   // -f
  std::vector<std::string> models;  // -m
  std::string system;               // -s
  std::optional<int64_t> max_tokens;
  std::optional<double> temperature;
  std::vector<std::string> params;  // -o KEY=VALUE
  bool json = false;
  bool stream = false;
  bool no_stream = false;
  std::string timeout;   // --timeout DUR
  std::string deadline;  // --deadline DUR
  bool no_fallback = false;
  bool no_degrade = false;
  std::optional<int> retries;        // --retries N
  std::string schema_file;           // --schema FILE
  bool require_complete = false;     // --require-complete
  bool truncate = false;             // --truncate
  std::string first_token_timeout;   // --first-token-timeout DUR
  std::optional<std::string> hedge;  // --hedge[=DUR]: "" when given without a duration
};

CLI::App* add_ask_command(CLI::App& app, AskOptions& options);
int run_ask(const GlobalOptions& global, const AskOptions& options);

// -o KEY=VALUE: VALUE is JSON when it parses as JSON (numbers, true, objects), else a string.
// Throws UsageError naming the flag.
nlohmann::json parse_extra_params(const std::vector<std::string>& params);

// The --json object (README, "detour ask").
nlohmann::ordered_json result_to_json(const engine::CallResult& result, const config::Chain& chain);

}  // namespace detour::cli
