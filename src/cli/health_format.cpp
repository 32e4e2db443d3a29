// The four output formats of `detour health`: a table for people, JSON for scripts,
// Prometheus text exposition for monitoring, JUnit XML for CI test reports.
#include <cstdio>
#include <ctime>
#include <set>

#include <nlohmann/json.hpp>

#include "cli/health.hpp"
#include "io/table.hpp"

namespace detour::cli {

using engine::HealthStatus;
using engine::ProbeResult;
using nlohmann::json;

namespace {

template <typename T>
json or_null(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

// Prometheus label values escape backslash, double quote and newline.
std::string label_value(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // XML 1.0 forbids most control characters even when escaped.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' && c != '\r') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

const char* status_colour(HealthStatus s) {
  switch (s) {
    case HealthStatus::ok:
      return "\033[32m";
    case HealthStatus::degraded:
    case HealthStatus::rate_limited:
      return "\033[33m";
    default:
      return "\033[31m";
  }
}

std::string headroom_text(const providers::RateLimitInfo& r) {
  std::string out;
  if (r.requests_remaining) {
    out += std::to_string(*r.requests_remaining);
    if (r.requests_limit) out += "/" + std::to_string(*r.requests_limit);
    out += " req";
  }
  if (r.tokens_remaining) {
    if (!out.empty()) out += ", ";
    out += std::to_string(*r.tokens_remaining);
    if (r.tokens_limit) out += "/" + std::to_string(*r.tokens_limit);
    out += " tok";
  }
  return out.empty() ? "-" : out;
}

}  // namespace

std::string health_json(const std::vector<ProbeResult>& results) {
  json out = json::array();
  for (const auto& r : results) {
    const auto& h = r.ratelimit;
    out.push_back({
        {"target", r.target},
        {"provider", r.provider},
        {"model", r.model.empty() ? json(nullptr) : json(r.model)},
        {"route", or_null(r.route)},
        {"status", std::string(engine::to_string(r.status))},
        {"http_status", or_null(r.http_status)},
        {"latency_ms", r.sent ? json(r.latency.count()) : json(nullptr)},
        {"error", r.error == engine::ErrorClass::none
                      ? json(nullptr)
                      : json(std::string(engine::to_string(r.error)))},
        {"message", r.message.empty() ? json(nullptr) : json(r.message)},
        {"circuit", r.model.empty() ? json(nullptr) : json(r.circuit)},
        {"ratelimit",
         {{"requests_limit", or_null(h.requests_limit)},
          {"requests_remaining", or_null(h.requests_remaining)},
          {"tokens_limit", or_null(h.tokens_limit)},
          {"tokens_remaining", or_null(h.tokens_remaining)}}},
    });
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string health_table(const std::vector<ProbeResult>& results,
                         const std::vector<engine::HealthUnit>& units, bool color) {
  std::vector<io::TableRow> rows = {
      {"TARGET", "STATUS", "HTTP", "LATENCY", "HEADROOM", "CIRCUIT", "DETAIL"}};
  for (const auto& r : results) {
    rows.push_back({r.target, std::string(engine::to_string(r.status)),
                    r.http_status ? std::to_string(*r.http_status) : "-",
                    r.sent ? format_duration(r.latency) : "-", headroom_text(r.ratelimit),
                    r.model.empty() ? "-" : r.circuit, r.message.empty() ? "-" : r.message});
  }
  std::string table = io::render_table(rows);
  if (color) {
    // Colour the status words after alignment, so escape codes do not skew the columns.
    std::size_t line_start = table.find('\n') + 1;
    for (const auto& r : results) {
      const std::string word(engine::to_string(r.status));
      const std::size_t at = table.find(" " + word, line_start + r.target.size());
      if (at != std::string::npos) {
        table.insert(at + 1 + word.size(), "\033[0m");
        table.insert(at + 1, status_colour(r.status));
      }
      line_start = table.find('\n', line_start) + 1;
    }
  }
  for (const auto& u : units) {
    if (!u.is_route) continue;
    table += "route " + u.name + ": " + (u.usable ? "can answer" : "cannot answer") + "\n";
  }
  return table;
}

std::string health_prometheus(const std::vector<ProbeResult>& results,
                              const std::vector<engine::HealthUnit>& units,
                              std::chrono::system_clock::time_point when) {
  struct Metric {
    const char* name;
    const char* help;
  };
  auto labels = [](const ProbeResult& r) {
    return "{provider=\"" + label_value(r.provider) + "\",model=\"" + label_value(r.model) + "\"}";
  };
  // A target named twice (directly and through a route) is one series: the exposition
  // format forbids the same labels twice in a family.
  std::vector<const ProbeResult*> distinct;
  std::set<std::string> seen;
  for (const auto& r : results) {
    if (seen.insert(r.target).second) distinct.push_back(&r);
  }
  std::string out;
  auto family = [&](Metric m, auto value_of) {
    std::string lines;
    for (const ProbeResult* r : distinct) {
      if (auto v = value_of(*r)) lines += std::string(m.name) + labels(*r) + " " + *v + "\n";
    }
    if (lines.empty()) return;
    out += std::string("# HELP ") + m.name + " " + m.help + "\n";
    out += std::string("# TYPE ") + m.name + " gauge\n" + lines;
  };
  using Value = std::optional<std::string>;
  family({"detour_target_up", "1 when the target's probe found it usable (ok or degraded)."},
         [](const ProbeResult& r) -> Value { return engine::usable(r.status) ? "1" : "0"; });
  family({"detour_target_latency_seconds", "How long the target's probe took."},
         [](const ProbeResult& r) -> Value {
           if (!r.sent) return std::nullopt;
           return seconds_text(static_cast<double>(r.latency.count()) / 1000);
         });
  family({"detour_target_requests_remaining",
          "Requests left in the provider's rate-limit window, as its headers said."},
         [](const ProbeResult& r) -> Value {
           if (!r.ratelimit.requests_remaining) return std::nullopt;
           return std::to_string(*r.ratelimit.requests_remaining);
         });
  family({"detour_target_tokens_remaining",
          "Tokens left in the provider's rate-limit window, as its headers said."},
         [](const ProbeResult& r) -> Value {
           if (!r.ratelimit.tokens_remaining) return std::nullopt;
           return std::to_string(*r.ratelimit.tokens_remaining);
         });
  family({"detour_target_circuit_open", "1 when detour's circuit breaker for the target is open."},
         [](const ProbeResult& r) -> Value {
           if (r.model.empty()) return std::nullopt;
           return r.circuit == "closed" ? "0" : "1";
         });
  std::string routes;
  for (const auto& u : units) {
    if (u.is_route)
      routes +=
          "detour_route_up{route=\"" + label_value(u.name) + "\"} " + (u.usable ? "1" : "0") + "\n";
  }
  if (!routes.empty()) {
    out += "# HELP detour_route_up 1 when at least one target of the route is usable.\n";
    out += "# TYPE detour_route_up gauge\n" + routes;
  }
  // Every status of every target, 1 for the one it has: alerts can tell auth from down, and a
  // series never vanishes when a target's status changes.
  out += "# HELP detour_target_status 1 for the target's status in this health run, else 0.\n";
  out += "# TYPE detour_target_status gauge\n";
  constexpr HealthStatus kAll[] = {HealthStatus::ok,           HealthStatus::degraded,
                                   HealthStatus::rate_limited, HealthStatus::quota_exhausted,
                                   HealthStatus::auth,         HealthStatus::not_found,
                                   HealthStatus::down};
  for (const ProbeResult* r : distinct) {
    const std::string base = labels(*r);
    for (HealthStatus status : kAll) {
      out += "detour_target_status" + base.substr(0, base.size() - 1) + ",status=\"" +
             std::string(engine::to_string(status)) + "\"} " + (r->status == status ? "1" : "0") +
             "\n";
    }
  }
  // When this was measured, so a textfile that cron stopped refreshing can be noticed.
  out += "# HELP detour_health_timestamp_seconds When this health run started (Unix time).\n";
  out += "# TYPE detour_health_timestamp_seconds gauge\n";
  out += "detour_health_timestamp_seconds " +
         std::to_string(
             std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count()) +
         "\n";
  return out;
}

std::string health_junit(const std::vector<ProbeResult>& results, double seconds,
                         std::chrono::system_clock::time_point started) {
  std::size_t failures = 0;
  for (const auto& r : results)
    failures += engine::usable(r.status) ? 0 : 1;
  const std::time_t t = std::chrono::system_clock::to_time_t(started);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  const std::string counts = "tests=\"" + std::to_string(results.size()) + "\" failures=\"" +
                             std::to_string(failures) + "\" errors=\"0\"";
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out +=
      "<testsuites name=\"detour health\" " + counts + " time=\"" + seconds_text(seconds) + "\">\n";
  out += "  <testsuite name=\"detour health\" " + counts + " skipped=\"0\" time=\"" +
         seconds_text(seconds) + "\" timestamp=\"" + stamp + "\">\n";
  for (const auto& r : results) {
    out += "    <testcase name=\"" + xml_escape(r.target) + "\" classname=\"detour.health." +
           xml_escape(r.provider) + "\" time=\"" +
           seconds_text(static_cast<double>(r.latency.count()) / 1000) + "\"";
    const std::string status(engine::to_string(r.status));
    std::string detail = status;
    if (r.http_status) detail += " (HTTP " + std::to_string(*r.http_status) + ")";
    if (!r.message.empty()) detail += ": " + r.message;
    if (engine::usable(r.status)) {
      out += ">\n      <system-out>" + xml_escape(detail) + "</system-out>\n    </testcase>\n";
    } else {
      out += ">\n      <failure type=\"" + status + "\" message=\"" + xml_escape(detail) + "\">" +
             xml_escape(detail) + "</failure>\n    </testcase>\n";
    }
  }
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

}  // namespace detour::cli
