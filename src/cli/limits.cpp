#include "cli/limits.hpp"

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "cli/complete.hpp"
#include "cli/engine_setup.hpp"
#include "cli/options.hpp"
#include "engine/limits_report.hpp"
#include "io/table.hpp"

namespace detour::cli {

using nlohmann::json;

void add_limits_options(CLI::App& command, LimitsOptions& o) {
  command.fallthrough();
  add_setting(command, config::Scope::limits, "names", o.names);
  add_switch(command, config::Scope::limits, "json", o.json);
}

namespace {

// "2026-11-22T10:00:05.250Z" (engine::iso_utc) back to wall ms; nullopt for anything else.
std::optional<double> parse_iso(const json& value) {
  if (!value.is_string()) return std::nullopt;
  std::tm tm{};
  const std::string text = value.get<std::string>();
  const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return std::nullopt;
  int millis = 0;
  if (*rest == '.') std::sscanf(rest + 1, "%3d", &millis);
  return static_cast<double>(timegm(&tm)) * 1000 + millis;
}

std::string number(const json& value) {
  if (!value.is_number()) return "-";
  return std::to_string(value.get<std::int64_t>());
}

// "500", "5000 (learned)", "500 (learned 5000)", or "-".
std::string limit_cell(const json& bucket) {
  const json& configured = bucket["configured"];
  const json& learned = bucket["learned"];
  if (configured.is_number()) {
    if (learned.is_number() && learned != configured)
      return number(configured) + " (learned " + number(learned) + ")";
    return number(configured);
  }
  if (learned.is_number()) return number(learned) + " (learned)";
  return "-";
}

std::string in_time(std::optional<double> at, double now) {
  if (!at) return "-";
  if (*at <= now) return "now";
  return format_duration(Millis(static_cast<Millis::rep>(std::ceil(*at - now))));
}

std::string ago(std::optional<double> at, double now) {
  if (!at) return "";
  if (now - *at < 1000) return "just now";
  return format_duration(Millis(static_cast<Millis::rep>(std::round((now - *at) / 1000) * 1000))) +
         " ago";
}

// When the later of the two buckets is full again.
std::string full_in(const json& scope, double now) {
  std::optional<double> latest;
  for (const char* which : {"requests_per_minute", "tokens_per_minute"}) {
    if (auto at = parse_iso(scope[which]["reset_at"])) latest = std::max(latest.value_or(0), *at);
  }
  if (auto blocked = parse_iso(scope["blocked_until"])) return "429: " + in_time(blocked, now);
  return in_time(latest, now);
}

std::string concurrency_cell(const json& c) {
  std::string cell = number(c["in_flight"]);
  if (c["limit"].is_number()) cell += "/" + number(c["limit"]);
  return cell;
}

// "128k", "1M", "922k": a context window as people say it.
std::string window_cell(const json& model) {
  if (!model.is_object() || !model["context_window"].is_number()) return "-";
  const double tokens = model["context_window"].get<double>();
  char text[32];
  if (tokens >= 1e6 && std::fmod(tokens, 1e5) == 0) {
    std::snprintf(text, sizeof text, "%gM", tokens / 1e6);
  } else if (tokens >= 1000) {
    std::snprintf(text, sizeof text, "%gk", std::round(tokens / 100) / 10);
  } else {
    std::snprintf(text, sizeof text, "%g", tokens);
  }
  return text;
}

// USD per million input and output tokens, "2.50/10.00".
std::string price_cell(const json& model) {
  if (!model.is_object() || (!model["input_cost"].is_number() && !model["output_cost"].is_number()))
    return "-";
  auto price = [](const json& value) {
    if (!value.is_number()) return std::string("?");
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", value.get<double>());
    return std::string(text);
  };
  return price(model["input_cost"]) + "/" + price(model["output_cost"]);
}

io::TableRow scope_row(const std::string& name, const json& scope, double now) {
  return {name,
          limit_cell(scope["requests_per_minute"]),
          number(scope["requests_per_minute"]["remaining"]),
          limit_cell(scope["tokens_per_minute"]),
          number(scope["tokens_per_minute"]["remaining"]),
          full_in(scope, now),
          concurrency_cell(scope["concurrency"])};
}

}  // namespace

std::string limits_table(const json& report, double now) {
  std::vector<io::TableRow> rows = {{"PROVIDER / TARGET", "RPM", "LEFT", "TPM", "LEFT", "FULL IN",
                                     "IN FLIGHT", "CIRCUIT", "OK", "P50", "P95", "WINDOW",
                                     "$/M IN/OUT", "LAST ERROR"}};
  for (const auto& provider : report["providers"]) {
    rows.push_back(scope_row(provider["provider"].get<std::string>(), provider, now));
    for (const auto& target : provider["targets"]) {
      io::TableRow row = scope_row("  " + target["target"].get<std::string>(), target, now);
      const json& circuit = target["circuit"];
      std::string state = circuit["state"].get<std::string>();
      if (state == "open") state += " " + in_time(parse_iso(circuit["until"]), now);
      row.push_back(state);
      row.push_back(target["success_rate"].is_number()
                        ? std::to_string(static_cast<int>(
                              std::lround(target["success_rate"].get<double>() * 100))) +
                              "%"
                        : "-");
      row.push_back(target["latency_p50_ms"].is_number() ? number(target["latency_p50_ms"]) + "ms"
                                                         : "-");
      row.push_back(target["latency_p95_ms"].is_number() ? number(target["latency_p95_ms"]) + "ms"
                                                         : "-");
      row.push_back(window_cell(target["model"]));
      row.push_back(price_cell(target["model"]));
      const json& error = target["last_error"];
      if (error.is_object()) {
        std::string cell = error["class"].get<std::string>();
        if (error["status"].is_number()) cell += " " + number(error["status"]);
        cell += ", " + ago(parse_iso(error["at"]), now);
        row.push_back(cell);
      } else {
        row.push_back("-");
      }
      rows.push_back(std::move(row));
    }
  }
  return io::render_table(rows);
}

int run_limits(const GlobalOptions& global, const LimitsOptions& options) {
  io::Logger log(global.log_settings());
  const auto env = config::process_env();
  const config::Config config = config::load_config(global.config_path, env);
  EngineSetup engine = setup_engine(global, config, env, log);
  // Times as the documents hold them: on the store's clock when machines share it.
  engine::ReportTime now{engine.clock->wall_now(), engine.clock->now(),
                         engine.state->clock_shift_ms()};
  const json report = engine::limits_report(*engine.store, config, options.names,
                                            breaker_config(config.breaker), now);
  std::string out;
  if (options.json) {
    out = report.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  } else {
    const double now_ms = static_cast<double>(
        std::chrono::duration_cast<Millis>(now.wall.time_since_epoch()).count());
    out = limits_table(report, now_ms);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace detour::cli
