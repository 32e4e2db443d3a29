#pragma once
// Enforced requests-per-minute and tokens-per-minute limits (token buckets, one pair per mock
// process), and the rate-limit response headers each provider really sends.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "protocols.hpp"
#include "scenario.hpp"

namespace detour::mock {

// One limit as the headers report it.
struct BucketView {
  bool enabled = false;
  std::int64_t limit = 0;      // per minute
  std::int64_t remaining = 0;  // whole units available now
  double reset_s = 0;          // until the bucket is full again
};

struct LimitSnapshot {
  BucketView requests;
  BucketView tokens;
};

struct Verdict {
  bool admitted = true;
  bool too_large = false;      // the request alone exceeds the per-minute token limit
  std::string exceeded;        // "requests" or "tokens" when not admitted
  double retry_after_s = 0;    // until this request would be admitted
  std::int64_t limit = 0;      // of the exceeded limit
  std::int64_t requested = 0;  // tokens this request asked for
  LimitSnapshot snapshot;      // after charging, for the headers
};

class RateLimiter {
 public:
  // Sets the limits and refills both buckets.
  void configure(const Limits& limits);
  // Admits and charges one request estimated at `tokens`, or says how long until it would fit.
  Verdict admit(std::int64_t tokens);

 private:
  struct Bucket {
    bool enabled = false;
    std::int64_t per_minute = 0;
    double capacity = 0;
    double level = 0;
    std::chrono::steady_clock::time_point last;

    void refill(std::chrono::steady_clock::time_point now);
    double wait_s(double cost) const;
    BucketView view() const;
  };
  static Bucket make_bucket(std::int64_t per_minute, double capacity);

  std::mutex mutex_;
  Bucket requests_;
  Bucket tokens_;
};

// "1s", "6m0s", "120ms", "1h2m3.5s": Go's time.Duration format, as OpenAI's reset headers use.
std::string go_duration(double seconds);
// UTC RFC 3339 time `seconds` from now, rounded up to the second, as Anthropic's resets use.
std::string rfc3339_from_now(double seconds);

// The provider's rate-limit headers for a snapshot (none for Gemini or when unlimited).
std::vector<std::pair<std::string, std::string>> ratelimit_headers(Protocol protocol,
                                                                   const LimitSnapshot& snap);

}  // namespace detour::mock
