#include "config/settings.hpp"

#include <stdexcept>

namespace detour::config {

namespace {

std::vector<Setting> make_settings() {
  using S = Scope;
  // The value names FILE, MODEL and NAME are what completion keys on (cli/complete.hpp); an
  // empty value keeps CLI11's own (TEXT, INT, ...) and the allowed words of an IsMember check.
  return {
      {S::global, "-c,--config", "FILE", "Config file", "$XDG_CONFIG_HOME/detour/config.toml", "",
       "DETOUR_CONFIG"},
      {S::global, "--state", "",
       "Shared state: sqlite (default), sqlite:///ABS/PATH, sqlite:REL/PATH, memory, "
       "redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS; "
       "?ca_bundle=PEM&cert=PEM&key=PEM)",
       "", "state", "DETOUR_STATE"},
      {S::global, "-v,--verbose", "",
       "Print every attempt and decision on stderr (repeat for more)", "", "", ""},
      {S::global, "-q,--quiet", "", "Only errors on stderr", "", "", ""},
      {S::global, "--log-format", "", "stderr lines as text or JSON objects", "text", "", ""},
      {S::global, "--no-color", "", "No colour; also when TERM=dumb or stderr is not a terminal",
       "", "", "NO_COLOR"},

      {S::request, "-m,--model", "MODEL",
       "Route, provider/model or model; repeat (or a,b,c) for a fallback chain", "", "model",
       "DETOUR_MODEL"},
      {S::request, "-s,--system", "", "System prompt", "", "", ""},
      {S::request, "--max-tokens", "", "Maximum answer tokens", "", "max_tokens", ""},
      {S::request, "--temperature", "", "Sampling temperature", "", "temperature", ""},
      {S::request, "--timeout", "", "One attempt's time limit", format_duration(kDefaultTimeout),
       "timeout", "DETOUR_TIMEOUT"},
      {S::request, "--deadline", "", "The whole call's time limit",
       format_duration(kDefaultDeadline), "deadline", "DETOUR_DEADLINE"},
      {S::request, "--no-fallback", "",
       "Use only the first target (after the route's strategy ordered them)", "", "", ""},
      {S::request, "--no-degrade", "",
       "Never move to a target of a lower tier than the first the strategy picks", "", "", ""},
      {S::request, "--retries", "", "Retries per target for transient errors",
       std::to_string(kDefaultRetries), "retries", "DETOUR_RETRIES"},
      {S::request, "--schema", "FILE",
       "JSON Schema file the answer must match (asks for JSON output)", "", "", ""},
      {S::request, "--require-complete", "",
       "An answer cut at max tokens is a failed attempt (truncated)", "", "", ""},
      {S::request, "--truncate", "",
       "Drop the oldest messages to fit the smallest context window of the chain", "", "", ""},

      {S::ask, "prompt", "", "Prompt words (joined by spaces)", "", "", ""},
      {S::ask, "-o,--option", "", "Extra request body parameter KEY=VALUE (repeatable)", "", "",
       ""},
      {S::ask, "-f,--file", "FILE", "Append a file's contents to the prompt (- is stdin)", "", "",
       ""},
      {S::ask, "--json", "", "Print one JSON object with the answer, usage and attempts", "", "",
       ""},
      {S::ask, "--stream", "", "Stream the answer, even into a pipe", "", "", ""},
      {S::ask, "--no-stream", "", "Print the answer once complete, even on a terminal", "", "", ""},
      {S::ask, "--first-token-timeout", "",
       "An attempt with no first token by then is a timeout and moves on", "", "", ""},
      {S::ask, "--hedge", "",
       "Also ask the next target when the first has no first token by DUR (default: its "
       "observed p95); write --hedge=DUR",
       "", "", ""},

      {S::batch, "input", "FILE", "JSONL input file (- is stdin)", "", "", ""},
      {S::batch, "-o,--output", "FILE", "Output file (default stdout; created 0600)", "", "", ""},
      {S::batch, "-j,--concurrency", "",
       "Requests in flight at most (default: from the known limits)", "", "", ""},
      {S::batch, "--resume", "",
       "Keep the lines already answered in -o FILE; send the rest and append them", "", "", ""},
      {S::batch, "--unordered", "", "Write lines as they finish, not in input order", "", "", ""},
      {S::batch, "--output-format", "", "detour or openai", "detour", "", ""},
      {S::batch, "--progress", "", "bar (on a terminal), plain or none", "bar", "", ""},
      {S::batch, "--max-cost", "",
       "Stop sending new lines once this many USD are spent or in flight", "", "", ""},
      {S::batch, "--dry-run", "",
       "Check every line and print tokens, cost and the least time; send nothing", "", "", ""},
      {S::batch, "--shard", "",
       "K/N: only the lines whose id falls in shard K of N (split one input over N machines)", "",
       "", ""},
      {S::batch, "--option", "", "Extra request body parameter KEY=VALUE (repeatable)", "", "", ""},

      {S::health, "names", "NAME", "Targets, providers or routes to probe (default: all)", "", "",
       ""},
      {S::health, "--probe", "", "models (no tokens spent) or chat (a one-token request)", "models",
       "", ""},
      {S::health, "--format", "",
       "table (default on a terminal), json (default otherwise), prometheus, junit", "", "", ""},
      {S::health, "--fail-on", "",
       "any: every probe must be usable; all: fail only if none is; none", "any", "", ""},
      {S::health, "--timeout", "", "Each probe's time limit", format_duration(kDefaultProbeTimeout),
       "", ""},
      {S::health, "--slow", "", "A usable answer slower than this is degraded",
       format_duration(kDefaultProbeSlow), "", ""},

      {S::limits, "names", "NAME", "Providers, provider/model targets or routes to show", "", "",
       ""},
      {S::limits, "--json", "", "Print one JSON object instead of a table", "", "", ""},
  };
}

}  // namespace

std::string_view scope_name(Scope scope) {
  switch (scope) {
    case Scope::global:
      return "global";
    case Scope::request:
      return "ask and batch";
    case Scope::ask:
      return "ask";
    case Scope::batch:
      return "batch";
    case Scope::health:
      return "health";
    case Scope::limits:
      return "limits";
  }
  return "?";
}

std::string_view Setting::long_name() const {
  std::string_view name = names;
  if (auto comma = name.rfind(','); comma != std::string_view::npos) name.remove_prefix(comma + 1);
  while (!name.empty() && name.front() == '-')
    name.remove_prefix(1);
  return name;
}

std::string Setting::help_text() const {
  std::string extra;
  auto add = [&](std::string part) {
    extra += extra.empty() ? " (" : "; ";
    extra += part;
  };
  if (!default_text.empty()) add("default " + default_text);
  if (!key.empty()) add("[defaults] " + std::string(key));
  if (!env.empty()) add("$" + std::string(env));
  if (!extra.empty()) extra += ")";
  return std::string(help) + extra;
}

const std::vector<Setting>& settings() {
  static const std::vector<Setting> table = make_settings();
  return table;
}

const Setting& setting(Scope scope, std::string_view long_name) {
  for (const Setting& s : settings()) {
    if (s.scope == scope && s.long_name() == long_name) return s;
  }
  throw std::logic_error("no setting " + std::string(long_name) + " for " +
                         std::string(scope_name(scope)));
}

const std::vector<std::string_view>& defaults_keys() {
  static const std::vector<std::string_view> keys = [] {
    std::vector<std::string_view> out;
    for (const Setting& s : settings()) {
      if (!s.key.empty()) out.push_back(s.key);
    }
    return out;
  }();
  return keys;
}

}  // namespace detour::config
