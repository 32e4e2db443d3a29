#include "stats.hpp"

namespace detour::mock {

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
         {"params", r.params}});
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
