#include "limits.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace detour::mock {

namespace {

using Clock = std::chrono::steady_clock;

// Formats seconds with up to three decimals and no trailing zeros: 1.5 -> "1.5", 2 -> "2".
std::string trimmed_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  std::string out = buf;
  while (out.back() == '0')
    out.pop_back();
  if (out.back() == '.') out.pop_back();
  return out;
}

}  // namespace

RateLimiter::Bucket RateLimiter::make_bucket(std::int64_t per_minute, double capacity) {
  Bucket b;
  b.enabled = per_minute > 0;
  b.per_minute = per_minute;
  b.capacity = capacity;
  b.level = capacity;
  b.last = Clock::now();
  return b;
}

void RateLimiter::Bucket::refill(Clock::time_point now) {
  if (!enabled) return;
  double elapsed = std::chrono::duration<double>(now - last).count();
  last = now;
  level = std::min(capacity, level + elapsed * static_cast<double>(per_minute) / 60.0);
}

// A request bigger than the whole bucket waits for a full bucket and then drives the level
// negative: the debt is repaid at the sustained rate, so big requests are slow but never starve.
double RateLimiter::Bucket::wait_s(double cost) const {
  if (!enabled) return 0;
  double need = std::min(cost, capacity);
  if (level >= need) return 0;
  return (need - level) * 60.0 / static_cast<double>(per_minute);
}

BucketView RateLimiter::Bucket::view() const {
  BucketView v;
  v.enabled = enabled;
  if (!enabled) return v;
  v.limit = per_minute;
  v.remaining = static_cast<std::int64_t>(std::max(0.0, std::floor(level)));
  v.reset_s = std::max(0.0, (capacity - level) * 60.0 / static_cast<double>(per_minute));
  return v;
}

void RateLimiter::configure(const Limits& limits) {
  std::lock_guard lock(mutex_);
  // One second's worth is the default burst: rpm 60 paces one request per second.
  double rburst = limits.burst.value_or(std::max(1.0, static_cast<double>(limits.rpm) / 60.0));
  double tburst =
      limits.burst_tokens.value_or(std::max(1.0, static_cast<double>(limits.tpm) / 60.0));
  requests_ = make_bucket(limits.rpm, rburst);
  tokens_ = make_bucket(limits.tpm, tburst);
}

Verdict RateLimiter::admit(std::int64_t tokens) {
  std::lock_guard lock(mutex_);
  auto now = Clock::now();
  requests_.refill(now);
  tokens_.refill(now);
  Verdict v;
  v.requested = tokens;
  if (tokens_.enabled && tokens > tokens_.per_minute) {
    v.admitted = false;
    v.too_large = true;
    v.exceeded = "tokens";
    v.limit = tokens_.per_minute;
  } else {
    double rwait = requests_.wait_s(1);
    double twait = tokens_.wait_s(static_cast<double>(tokens));
    if (rwait > 0 || twait > 0) {
      v.admitted = false;
      v.exceeded = rwait >= twait ? "requests" : "tokens";
      v.limit = rwait >= twait ? requests_.per_minute : tokens_.per_minute;
      v.retry_after_s = std::max(rwait, twait);
    } else {
      if (requests_.enabled) requests_.level -= 1;
      if (tokens_.enabled) tokens_.level -= static_cast<double>(tokens);
    }
  }
  v.snapshot = {requests_.view(), tokens_.view()};
  return v;
}

std::string go_duration(double seconds) {
  auto ms = static_cast<std::int64_t>(std::ceil(std::max(0.0, seconds) * 1000.0));
  if (ms == 0) return "0s";
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::int64_t h = ms / 3'600'000;
  std::int64_t m = ms / 60'000 % 60;
  double s = static_cast<double>(ms % 60'000) / 1000.0;
  std::string out;
  if (h > 0) out += std::to_string(h) + "h";
  if (h > 0 || m > 0) out += std::to_string(m) + "m";
  return out + trimmed_seconds(s) + "s";
}

std::string rfc3339_from_now(double seconds) {
  auto t = std::chrono::system_clock::now() +
           std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(seconds * 1000.0)));
  std::time_t tt = std::chrono::system_clock::to_time_t(std::chrono::ceil<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::vector<std::pair<std::string, std::string>> ratelimit_headers(Protocol protocol,
                                                                   const LimitSnapshot& snap) {
  std::vector<std::pair<std::string, std::string>> h;
  auto add = [&](const BucketView& b, const char* openai_kind, const char* anthropic_kind) {
    if (!b.enabled) return;
    if (protocol == Protocol::openai) {
      std::string k = openai_kind;
      h.emplace_back("x-ratelimit-limit-" + k, std::to_string(b.limit));
      h.emplace_back("x-ratelimit-remaining-" + k, std::to_string(b.remaining));
      h.emplace_back("x-ratelimit-reset-" + k, go_duration(b.reset_s));
    } else if (protocol == Protocol::anthropic) {
      std::string k = std::string("anthropic-ratelimit-") + anthropic_kind;
      h.emplace_back(k + "-limit", std::to_string(b.limit));
      h.emplace_back(k + "-remaining", std::to_string(b.remaining));
      h.emplace_back(k + "-reset", rfc3339_from_now(b.reset_s));
    }
  };
  add(snap.requests, "requests", "requests");
  add(snap.tokens, "tokens", "tokens");
  return h;
}

}  // namespace detour::mock
