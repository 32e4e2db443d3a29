#include "scenario.hpp"

#include <array>
#include <stdexcept>

namespace detour::mock {

namespace {

using nlohmann::json;

constexpr std::array<std::pair<Fault, std::string_view>, 29> kFaultNames{{
    {Fault::none, "none"},
    {Fault::status, "status"},
    {Fault::insufficient_quota, "insufficient_quota"},
    {Fault::credit_balance, "credit_balance"},
    {Fault::rate_limit, "rate_limit"},
    {Fault::request_too_large, "request_too_large"},
    {Fault::overloaded, "overloaded"},
    {Fault::server_error, "server_error"},
    {Fault::bad_gateway, "bad_gateway"},
    {Fault::unavailable, "unavailable"},
    {Fault::context_length, "context_length"},
    {Fault::bad_request, "bad_request"},
    {Fault::not_found, "not_found"},
    {Fault::auth, "auth"},
    {Fault::content_filter, "content_filter"},
    {Fault::reset, "reset"},
    {Fault::close, "close"},
    {Fault::truncated_json, "truncated_json"},
    {Fault::empty, "empty"},
    {Fault::refusal, "refusal"},
    {Fault::wrong_schema, "wrong_schema"},
    {Fault::finish_content_filter, "finish_content_filter"},
    {Fault::finish_error, "finish_error"},
    {Fault::finish_overloaded, "finish_overloaded"},
    {Fault::sse_cut, "sse_cut"},
    {Fault::sse_error, "sse_error"},
    {Fault::blank_lines, "blank_lines"},
    {Fault::keepalive, "keepalive"},
    {Fault::slow_headers, "slow_headers"},
}};

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::invalid_argument(where + ": " + what);
}

void check_keys(const json& obj, const std::string& where,
                std::initializer_list<std::string_view> allowed) {
  if (!obj.is_object()) fail(where, "must be a JSON object");
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (auto name : allowed)
      known = known || key == name;
    if (!known) fail(where + "." + key, "unknown key");
  }
}

double get_number(const json& obj, const char* key, const std::string& where, double min) {
  const auto& v = obj.at(key);
  if (!v.is_number()) fail(where + "." + key, "must be a number");
  double d = v.get<double>();
  if (d < min) fail(where + "." + key, "must be >= " + std::to_string(static_cast<int>(min)));
  return d;
}

int get_int(const json& obj, const char* key, const std::string& where) {
  return static_cast<int>(get_number(obj, key, where, 0));
}

Behaviour parse_behaviour(const json& j, const std::string& where) {
  Behaviour b;
  if (j.is_null()) return b;
  check_keys(j, where,
             {"fault", "status", "retry_after_s", "retry_delay", "times", "outage", "latency_ms",
              "latency_jitter_ms", "ttft_ms", "token_delay_ms", "context_window", "headers",
              "finish_reason", "stream_error"});
  if (j.contains("fault") && !j["fault"].is_null()) {
    if (!j["fault"].is_string()) fail(where + ".fault", "must be a string");
    auto f = fault_from_string(j["fault"].get<std::string>());
    if (!f) {
      std::string names;
      for (const auto& [fault, name] : kFaultNames)
        names += (names.empty() ? "" : ", ") + std::string(name);
      fail(where + ".fault",
           "unknown fault \"" + j["fault"].get<std::string>() + "\" (known: " + names + ")");
    }
    b.fault = *f;
  }
  if (j.contains("status")) {
    b.status = get_int(j, "status", where);
    if (b.status < 100 || b.status > 599)
      fail(where + ".status", "must be an HTTP status 100..599");
  }
  if (j.contains("retry_after_s") && !j["retry_after_s"].is_null())
    b.retry_after_s = get_number(j, "retry_after_s", where, 0);
  if (j.contains("retry_delay") && !j["retry_delay"].is_null()) {
    if (!j["retry_delay"].is_string())
      fail(where + ".retry_delay", "must be a string like \"37s\"");
    b.retry_delay = j["retry_delay"].get<std::string>();
  }
  if (j.contains("times")) b.times = get_int(j, "times", where);
  if (j.contains("outage") && !j["outage"].is_null()) {
    const auto& o = j["outage"];
    check_keys(o, where + ".outage", {"from_s", "to_s"});
    double from = o.contains("from_s") ? get_number(o, "from_s", where + ".outage", 0) : 0;
    if (!o.contains("to_s")) fail(where + ".outage.to_s", "is required");
    double to = get_number(o, "to_s", where + ".outage", 0);
    if (to < from) fail(where + ".outage", "to_s must not be before from_s");
    b.outage = std::make_pair(from, to);
  }
  if (j.contains("latency_ms")) b.latency_ms = get_int(j, "latency_ms", where);
  if (j.contains("latency_jitter_ms")) b.latency_jitter_ms = get_int(j, "latency_jitter_ms", where);
  if (j.contains("ttft_ms")) b.ttft_ms = get_int(j, "ttft_ms", where);
  if (j.contains("token_delay_ms")) b.token_delay_ms = get_int(j, "token_delay_ms", where);
  if (j.contains("context_window"))
    b.context_window = static_cast<std::int64_t>(get_number(j, "context_window", where, 0));
  if (j.contains("headers") && !j["headers"].is_null()) {
    if (!j["headers"].is_object()) fail(where + ".headers", "must be an object of strings");
    for (const auto& [name, value] : j["headers"].items()) {
      if (!value.is_string()) fail(where + ".headers." + name, "must be a string");
      b.headers[name] = value.get<std::string>();
    }
  }
  // Any word is accepted: rehearsing a finish reason nobody has documented yet is the point.
  if (j.contains("finish_reason") && !j["finish_reason"].is_null()) {
    const auto& f = j["finish_reason"];
    if (!f.is_string() || f.get<std::string>().empty())
      fail(where + ".finish_reason", "must be a non-empty string or null");
    b.finish_reason = f.get<std::string>();
  }
  if (j.contains("stream_error") && !j["stream_error"].is_null()) {
    const auto& e = j["stream_error"];
    auto f = e.is_string() ? fault_from_string(e.get<std::string>()) : std::nullopt;
    if (f != Fault::overloaded && f != Fault::server_error && f != Fault::rate_limit)
      fail(where + ".stream_error",
           "must be \"overloaded\", \"server_error\", \"rate_limit\" or null");
    b.stream_error = *f;
  }
  return b;
}

json behaviour_json(const Behaviour& b) {
  json j = {{"fault", to_string(b.fault)},
            {"status", b.status},
            {"retry_after_s", b.retry_after_s ? json(*b.retry_after_s) : json(nullptr)},
            {"retry_delay", b.retry_delay.empty() ? json(nullptr) : json(b.retry_delay)},
            {"times", b.times},
            {"outage", nullptr},
            {"latency_ms", b.latency_ms},
            {"latency_jitter_ms", b.latency_jitter_ms},
            {"ttft_ms", b.ttft_ms},
            {"token_delay_ms", b.token_delay_ms},
            {"context_window", b.context_window},
            {"headers", b.headers},
            {"finish_reason", b.finish_reason ? json(*b.finish_reason) : json(nullptr)},
            {"stream_error",
             b.stream_error == Fault::none ? json(nullptr) : json(to_string(b.stream_error))}};
  if (b.outage) j["outage"] = {{"from_s", b.outage->first}, {"to_s", b.outage->second}};
  return j;
}

}  // namespace

std::string_view to_string(Fault fault) {
  for (const auto& [f, name] : kFaultNames)
    if (f == fault) return name;
  return "none";
}

std::optional<Fault> fault_from_string(std::string_view name) {
  for (const auto& [f, n] : kFaultNames)
    if (n == name) return f;
  return std::nullopt;
}

bool is_error_fault(Fault fault) {
  switch (fault) {
    case Fault::status:
    case Fault::insufficient_quota:
    case Fault::credit_balance:
    case Fault::rate_limit:
    case Fault::request_too_large:
    case Fault::overloaded:
    case Fault::server_error:
    case Fault::bad_gateway:
    case Fault::unavailable:
    case Fault::context_length:
    case Fault::bad_request:
    case Fault::not_found:
    case Fault::auth:
    case Fault::content_filter:
      return true;
    default:
      return false;
  }
}

const Behaviour& Scenario::behaviour_for(const std::string& model) const {
  auto it = models.find(model);
  return it == models.end() ? fallback : it->second;
}

Scenario parse_scenario(const json& j) {
  Scenario s;
  if (j.is_null()) return s;
  check_keys(j, "scenario", {"api_key", "default", "models", "limits", "seed"});
  if (j.contains("api_key") && !j["api_key"].is_null()) {
    if (!j["api_key"].is_string()) fail("scenario.api_key", "must be a string or null");
    s.api_key = j["api_key"].get<std::string>();
  }
  if (j.contains("default")) s.fallback = parse_behaviour(j["default"], "scenario.default");
  if (j.contains("models") && !j["models"].is_null()) {
    if (!j["models"].is_object()) fail("scenario.models", "must be an object keyed by model name");
    for (const auto& [name, b] : j["models"].items())
      s.models[name] = parse_behaviour(b, "scenario.models." + name);
  }
  if (j.contains("limits") && !j["limits"].is_null()) {
    const auto& l = j["limits"];
    check_keys(l, "scenario.limits", {"rpm", "tpm", "burst", "burst_tokens"});
    if (l.contains("rpm"))
      s.limits.rpm = static_cast<std::int64_t>(get_number(l, "rpm", "scenario.limits", 0));
    if (l.contains("tpm"))
      s.limits.tpm = static_cast<std::int64_t>(get_number(l, "tpm", "scenario.limits", 0));
    if (l.contains("burst") && !l["burst"].is_null())
      s.limits.burst = get_number(l, "burst", "scenario.limits", 1);
    if (l.contains("burst_tokens") && !l["burst_tokens"].is_null())
      s.limits.burst_tokens = get_number(l, "burst_tokens", "scenario.limits", 1);
  }
  if (j.contains("seed")) s.seed = static_cast<std::uint64_t>(get_number(j, "seed", "scenario", 0));
  return s;
}

json to_json(const Scenario& s) {
  json models = json::object();
  for (const auto& [name, b] : s.models)
    models[name] = behaviour_json(b);
  return {
      {"api_key", s.api_key ? json(*s.api_key) : json(nullptr)},
      {"default", behaviour_json(s.fallback)},
      {"models", models},
      {"limits",
       {{"rpm", s.limits.rpm},
        {"tpm", s.limits.tpm},
        {"burst", s.limits.burst ? json(*s.limits.burst) : json(nullptr)},
        {"burst_tokens", s.limits.burst_tokens ? json(*s.limits.burst_tokens) : json(nullptr)}}},
      {"seed", s.seed}};
}

ScenarioState::ScenarioState(Scenario scenario) {
  replace(std::move(scenario));
}

void ScenarioState::replace(Scenario scenario) {
  std::lock_guard lock(mutex_);
  rng_.seed(scenario.seed);
  scenario_ = std::move(scenario);
  set_at_ = std::chrono::steady_clock::now();
  fired_.clear();
}

Scenario ScenarioState::current() const {
  std::lock_guard lock(mutex_);
  return scenario_;
}

std::optional<std::string> ScenarioState::api_key() const {
  std::lock_guard lock(mutex_);
  return scenario_.api_key;
}

ScenarioState::Decision ScenarioState::decide(const std::string& model,
                                              bool (*applicable)(Fault, bool), bool stream) {
  std::lock_guard lock(mutex_);
  bool listed = scenario_.models.count(model) > 0;
  Decision d{scenario_.behaviour_for(model), false};
  const Behaviour& b = d.behaviour;
  if (b.fault == Fault::none || !applicable(b.fault, stream)) return d;
  if (b.outage) {
    double age = std::chrono::duration<double>(std::chrono::steady_clock::now() - set_at_).count();
    if (age < b.outage->first || age >= b.outage->second) return d;
  }
  // The default's counter is shared by every model without an entry of its own.
  int& fired = fired_[listed ? "model:" + model : std::string()];
  if (b.times > 0 && fired >= b.times) return d;
  ++fired;
  d.fault_fires = true;
  return d;
}

int ScenarioState::sample_latency(const Behaviour& b) {
  if (b.latency_jitter_ms <= 0) return b.latency_ms;
  std::lock_guard lock(mutex_);
  std::uniform_int_distribution<int> dist(0, b.latency_jitter_ms);
  return b.latency_ms + dist(rng_);
}

}  // namespace detour::mock
