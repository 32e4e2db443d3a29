#include "engine/retry.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

namespace detour::engine {

Millis backoff_delay(int retries_so_far, const BackoffConfig& config, std::mt19937_64& rng) {
  const int64_t base = config.base.count();
  const int64_t cap = config.cap.count();
  if (base <= 0 || cap <= 0) return Millis{0};
  // Double until the cap is reached; stops early, so no overflow whatever n is.
  int64_t ceiling = std::min(base, cap);
  for (int i = 0; i < retries_so_far && ceiling < cap; ++i) {
    ceiling = ceiling > cap / 2 ? cap : ceiling * 2;
  }
  std::uniform_int_distribution<int64_t> dist(0, ceiling);
  return Millis{dist(rng)};
}

namespace {

Millis non_negative(Millis d) {
  return std::max(d, Millis{0});
}

bool exhausted(const std::optional<int64_t>& remaining) {
  return remaining.has_value() && *remaining <= 0;
}

}  // namespace

std::optional<Millis> server_hint(const providers::RateLimitInfo& headers,
                                  const providers::ProviderError& error) {
  if (headers.retry_after) return non_negative(*headers.retry_after);
  if (error.retry_delay) return non_negative(*error.retry_delay);
  if (error.status != 429) return std::nullopt;

  const auto& req = headers.requests_reset;
  const auto& tok = headers.tokens_reset;
  if (!req && !tok) return std::nullopt;
  if (!req) return non_negative(*tok);
  if (!tok) return non_negative(*req);

  const bool req_out = exhausted(headers.requests_remaining);
  const bool tok_out = exhausted(headers.tokens_remaining);
  Millis chosen;
  if (req_out && tok_out) {
    chosen = std::max(*req, *tok);  // both must reset before a request can pass
  } else if (req_out) {
    chosen = *req;
  } else if (tok_out) {
    chosen = *tok;
  } else {
    chosen = std::min(*req, *tok);
  }
  return non_negative(chosen);
}

namespace {

// "<a> <op> <b>" for -v lines; exact milliseconds when rounding would make both sides look equal
// ("10.001s > 10s", not "10s > 10s").
std::string compare(const char* label, Millis a, const char* op, Millis b) {
  std::string fa = format_duration(a), fb = format_duration(b);
  if (fa == fb && a != b) {
    fa = std::to_string(a.count()) + "ms";
    fb = std::to_string(b.count()) + "ms";
  }
  return std::string(label) + fa + op + fb;
}

}  // namespace

WaitDecision decide_wait(std::optional<Millis> hint, Millis backoff, Millis time_left,
                         Millis move_on_threshold, bool other_target_usable) {
  const Millis wait = non_negative(hint.value_or(backoff));
  const char* label = hint ? "retry-after " : "backoff ";

  if (wait >= time_left) {
    return {WaitDecision::Kind::move_on, wait,
            compare(label, wait, " >= time left ", non_negative(time_left))};
  }
  if (wait > move_on_threshold && other_target_usable) {
    return {WaitDecision::Kind::move_on, wait,
            compare(label, wait, " > ", move_on_threshold) + " while another target is usable"};
  }
  std::string reason = "waiting " + (label + format_duration(wait));
  if (wait > move_on_threshold) reason += " (no other target is usable)";
  return {WaitDecision::Kind::retry_after, wait, std::move(reason)};
}

RetryBudget::RetryBudget(double max_tokens, double token_ratio)
    : max_tokens_(std::max(0.0, max_tokens)),
      token_ratio_(std::max(0.0, token_ratio)),
      tokens_(max_tokens_) {}

bool RetryBudget::allow_retry() {
  if (tokens_ <= max_tokens_ / 2) return false;
  tokens_ = std::max(0.0, tokens_ - 1);
  return true;
}

void RetryBudget::set_tokens(double tokens) {
  tokens_ = std::clamp(tokens, 0.0, max_tokens_);
}

void RetryBudget::on_success() {
  tokens_ = std::min(max_tokens_, tokens_ + token_ratio_);
}

void RetryBudget::on_failure() {
  tokens_ = std::max(0.0, tokens_ - 1);
}

bool is_transient(ErrorClass c) {
  switch (c) {
    case ErrorClass::rate_limited:
    case ErrorClass::overloaded:
    case ErrorClass::server_error:
    case ErrorClass::timeout:     // move on now; back to it only after the rest of the chain
    case ErrorClass::connection:  // likewise
    case ErrorClass::invalid_response:
      return true;
    case ErrorClass::none:
    case ErrorClass::quota_exhausted:
    case ErrorClass::auth:
    case ErrorClass::not_found:
    case ErrorClass::bad_request:
    case ErrorClass::context_length:
    case ErrorClass::content_filter:
    case ErrorClass::empty_response:
    case ErrorClass::refusal:
    case ErrorClass::schema_mismatch:
    case ErrorClass::truncated:
    case ErrorClass::skipped_open:
    case ErrorClass::skipped_budget:
    case ErrorClass::cancelled:
      return false;
  }
  return false;
}

}  // namespace detour::engine
