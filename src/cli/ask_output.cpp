// What `detour ask --json` prints: one object, also when the call fails.
#include "cli/ask.hpp"

#include <map>
#include <string>
#include <vector>

namespace detour::cli {

namespace {

nlohmann::ordered_json optional_json(const auto& value) {
  if (value) return *value;
  return nullptr;
}

nlohmann::ordered_json attempt_to_json(const engine::AttemptRecord& attempt) {
  return {
      {"provider", attempt.provider},
      {"model", attempt.model},
      {"status", optional_json(attempt.status)},
      {"error", attempt.error == engine::ErrorClass::none
                    ? nlohmann::ordered_json(nullptr)
                    : nlohmann::ordered_json(engine::to_string(attempt.error))},
      {"latency_ms", attempt.latency.count()},
      {"waited_ms", attempt.waited.count()},
  };
}

}  // namespace

nlohmann::ordered_json result_to_json(const engine::CallResult& result,
                                      const config::Chain& chain) {
  nlohmann::ordered_json attempts = nlohmann::ordered_json::array();
  for (const auto& attempt : result.attempts)
    attempts.push_back(attempt_to_json(attempt));

  nlohmann::ordered_json out;
  out["ok"] = result.ok;
  if (result.ok) {
    const auto& target = *result.target;
    const auto& reply = result.reply;
    out["content"] = reply.content;
    out["provider"] = target.target.provider;
    out["model"] = target.target.model;
    if (!reply.served_model.empty() && reply.served_model != target.target.model) {
      out["served_model"] = reply.served_model;
    }
    out["route"] = optional_json(chain.route);
    out["degraded"] = result.degraded;
    out["finish_reason"] = reply.finish_reason.empty()
                               ? nlohmann::ordered_json(nullptr)
                               : nlohmann::ordered_json(reply.finish_reason);
    out["usage"] = {{"input_tokens", optional_json(reply.usage.input_tokens)},
                    {"output_tokens", optional_json(reply.usage.output_tokens)},
                    {"cached_input_tokens", optional_json(reply.usage.cached_input_tokens)}};
    out["cost_usd"] = optional_json(result.cost_usd);
  } else {
    out["error"] = {{"class", engine::to_string(result.error)},
                    {"status", optional_json(result.status)},
                    {"message", result.message}};
    out["route"] = optional_json(chain.route);
  }
  out["latency_ms"] = result.latency.count();
  out["attempts"] = std::move(attempts);
  return out;
}

std::string failure_text(const engine::CallResult& result) {
  std::string text = std::string(engine::to_string(result.error)) + ": " + result.message;
  if (result.attempts.empty()) return text;
  const auto name = [](const engine::AttemptRecord& a) { return a.provider + "/" + a.model; };
  const std::string last = name(result.attempts.back());
  // Each other target once, where it was first tried, with what it last failed with.
  std::vector<std::string> order;
  std::map<std::string, const engine::AttemptRecord*> latest;
  for (const auto& attempt : result.attempts) {
    const std::string target = name(attempt);
    if (target == last || attempt.error == engine::ErrorClass::none) continue;
    if (!latest.count(target)) order.push_back(target);
    latest[target] = &attempt;
  }
  if (order.empty()) return text;
  text += "; before it:";
  for (std::size_t i = 0; i < order.size(); ++i) {
    const engine::AttemptRecord& a = *latest[order[i]];
    text += (i == 0 ? " " : ", ") + order[i] + " " + std::string(engine::to_string(a.error));
    if (a.status) text += " (" + std::to_string(*a.status) + ")";
  }
  return text;
}

}  // namespace detour::cli
