#include "cli/ask.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/ask_observer.hpp"
#include "cli/complete.hpp"
#include "cli/engine_setup.hpp"
#include "cli/flags.hpp"
#include "cli/options.hpp"
#include "core/error.hpp"
#include "io/interrupt.hpp"
#include "io/prompt.hpp"

namespace detour::cli {

void add_ask_options(CLI::App& command, AskOptions& o) {
  command.fallthrough();
  using config::Scope;
  add_setting(command, Scope::ask, "prompt", o.words);
  add_request_options(command, o.request, Scope::ask);
  add_setting(command, Scope::ask, "file", o.files)->allow_extra_args(false);
  add_switch(command, Scope::ask, "json", o.json);
  auto* stream = add_switch(command, Scope::ask, "stream", o.stream);
  add_switch(command, Scope::ask, "no-stream", o.no_stream)->excludes(stream);
  add_setting(command, Scope::ask, "first-token-timeout", o.first_token_timeout);
  add_setting(command, Scope::ask, "hedge", o.hedge)->expected(0, 1);
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

}  // namespace

int run_ask(const GlobalOptions& global, const AskOptions& options) {
  io::Logger log(global.log_settings());
  const auto env = config::process_env();
  AskOptions o = options;

  // Usage errors (exit 2) come before configuration errors (exit 3).
  const bool stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  const nlohmann::json extra = parse_extra_params(o.request.params);
  const std::optional<Millis> hedge_after = hedge_flag(o, o.words);
  const std::optional<Millis> first_token_timeout =
      o.first_token_timeout.empty()
          ? std::nullopt
          : std::optional<Millis>(
                duration_flag("--first-token-timeout", o.first_token_timeout, Millis(0)));
  std::optional<engine::SchemaValidator> schema;
  if (!o.request.schema_file.empty()) {
    schema.emplace(read_schema_file(o.request.schema_file), "--schema " + o.request.schema_file);
  }
  std::string prompt = io::assemble_prompt({o.words, o.files}, io::system_prompt_input());

  config::Config config = config::load_config(global.config_path, env);
  engine::CallSpec spec = base_call_spec(o.request, config, extra, schema ? &*schema : nullptr);
  config::Chain chain = config::resolve_chain(config, o.request.models, env);
  apply_min_tier(chain);
  spec.request.messages.push_back({"user", std::move(prompt)});
  spec.chain = chain;
  spec.first_token_timeout = first_token_timeout;
  spec.hedge = o.hedge.has_value();
  spec.hedge_after = hedge_after;
  spec.route_moves_on_content_filter = chain.next_on_content_filter;
  // A terminal gets tokens as they arrive; a pipe gets a complete answer or nothing.
  // --json prints one object at the end, so it streams on the wire only when asked to.
  // --first-token-timeout and --hedge are about the first token, which only a stream shows:
  // with either, the wire streams (unless --no-stream) even when the output is buffered.
  const bool print_live = (o.stream || (!o.no_stream && !o.json && stdout_is_tty)) && !o.json;
  spec.stream = o.stream || print_live ||
                (!o.no_stream && (first_token_timeout.has_value() || o.hedge.has_value()));

  EngineSetup engine = setup_engine(global, config, env, log);
  AskObserver observer(log, print_live);
  auto transport = net::make_curl_transport(global.transport_options());
  const net::Clock& clock = *engine.clock;
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
  log.error(failure_text(result));
  return engine::exit_code_for_failure(result);
}

}  // namespace detour::cli
