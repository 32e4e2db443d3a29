#include "stats.hpp"

namespace detour::mock {

namespace {

// Repeated headers are one comma-separated value (RFC 9110, section 5.3), as a proxy would
// combine them.
nlohmann::json headers_json(const std::vector<std::pair<std::string, std::string>>& headers) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, value] : headers) {
    auto& slot = out[name];
    slot = slot.is_null() ? value : slot.get<std::string>() + ", " + value;
  }
  return out;
}

// A repeated query parameter has no such combined form: its values become an array, in order.
nlohmann::json query_json(const std::vector<std::pair<std::string, std::string>>& query) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, value] : query) {
    auto& slot = out[name];
    if (slot.is_null()) {
      slot = value;
    } else {
      if (slot.is_string()) slot = nlohmann::json::array({slot});
      slot.push_back(value);
    }
  }
  return out;
}

}  // namespace

bool is_secret_header(std::string_view name) {
  // authorization carries OpenAI's key and Azure's Entra ID token; proxy-authorization and
  // ocp-apim-subscription-key are the same secret one hop out (a proxy, Azure API Management).
  return name == "authorization" || name == "proxy-authorization" || name == "api-key" ||
         name == "x-api-key" || name == "x-goog-api-key" || name == "ocp-apim-subscription-key";
}

bool is_secret_param(std::string_view name) {
  // Gemini's ?key= and API Management's ?subscription-key=.
  return name == "key" || name == "subscription-key";
}

Stats::Stats() : start_(std::chrono::steady_clock::now()) {}

std::int64_t Stats::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start_)
      .count();
}

std::shared_ptr<void> Stats::enter() {
  {
    std::lock_guard lock(mutex_);
    ++in_flight_;
    if (in_flight_ > max_in_flight_) max_in_flight_ = in_flight_;
  }
  // The deleter runs when the last copy of the token goes, wherever that is.
  return std::shared_ptr<void>(nullptr, [this](void*) {
    std::lock_guard lock(mutex_);
    --in_flight_;
  });
}

void Stats::record(RequestRecord r) {
  std::lock_guard lock(mutex_);
  ++requests_;
  ++by_status_[std::to_string(r.status)];
  if (!r.model.empty()) ++by_model_[r.model];
  ++by_path_[r.path];
  if (r.status == 429) ++rate_limited_;
  if (!r.fault.empty()) ++faults_;
  received_.push_back(std::move(r));
  if (received_.size() > kKeep) received_.pop_front();
}

nlohmann::json Stats::to_json() const {
  std::lock_guard lock(mutex_);
  nlohmann::json received = nlohmann::json::array();
  for (const auto& r : received_) {
    received.push_back(
        {{"t_ms", r.t_ms},
         {"method", r.method},
         {"path", r.path},
         {"model", r.model},
         {"stream", r.stream},
         {"status", r.status},
         {"prompt", r.prompt},
         {"system", r.system},
         {"max_tokens", r.max_tokens ? nlohmann::json(*r.max_tokens) : nlohmann::json()},
         {"json", r.json_mode},
         {"auth", r.auth.empty() ? nlohmann::json() : nlohmann::json(r.auth)},
         {"fault", r.fault.empty() ? nlohmann::json() : nlohmann::json(r.fault)},
         {"params", r.params},
         {"headers", headers_json(r.headers)},
         {"query", query_json(r.query)}});
  }
  return {{"requests", requests_},   {"by_status", by_status_},         {"by_model", by_model_},
          {"by_path", by_path_},     {"rate_limited", rate_limited_},   {"faults", faults_},
          {"in_flight", in_flight_}, {"max_in_flight", max_in_flight_}, {"received", received}};
}

void Stats::reset() {
  std::lock_guard lock(mutex_);
  requests_ = rate_limited_ = faults_ = 0;
  // Requests still running stay counted as in flight; the peak restarts from them.
  max_in_flight_ = in_flight_;
  by_status_.clear();
  by_model_.clear();
  by_path_.clear();
  received_.clear();
}

}  // namespace detour::mock
