#pragma once
// The per-request options `ask` and `batch` share (README, "detour ask" and "detour batch"):
// one definition of each flag, and one way of turning them into the defaults of a CallSpec.
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/settings.hpp"
#include "engine/call.hpp"
#include "engine/validate.hpp"

namespace CLI {
class App;
}

namespace detour::cli {

struct RequestOptions {
  std::vector<std::string> models;  // -m
  std::string system;               // -s
  std::optional<int64_t> max_tokens;
  std::optional<double> temperature;
  std::vector<std::string> params;  // -o / --option KEY=VALUE
  std::string timeout;              // --timeout DUR
  std::string deadline;             // --deadline DUR
  bool no_fallback = false;
  bool no_degrade = false;
  std::optional<int> retries;     // --retries N
  std::string schema_file;        // --schema FILE
  bool require_complete = false;  // --require-complete
  bool truncate = false;          // --truncate
};

// Adds the flags above to a subcommand (config::Scope::ask or ::batch, whose extra-field flag
// differs: -o,--option for ask, --option for batch, where -o is the output file).
void add_request_options(CLI::App& command, RequestOptions& options, config::Scope subcommand);

// Reads --schema FILE; throws UsageError naming the file.
nlohmann::json read_schema_file(const std::string& path);

// -o KEY=VALUE: VALUE is JSON when it parses as JSON (numbers, true, objects), else a string.
// Throws UsageError naming the flag (`flag`: batch calls it --option).
nlohmann::json parse_extra_params(const std::vector<std::string>& params,
                                  const std::string& flag = "-o");

// Drops the targets below the route's min_tier; throws ConfigError when none is left.
void apply_min_tier(config::Chain& chain);

// The flags (or, where one is absent, the config's [defaults]) as a CallSpec without a chain
// or messages: what every request of the command starts from. `schema` is the --schema
// validator, which must outlive every call made from the spec.
engine::CallSpec base_call_spec(const RequestOptions& options, const config::Config& config,
                                const nlohmann::json& extra, const engine::SchemaValidator* schema);

}  // namespace detour::cli
