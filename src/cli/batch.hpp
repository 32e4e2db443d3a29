#pragma once
// `detour batch`: a JSONL file of requests through the APIs, one output line per input line
// (README, "detour batch").
#include <optional>
#include <string>

#include "cli/global_options.hpp"
#include "cli/request_options.hpp"

namespace CLI {
class App;
}

namespace detour::cli {

struct BatchOptions {
  RequestOptions request;                // -m, -s, --max-tokens, --option, --retries, ...
  std::string input;                     // INPUT, or - for stdin
  std::string output;                    // -o FILE; empty: stdout
  std::optional<std::size_t> jobs;       // -j N
  bool resume = false;                   // --resume
  bool unordered = false;                // --unordered
  std::string output_format = "detour";  // --output-format detour|openai
  std::string progress = "bar";          // --progress bar|plain|none
  std::optional<double> max_cost;        // --max-cost USD
  bool dry_run = false;                  // --dry-run
  std::string shard;                     // --shard K/N; empty: every line
};

// The options of `detour batch` on its subcommand (named and described in app.cpp).
void add_batch_options(CLI::App& command, BatchOptions& options);
int run_batch(const GlobalOptions& global, const BatchOptions& options);

}  // namespace detour::cli
