#pragma once
// The failures detour-mock can produce, one model each, for the secrets tests
// (test_secrets.cpp, test_secrets_providers.cpp): every path by which a provider's answer
// reaches detour's output must be searched for leaked secrets.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace detour::testing::secrets {

using json = nlohmann::json;

// One detour-mock model per failure the mock can produce; the same table on each protocol's
// mock. `stops`: on some protocol the failure ends a call whatever follows (bad_request; Gemini
// answers a request that is too large with one), so it gets a call of its own.
struct Fault {
  const char* model;
  json behaviour;
  bool stops = false;
};

// `echo` becomes a finish reason: the provider echoing secrets, in a 200.
inline std::vector<Fault> faults(const std::string& echo) {
  return {
      {"auth", {{"fault", "auth"}}},
      {"forbidden", {{"fault", "status"}, {"status", 403}}},
      // A long hint: moving on at once keeps the run short.
      {"rate-limit", {{"fault", "rate_limit"}, {"retry_after_s", 30}}},
      {"quota", {{"fault", "insufficient_quota"}}},
      {"credit", {{"fault", "credit_balance"}}},
      {"overloaded", {{"fault", "overloaded"}}},
      {"server-error", {{"fault", "server_error"}}},
      {"bad-gateway", {{"fault", "bad_gateway"}}},
      {"unavailable", {{"fault", "unavailable"}}},
      // Headers at once, the body long after --timeout: the mock has recorded the request (and
      // whether its key was right) by the time detour gives up on it.
      {"timeout", {{"ttft_ms", 5000}}},
      {"reset", {{"fault", "reset"}}},
      {"close", {{"fault", "close"}}},
      {"truncated-json", {{"fault", "truncated_json"}}},
      {"empty", {{"fault", "empty"}}},
      {"refusal", {{"fault", "refusal"}}},
      {"not-found", {{"fault", "not_found"}}},
      {"too-large", {{"fault", "request_too_large"}}, true},
      {"finish-error", {{"fault", "finish_error"}}},
      {"finish-overloaded", {{"fault", "finish_overloaded"}}},
      {"context-length", {{"fault", "context_length"}}},
      {"content-filter", {{"fault", "content_filter"}}},
      {"finish-filter", {{"fault", "finish_content_filter"}}},
      // The mock cannot put a key in an error message, but it writes any finish reason it is
      // given, and detour quotes an unknown one: the provider echoing the key, in a 200.
      {"key-as-finish", {{"finish_reason", echo}}},
      {"bad-request", {{"fault", "bad_request"}}, true},
  };
}

}  // namespace detour::testing::secrets
