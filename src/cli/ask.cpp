#include "cli/ask.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

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
  ask->add_flag("--no-fallback", o.no_fallback, "Use only the first target of the chain");
  ask->add_flag("--no-degrade", o.no_degrade,
                "Never move to a target of a lower tier than the first");
  return ask;
}

nlohmann::json parse_extra_params(const std::vector<std::string>& params) {
  nlohmann::json extra = nlohmann::json::object();
  for (const auto& param : params) {
    auto eq = param.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw UsageError("-o " + param + ": expected KEY=VALUE");
    }
    std::string key = param.substr(0, eq);
    std::string value = param.substr(eq + 1);
    auto parsed = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
    extra[key] = parsed.is_discarded() ? nlohmann::json(value) : parsed;
  }
  return extra;
}

namespace {

Millis duration_flag(const std::string& flag, const std::string& value, Millis fallback) {
  if (value.empty()) return fallback;
  auto parsed = parse_duration(value);
  if (!parsed || parsed->count() <= 0) {
    throw UsageError(flag + ": not a duration: \"" + value + "\" (use e.g. 250ms, 30s, 5m, 1h)");
  }
  return *parsed;
}

// Drops targets the flags forbid: --no-fallback keeps the first, --no-degrade keeps those
// whose tier is not below the first's (unknown tiers are kept: we cannot know they are worse).
void apply_chain_flags(config::Chain& chain, const AskOptions& o) {
  if (o.no_fallback && chain.targets.size() > 1) chain.targets.resize(1);
  std::optional<int> floor = chain.min_tier;
  if (o.no_degrade && chain.targets.front().model.tier) {
    floor = std::max(floor.value_or(0), *chain.targets.front().model.tier);
  }
  if (!floor) return;
  std::vector<config::ResolvedTarget> kept;
  for (auto& target : chain.targets) {
    if (!target.model.tier || *target.model.tier >= *floor) kept.push_back(std::move(target));
  }
  if (kept.empty()) {
    throw ConfigError("no target of the chain has tier " + std::to_string(*floor) + " or above");
  }
  chain.targets = std::move(kept);
}

// Prints streamed text as it arrives and one stderr line per attempt decision.
class AskObserver final : public engine::CallObserver {
 public:
  AskObserver(io::Logger& log, bool print_live) : log_(log), print_live_(print_live) {}

  void on_attempt_start(const config::ResolvedTarget& target, int number) override {
    log_.verbose(
        2, "attempt " + std::to_string(number) + ": " + target.target.name() + ": sending",
        {{"event", "attempt_start"}, {"attempt", number}, {"target", target.target.name()}});
    number_ = number;
    last_char_ = '\n';
  }

  void on_text(std::string_view text) override {
    if (!print_live_ || text.empty()) return;
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    printed_ = true;
    last_char_ = text.back();
  }

  void on_attempt_end(const engine::AttemptRecord& a, std::string_view decision) override {
    const bool ok = a.error == engine::ErrorClass::none;
    std::string status = a.status ? std::to_string(*a.status) : "no reply";
    std::string line =
        "attempt " + std::to_string(number_) + ": " + a.provider + "/" + a.model + ": " + status;
    if (!ok) line += " " + std::string(engine::to_string(a.error)) + " (" + a.message + ")";
    line += " in " + format_duration(a.latency) + ": " + std::string(decision);
    log_.verbose(
        1, line,
        {{"event", "attempt"},
         {"attempt", number_},
         {"target", a.provider + "/" + a.model},
         {"status", a.status ? nlohmann::json(*a.status) : nlohmann::json(nullptr)},
         {"error", ok ? nlohmann::json(nullptr) : nlohmann::json(engine::to_string(a.error))},
         {"latency_ms", a.latency.count()},
         {"decision", decision}});
    if (!ok && a.printed_text && print_live_) {
      end_line();
      log_.warning("the stream from " + a.provider + "/" + a.model +
                   " broke after its text was printed; the next answer follows in full");
    }
  }

  // Ends the live output with a newline so the shell prompt starts on its own line.
  void end_line() {
    if (printed_ && last_char_ != '\n') std::fputc('\n', stdout);
    last_char_ = '\n';
    std::fflush(stdout);
  }

  bool printed() const { return printed_; }

 private:
  io::Logger& log_;
  bool print_live_;
  bool printed_ = false;
  char last_char_ = '\n';
  int number_ = 0;
};

}  // namespace

int run_ask(const GlobalOptions& global, const AskOptions& o) {
  io::Logger log(global.log_settings());
  const auto env = config::process_env();

  // Usage errors (exit 2) come before configuration errors (exit 3).
  const bool stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  const nlohmann::json extra = parse_extra_params(o.params);
  std::string prompt = io::assemble_prompt({o.words, o.files}, io::system_prompt_input());

  config::Config config = config::load_config(global.config_path, env);
  const Millis timeout = duration_flag("--timeout", o.timeout, config.defaults.timeout);
  const Millis deadline = duration_flag("--deadline", o.deadline, config.defaults.deadline);
  config::Chain chain = config::resolve_chain(config, o.models, env);
  apply_chain_flags(chain, o);

  engine::CallSpec spec;
  spec.request.system = o.system;
  spec.request.messages.push_back({"user", std::move(prompt)});
  spec.request.max_tokens = o.max_tokens ? o.max_tokens : config.defaults.max_tokens;
  spec.request.temperature = o.temperature ? o.temperature : config.defaults.temperature;
  spec.request.extra = extra;
  spec.chain = chain;
  spec.timeout = timeout;
  spec.deadline = deadline;
  // A terminal gets tokens as they arrive; a pipe gets a complete answer or nothing.
  // --json prints one object at the end, so it streams on the wire only when asked to.
  spec.stream = o.stream || (!o.no_stream && !o.json && stdout_is_tty);
  const bool print_live = spec.stream && !o.json;

  AskObserver observer(log, print_live);
  auto transport = net::make_curl_transport();
  net::SystemClock clock;
  engine::CallResult result = [&] {
    io::StopLoopOnInterrupt stop_on_interrupt(*transport);
    return engine::run_call(*transport, clock, std::move(spec), observer);
  }();

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

  if (result.ok) {
    if (result.degraded) {
      log.warning("degraded: answered by " + result.target->target.name() + ", a lower tier than " +
                  chain.targets.front().target.name());
    }
    return 0;
  }
  log.error(std::string(engine::to_string(result.error)) + ": " + result.message);
  return engine::exit_code_for_failure(result);
}

}  // namespace detour::cli
