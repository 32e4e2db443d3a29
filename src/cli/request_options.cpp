#include "cli/request_options.hpp"

#include <CLI/CLI.hpp>
#include <fstream>
#include <sstream>

#include "cli/flags.hpp"
#include "cli/options.hpp"
#include "core/error.hpp"

namespace detour::cli {

void add_request_options(CLI::App& cmd, RequestOptions& o, config::Scope command) {
  using config::Scope;
  add_setting(cmd, Scope::request, "model", o.models)->allow_extra_args(false);
  add_setting(cmd, Scope::request, "system", o.system);
  add_setting(cmd, Scope::request, "max-tokens", o.max_tokens)->check(CLI::PositiveNumber);
  add_setting(cmd, Scope::request, "temperature", o.temperature)->check(CLI::Range(0.0, 2.0));
  // -o,--option for ask; batch's -o is its output file.
  add_setting(cmd, command, "option", o.params)->allow_extra_args(false);
  add_setting(cmd, Scope::request, "timeout", o.timeout);
  add_setting(cmd, Scope::request, "deadline", o.deadline);
  add_switch(cmd, Scope::request, "no-fallback", o.no_fallback);
  add_switch(cmd, Scope::request, "no-degrade", o.no_degrade);
  add_setting(cmd, Scope::request, "retries", o.retries)->check(CLI::Range(0, config::kMaxRetries));
  add_setting(cmd, Scope::request, "schema", o.schema_file);
  add_switch(cmd, Scope::request, "require-complete", o.require_complete);
  add_switch(cmd, Scope::request, "truncate", o.truncate);
}

namespace {

// Body fields detour writes itself, and the flag that sets each. Letting -o replace one
// breaks the exchange: `stream` without --stream makes detour read an SSE body as JSON, and a
// token limit under the other name sends both max_tokens and max_completion_tokens.
struct OwnedField {
  std::string_view key;
  std::string_view instead;
};
constexpr OwnedField kOwnedFields[] = {
    {"model", "-m"},
    {"messages", "the prompt (words, -f or stdin) and -s"},
    {"contents", "the prompt (words, -f or stdin)"},
    {"system", "-s"},
    {"systemInstruction", "-s"},
    {"system_instruction", "-s"},
    {"stream", "--stream or --no-stream"},
    {"stream_options", "--stream (detour asks for usage in every stream)"},
    {"max_tokens", "--max-tokens"},
    {"max_completion_tokens", "--max-tokens"},
    {"maxOutputTokens", "--max-tokens"},
    {"max_output_tokens", "--max-tokens"},
};

const OwnedField* owned_field(std::string_view key) {
  for (const auto& field : kOwnedFields) {
    if (field.key == key) return &field;
  }
  return nullptr;
}

void refuse_owned(const std::string& flag, const std::string& param, std::string_view key) {
  if (const OwnedField* field = owned_field(key)) {
    throw UsageError(flag + " " + param + ": detour sets " + std::string(key) + " itself; use " +
                     std::string(field->instead) + " instead");
  }
}

}  // namespace

nlohmann::json parse_extra_params(const std::vector<std::string>& params, const std::string& flag) {
  nlohmann::json extra = nlohmann::json::object();
  for (const auto& param : params) {
    auto eq = param.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw UsageError(flag + " " + param + ": expected KEY=VALUE");
    }
    std::string key = param.substr(0, eq);
    std::string value = param.substr(eq + 1);
    refuse_owned(flag, param, key);
    auto parsed = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
    // Gemini's generationConfig object is merged into the one detour builds.
    if (key == "generationConfig" || key == "generation_config") {
      if (parsed.is_object()) {
        for (const auto& [inner, unused] : parsed.items())
          refuse_owned(flag, param, inner);
      }
    }
    extra[key] = parsed.is_discarded() ? nlohmann::json(value) : parsed;
  }
  return extra;
}

nlohmann::json read_schema_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("--schema " + path + ": cannot read the file");
  std::stringstream text;
  text << in.rdbuf();
  auto schema = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) throw UsageError("--schema " + path + ": not valid JSON");
  if (!schema.is_object() && !schema.is_boolean()) {
    throw UsageError("--schema " + path + ": a JSON Schema is an object (or true/false)");
  }
  return schema;
}

// Unknown tiers are kept: we cannot know they are worse. --no-fallback and --no-degrade are
// about the first target the route's strategy picks, so the call applies them once it has
// ordered the chain.
void apply_min_tier(config::Chain& chain) {
  if (!chain.min_tier) return;
  const int floor = *chain.min_tier;
  std::vector<config::ResolvedTarget> kept;
  for (auto& target : chain.targets) {
    if (!target.model.tier || *target.model.tier >= floor) kept.push_back(std::move(target));
  }
  if (kept.empty()) {
    throw ConfigError("no target of the chain has tier " + std::to_string(floor) + " or above");
  }
  chain.targets = std::move(kept);
}

engine::CallSpec base_call_spec(const RequestOptions& o, const config::Config& config,
                                const nlohmann::json& extra,
                                const engine::SchemaValidator* schema) {
  engine::CallSpec spec;
  spec.request.system = o.system;
  spec.request.max_tokens = o.max_tokens ? o.max_tokens : config.defaults.max_tokens;
  spec.request.temperature = o.temperature ? o.temperature : config.defaults.temperature;
  spec.request.extra = extra;
  if (schema) spec.request.schema = schema->schema();
  spec.timeout = duration_flag("--timeout", o.timeout, config.defaults.timeout);
  spec.deadline = duration_flag("--deadline", o.deadline, config.defaults.deadline);
  spec.retries = o.retries.value_or(config.defaults.retries);
  spec.truncate = o.truncate;
  spec.no_fallback = o.no_fallback;
  spec.no_degrade = o.no_degrade;
  spec.validation.require_complete = o.require_complete;
  spec.validation.schema = schema;
  return spec;
}

}  // namespace detour::cli
