#include "cli/ask.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include <fstream>
#include <sstream>

#include "cli/ask_observer.hpp"
#include "cli/engine_setup.hpp"
#include "cli/flags.hpp"
#include "core/error.hpp"
#include "io/interrupt.hpp"
#include "io/prompt.hpp"

namespace detour::cli {

CLI::App* add_ask_command(CLI::App& app, AskOptions& o) {
  CLI::App* ask = app.add_subcommand("ask", "One prompt, one answer");
  ask->fallthrough();
  ask->add_option("prompt", o.words, "Prompt words (joined by spaces)");
  ask->add_option("-m,--model", o.models,
                  "Route, provider/model or model; repeat (or a,b,c) for a fallback chain")
      ->allow_extra_args(false);
  ask->add_option("-s,--system", o.system, "System prompt");
  ask->add_option("-f,--file", o.files, "Append a file's contents to the prompt (- is stdin)")
      ->allow_extra_args(false);
  ask->add_option("--max-tokens", o.max_tokens, "Maximum answer tokens")
      ->check(CLI::PositiveNumber);
  ask->add_option("--temperature", o.temperature, "Sampling temperature")
      ->check(CLI::Range(0.0, 2.0));
  ask->add_option("-o,--option", o.params, "Extra request body parameter KEY=VALUE (repeatable)")
      ->allow_extra_args(false);
  ask->add_flag("--json", o.json, "Print one JSON object with the answer, usage and attempts");
  auto* stream = ask->add_flag("--stream", o.stream, "Stream the answer, even into a pipe");
  ask->add_flag("--no-stream", o.no_stream, "Print the answer once complete, even on a terminal")
      ->excludes(stream);
  ask->add_option("--timeout", o.timeout, "One attempt's time limit (default 60s)");
  ask->add_option("--deadline", o.deadline, "The whole call's time limit (default 5m)");
  ask->add_flag("--no-fallback", o.no_fallback,
                "Use only the first target (after the route's strategy ordered them)");
  ask->add_flag("--no-degrade", o.no_degrade,
                "Never move to a target of a lower tier than the first the strategy picks");
  ask->add_option("--retries", o.retries, "Retries per target for transient errors (default 2)")
      ->check(CLI::Range(0, 100));
  ask->add_option("--schema", o.schema_file,
                  "JSON Schema file the answer must match (asks for JSON output)");
  ask->add_flag("--require-complete", o.require_complete,
                "An answer cut at max tokens is a failed attempt (truncated)");
  ask->add_flag("--truncate", o.truncate,
                "Drop the oldest messages to fit the smallest context window of the chain");
  ask->add_option("--first-token-timeout", o.first_token_timeout,
                  "An attempt with no first token by then is a timeout and moves on");
  ask->add_option("--hedge", o.hedge,
                  "Also ask the next target when the first has no first token by DUR "
                  "(default: its observed p95); write --hedge=DUR")
      ->expected(0, 1);
  return ask;
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

void refuse_owned(const std::string& param, std::string_view key) {
  if (const OwnedField* field = owned_field(key)) {
    throw UsageError("-o " + param + ": detour sets " + std::string(key) + " itself; use " +
                     std::string(field->instead) + " instead");
  }
}

}  // namespace

nlohmann::json parse_extra_params(const std::vector<std::string>& params) {
  nlohmann::json extra = nlohmann::json::object();
  for (const auto& param : params) {
    auto eq = param.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw UsageError("-o " + param + ": expected KEY=VALUE");
    }
    std::string key = param.substr(0, eq);
    std::string value = param.substr(eq + 1);
    refuse_owned(param, key);
    auto parsed = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
    // Gemini's generationConfig object is merged into the one detour builds.
    if (key == "generationConfig" || key == "generation_config") {
      if (parsed.is_object()) {
        for (const auto& [inner, unused] : parsed.items())
          refuse_owned(param, inner);
      }
    }
    extra[key] = parsed.is_discarded() ? nlohmann::json(value) : parsed;
  }
  return extra;
}

namespace {

// --hedge takes an optional duration, so `ask --hedge what is x` hands it "what": a value that
// is not a duration was the prompt's first word, and goes back there.
std::optional<Millis> hedge_flag(AskOptions& o, std::vector<std::string>& words) {
  if (!o.hedge || o.hedge->empty()) return std::nullopt;
  auto parsed = parse_duration(*o.hedge);
  if (parsed && parsed->count() > 0) return parsed;
  words.insert(words.begin(), *o.hedge);
  return std::nullopt;
}

nlohmann::json read_schema(const std::string& path) {
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

// Drops the targets below the route's min_tier (unknown tiers are kept: we cannot know they
// are worse). --no-fallback and --no-degrade are about the first target the route's strategy
// picks, so the call applies them once it has ordered the chain.
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

}  // namespace

int run_ask(const GlobalOptions& global, const AskOptions& options) {
  io::Logger log(global.log_settings());
  const auto env = config::process_env();
  AskOptions o = options;

  // Usage errors (exit 2) come before configuration errors (exit 3).
  const bool stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  const nlohmann::json extra = parse_extra_params(o.params);
  const std::optional<Millis> hedge_after = hedge_flag(o, o.words);
  const std::optional<Millis> first_token_timeout =
      o.first_token_timeout.empty()
          ? std::nullopt
          : std::optional<Millis>(
                duration_flag("--first-token-timeout", o.first_token_timeout, Millis(0)));
  std::optional<engine::SchemaValidator> schema;
  if (!o.schema_file.empty())
    schema.emplace(read_schema(o.schema_file), "--schema " + o.schema_file);
  std::string prompt = io::assemble_prompt({o.words, o.files}, io::system_prompt_input());

  config::Config config = config::load_config(global.config_path, env);
  const Millis timeout = duration_flag("--timeout", o.timeout, config.defaults.timeout);
  const Millis deadline = duration_flag("--deadline", o.deadline, config.defaults.deadline);
  config::Chain chain = config::resolve_chain(config, o.models, env);
  apply_min_tier(chain);

  engine::CallSpec spec;
  spec.request.system = o.system;
  spec.request.messages.push_back({"user", std::move(prompt)});
  spec.request.max_tokens = o.max_tokens ? o.max_tokens : config.defaults.max_tokens;
  spec.request.temperature = o.temperature ? o.temperature : config.defaults.temperature;
  spec.request.extra = extra;
  if (schema) spec.request.schema = schema->schema();
  spec.chain = chain;
  spec.timeout = timeout;
  spec.deadline = deadline;
  spec.retries = o.retries.value_or(config.defaults.retries);
  spec.first_token_timeout = first_token_timeout;
  spec.hedge = o.hedge.has_value();
  spec.hedge_after = hedge_after;
  spec.truncate = o.truncate;
  spec.no_fallback = o.no_fallback;
  spec.no_degrade = o.no_degrade;
  spec.route_moves_on_content_filter = chain.next_on_content_filter;
  spec.validation.require_complete = o.require_complete;
  spec.validation.schema = schema ? &*schema : nullptr;
  // A terminal gets tokens as they arrive; a pipe gets a complete answer or nothing.
  // --json prints one object at the end, so it streams on the wire only when asked to.
  // --first-token-timeout and --hedge are about the first token, which only a stream shows:
  // with either, the wire streams (unless --no-stream) even when the output is buffered.
  const bool print_live = (o.stream || (!o.no_stream && !o.json && stdout_is_tty)) && !o.json;
  spec.stream = o.stream || print_live ||
                (!o.no_stream && (first_token_timeout.has_value() || o.hedge.has_value()));

  EngineSetup engine = setup_engine(global, config, env, log);
  AskObserver observer(log, print_live);
  auto transport = net::make_curl_transport();
  net::SystemClock clock;
  engine::CallResult result = [&] {
    io::StopLoopOnInterrupt stop_on_interrupt(*transport);
    return engine::run_call({*transport, clock, *engine.state, engine.rng}, std::move(spec),
                            observer);
  }();
  if (result.truncated_messages > 0 || result.truncated_text) {
    log.warning("--truncate: dropped " + std::to_string(result.truncated_messages) +
                " oldest message(s)" +
                (result.truncated_text ? " and the start of the prompt" : std::string()) +
                " to fit the smallest context window of the chain");
  }

  if (o.json) {
    std::string out = result_to_json(result, chain)
                          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fputc('\n', stdout);
  } else if (result.ok && !print_live) {
    const std::string& content = result.reply.content;
    std::fwrite(content.data(), 1, content.size(), stdout);
    if (content.empty() || content.back() != '\n') std::fputc('\n', stdout);
  } else {
    observer.end_line();
  }
  std::fflush(stdout);
  // What the call taught the shared state is written now that the answer is out: a one-shot
  // ask's second and last store transaction (docs/architecture.md, "Shared state").
  engine.state->flush();

  if (result.ok) {
    if (result.degraded) {
      log.warning("degraded: answered by " + result.target->target.name() + ", a lower tier than " +
                  result.first_target.value_or(chain.targets.front().target.name()));
    }
    return 0;
  }
  log.error(std::string(engine::to_string(result.error)) + ": " + result.message);
  return engine::exit_code_for_failure(result);
}

}  // namespace detour::cli
