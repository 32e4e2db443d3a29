#pragma once
// The scenario: what detour-mock should do to each request (faults, latency, limits), parsed
// from JSON, plus the mutable per-scenario state (fault counters, clock origin, RNG).
// The JSON format is documented in tests/mock/README.md.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace detour::mock {

enum class Fault {
  none,
  status,
  insufficient_quota,
  credit_balance,
  rate_limit,
  request_too_large,
  overloaded,
  server_error,
  bad_gateway,
  unavailable,
  context_length,
  bad_request,
  not_found,
  auth,
  content_filter,
  reset,
  close,
  truncated_json,
  empty,
  refusal,
  wrong_schema,
  finish_content_filter,
  finish_error,
  finish_overloaded,
  sse_cut,
  sse_error,
  blank_lines,
  keepalive,
  slow_headers,
};

std::string_view to_string(Fault fault);
std::optional<Fault> fault_from_string(std::string_view name);

// Faults that answer with an HTTP error status (in the provider's error shape) instead of a reply.
bool is_error_fault(Fault fault);

// How one model (or the default) behaves. Times are milliseconds unless the name says seconds.
struct Behaviour {
  Fault fault = Fault::none;
  int status = 503;                     // for Fault::status
  std::optional<double> retry_after_s;  // retry-after (+ retry-after-ms) on fault replies
  std::string retry_delay;              // Gemini RetryInfo.retryDelay, e.g. "37s"
  int times = 0;                        // fault only the first N matching requests; 0 = always
  std::optional<std::pair<double, double>> outage;  // fault only in [from_s, to_s) of scenario age
  int latency_ms = 0;
  int latency_jitter_ms = 0;
  int ttft_ms = 0;
  int token_delay_ms = 0;
  std::int64_t context_window = 0;  // >0: inputs above this many tokens get context_length
  std::map<std::string, std::string> headers;  // extra response headers, sent on every reply
  std::optional<std::string> finish_reason;    // written instead of the usual finish reason
  Fault stream_error = Fault::none;  // what sse_error sends (overloaded, server_error, rate_limit)
};

struct Limits {
  std::int64_t rpm = 0;  // 0 = unlimited
  std::int64_t tpm = 0;
  std::optional<double> burst;         // request bucket size; default max(1, rpm/60)
  std::optional<double> burst_tokens;  // token bucket size; default max(1, tpm/60)
};

struct Scenario {
  std::optional<std::string> api_key;
  Behaviour fallback;  // "default" in JSON
  std::map<std::string, Behaviour> models;
  Limits limits;
  std::uint64_t seed = 1;  // latency jitter RNG

  // The behaviour governing a model: its own entry if listed (no merging), else the default.
  const Behaviour& behaviour_for(const std::string& model) const;
};

// Parses and validates a scenario. Unknown keys and bad values throw std::invalid_argument
// naming the key, so a typo in a test scenario fails loudly instead of silently doing nothing.
Scenario parse_scenario(const nlohmann::json& json);
// The normalised scenario (every key present); parse_scenario(to_json(s)) round-trips.
nlohmann::json to_json(const Scenario& scenario);

// The live scenario and what it has consumed so far. Thread-safe.
class ScenarioState {
 public:
  explicit ScenarioState(Scenario scenario);

  // Replaces the scenario wholesale: fault counters, RNG and the outage clock start afresh.
  void replace(Scenario scenario);
  Scenario current() const;
  // The scenario's api_key, without copying the whole scenario on every request.
  std::optional<std::string> api_key() const;

  struct Decision {
    Behaviour behaviour;
    bool fault_fires = false;  // behaviour.fault applies to this request
  };
  // Picks the behaviour for `model` and decides whether its fault fires now. `applicable` says
  // whether the fault means anything for this kind of request; only then is one of "times"
  // consumed, so e.g. a model listing does not use up a stream-only fault.
  Decision decide(const std::string& model, bool (*applicable)(Fault, bool), bool stream);

  // A latency sample: base + uniform [0, jitter], from the seeded RNG.
  int sample_latency(const Behaviour& behaviour);

 private:
  mutable std::mutex mutex_;
  Scenario scenario_;
  std::chrono::steady_clock::time_point set_at_;
  std::map<std::string, int> fired_;  // fault count per behaviour entry ("" = default)
  std::mt19937_64 rng_;
};

}  // namespace detour::mock
