#pragma once
// What detour-mock received, for GET /_mock/stats: counters plus the last 1000 requests.
// Thread-safe. Never holds API key values, only which header carried one.
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace detour::mock {

struct RequestRecord {
  std::int64_t t_ms = 0;  // since the mock started
  std::string method;
  std::string path;
  std::string model;
  bool stream = false;
  int status = 0;  // 0: the connection was closed without a response
  std::string prompt;
  std::string system;
  std::optional<std::int64_t> max_tokens;
  bool json_mode = false;
  std::string auth;   // "bearer", "x-api-key", "x-goog-api-key", "key-param" or "" (none)
  std::string fault;  // the injected fault that fired, or ""
  nlohmann::json params = nlohmann::json::object();  // body fields except the messages
  // As sent, in order: header names lowercased, query parameters percent-decoded; the values
  // of credentials replaced by kRedacted before they get here (see is_secret_header).
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> query;
};

// What a recorded credential's value reads as: the mock never holds key values.
inline constexpr std::string_view kRedacted = "<redacted>";
// Headers and query parameters whose values are credentials (names lowercased): the three
// protocols' key headers, Azure's api-key and its API Management subscription key.
bool is_secret_header(std::string_view name);
bool is_secret_param(std::string_view name);

class Stats {
 public:
  static constexpr std::size_t kKeep = 1000;

  Stats();
  // Counts a request as in flight until the returned token is released; streaming replies
  // keep it until their last byte is written.
  std::shared_ptr<void> enter();
  void record(RequestRecord record);
  nlohmann::json to_json() const;
  void reset();
  std::int64_t now_ms() const;

 private:
  mutable std::mutex mutex_;
  std::chrono::steady_clock::time_point start_;
  std::int64_t requests_ = 0;
  std::int64_t rate_limited_ = 0;
  std::int64_t faults_ = 0;
  std::int64_t in_flight_ = 0;
  std::int64_t max_in_flight_ = 0;
  std::map<std::string, std::int64_t> by_status_, by_model_, by_path_;
  std::deque<RequestRecord> received_;
};

}  // namespace detour::mock
