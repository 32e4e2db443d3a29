#pragma once
// `detour ask`: one prompt, one answer (README, "detour ask").
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/global_options.hpp"
#include "cli/request_options.hpp"
#include "engine/call.hpp"

namespace CLI {
class App;
}

namespace detour::cli {

struct AskOptions {
  RequestOptions request;          // -m, -s, --max-tokens, -o, --timeout, --retries, ...
  std::vector<std::string> words;  // PROMPT...
  std::vector<std::string> files;  // -f
  bool json = false;
  bool stream = false;
  bool no_stream = false;
  std::string first_token_timeout;   // --first-token-timeout DUR
  std::optional<std::string> hedge;  // --hedge[=DUR]: "" when given without a duration
};

// The options of `detour ask` on its subcommand (named and described in app.cpp).
void add_ask_options(CLI::App& command, AskOptions& options);
int run_ask(const GlobalOptions& global, const AskOptions& options);

// The error line of a failed call: "CLASS: TARGET: why", and when other targets were tried
// before the one that ended it, what each of them last failed with, in the order they were
// tried -- "; before it: openai/gpt-4o connection, anthropic/claude overloaded (529)".
std::string failure_text(const engine::CallResult& result);

// The --json object (README, "detour ask").
nlohmann::ordered_json result_to_json(const engine::CallResult& result, const config::Chain& chain);

}  // namespace detour::cli
