#include "engine/limiter.hpp"

#include <signal.h>

#include <cerrno>

#include <algorithm>
#include <cmath>

namespace detour::engine {

using nlohmann::json;

namespace {

double number(const json& object, const char* key, double fallback = 0) {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : fallback;
}

json& object_at(json& parent, const std::string& key) {
  if (!parent.is_object()) parent = json::object();
  json& child = parent[key];
  if (!child.is_object()) child = json::object();
  return child;
}

const json& object_in(const json& parent, const std::string& key) {
  static const json empty = json::object();
  if (!parent.is_object()) return empty;
  auto it = parent.find(key);
  return it != parent.end() && it->is_object() ? *it : empty;
}

// One scope of a document (the provider, or one target), with its config and its name.
struct Scope {
  json* doc;
  const ConfiguredLimits* configured;
  std::string name;
  bool is_target;
};

Rate requests_rate(const json& scope, const ConfiguredLimits& configured) {
  const json& bucket = object_in(scope, "requests");
  Rate rate;
  rate.per_minute = configured.rpm ? static_cast<double>(*configured.rpm) : number(bucket, "limit");
  rate.burst = burst_for(rate.per_minute, static_cast<double>(configured.burst.value_or(0)),
                         number(bucket, "burst"));
  return rate;
}

Rate tokens_rate(const json& scope, const ConfiguredLimits& configured) {
  const json& bucket = object_in(scope, "tokens");
  Rate rate;
  rate.per_minute = configured.tpm ? static_cast<double>(*configured.tpm) : number(bucket, "limit");
  rate.burst = burst_for(rate.per_minute, 0, number(bucket, "burst"));
  return rate;
}

// The most requests that may be in flight in a scope; nullopt: no limit.
std::optional<std::int64_t> slot_limit(const json& scope, const ConfiguredLimits& configured,
                                       const ConfiguredLimits& other, bool is_target) {
  if (configured.concurrency) return configured.concurrency;
  // Nothing known anywhere: one request at a time until the first reply teaches the limits.
  const bool known = scope.is_object() && scope.value("known", false);
  if (is_target && !known && !configured.any() && !other.any()) return 1;
  return std::nullopt;
}

}  // namespace

// A holder id is "<pid>-<random>" (engine/shared_state.cpp). The SQLite store is shared only by
// the processes of one machine, so a pid that no longer exists holds nothing, whatever its
// `until` says: waiting for that (the request's longest possible attempt, a minute or more)
// stalled every other process after a `kill -9` during the one-at-a-time first request to a
// target nothing is known about (tests/integration/test_batch.cpp, "kill -9 at any point").
// Ids of another form (tests) are never gone. A store shared across machines must put the
// machine in the id before it can use this.
bool holder_is_gone(std::string_view who) {
  const auto dash = who.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash > 9) return false;
  long pid = 0;
  for (char c : who.substr(0, dash)) {
    if (c < '0' || c > '9') return false;
    pid = pid * 10 + (c - '0');
  }
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH;
}

namespace {

// Forgets the counts of processes that are gone, or whose reservations have all outlived their
// longest attempt (the process died or hung), and any entry that is not a count.
void drop_expired_holders(json& scope, double now) {
  json& holders = object_at(scope, "in_flight");
  for (auto it = holders.begin(); it != holders.end();) {
    if (number(*it, "n") <= 0 || number(*it, "until") < now || holder_is_gone(it.key())) {
      it = holders.erase(it);
    } else {
      ++it;
    }
  }
  scope.erase("leases");  // per-request entries of earlier versions
}

// Slots in flight in a scope: (all processes, other processes than `holder`), unexpired.
std::pair<std::int64_t, std::int64_t> slots_in(const json& scope, const std::string& holder,
                                               double now) {
  std::int64_t all = 0, others = 0;
  for (const auto& [who, entry] : object_in(scope, "in_flight").items()) {
    if (number(entry, "until") < now || holder_is_gone(who)) continue;
    const auto n = static_cast<std::int64_t>(number(entry, "n"));
    all += n;
    if (who != holder) others += n;
  }
  return {all, others};
}

std::string per_minute_text(double per_minute) {
  return std::to_string(static_cast<std::int64_t>(std::llround(per_minute))) + "/min";
}

void shift_bucket(json& scope, const char* which, const Rate& rate, double delta) {
  if (!rate.limited()) return;
  json& bucket = object_at(scope, which);
  bucket["tat"] = adjust(number(bucket, "tat"), rate, delta);
}

// Learns one bucket's limit from a reply's headers and resynchronises it. The bucket's size
// is never stated, but what remains plus what this request cost is a lower bound (it was
// admitted, so the bucket held both). The reset headers would give another, but they are
// rounded (Anthropic's to the second, OpenAI's "6m0s"), which overstates the size.
void learn(json& scope, const char* which, const ConfiguredLimits& configured,
           std::optional<std::int64_t> limit, std::optional<std::int64_t> remaining, double cost,
           double now) {
  if (!limit && !remaining) return;
  json& bucket = object_at(scope, which);
  if (limit && *limit > 0) bucket["limit"] = *limit;
  const bool requests = std::string_view(which) == "requests";
  if (remaining) {
    bucket["burst"] = std::max(number(bucket, "burst"), static_cast<double>(*remaining) + cost);
    bucket["remaining"] = *remaining;
    bucket["reported_at"] = now;
  }
  // The burst may have grown: resynchronise with the rate as it is now.
  const Rate learned = requests ? requests_rate(scope, configured) : tokens_rate(scope, configured);
  if (remaining && learned.limited()) {
    bucket["tat"] = resync(number(bucket, "tat"), learned, static_cast<double>(*remaining), now);
  }
}

BucketView bucket_view(const json& scope, const char* which, const Rate& rate,
                       std::optional<std::int64_t> configured, double now) {
  const json& bucket = object_in(scope, which);
  BucketView view;
  view.configured = configured;
  if (bucket.contains("limit") && bucket["limit"].is_number())
    view.learned = bucket["limit"].get<std::int64_t>();
  if (rate.limited()) {
    const double tat = number(bucket, "tat");
    view.remaining =
        static_cast<std::int64_t>(std::floor(std::max(0.0, bucket_level(tat, rate, now))));
    view.reset_at_ms = std::max(tat, now);
  } else if (bucket.contains("remaining") && bucket["remaining"].is_number()) {
    view.remaining = bucket["remaining"].get<std::int64_t>();
  }
  return view;
}

ScopeView scope_view(const json& scope, const ConfiguredLimits& configured,
                     const ConfiguredLimits& other, bool is_target, double now) {
  ScopeView view;
  view.requests =
      bucket_view(scope, "requests", requests_rate(scope, configured), configured.rpm, now);
  view.tokens = bucket_view(scope, "tokens", tokens_rate(scope, configured), configured.tpm, now);
  view.concurrency_limit = slot_limit(scope, configured, other, is_target);
  view.in_flight = slots_in(scope, "", now).first;
  const double blocked = number(scope, "blocked_until");
  if (blocked > now) view.blocked_until_ms = blocked;
  return view;
}

}  // namespace

std::string limits_key(const std::string& provider) {
  return "limits:" + provider;
}

Admission admit(json& doc, const LimitScope& scope, const AdmissionRequest& request, bool commit) {
  const double now = request.now_ms;
  json& provider = object_at(doc, "provider");
  json& target = object_at(object_at(doc, "targets"), scope.model);
  const Scope scopes[] = {
      {&provider, &scope.provider_limits, scope.provider, false},
      {&target, &scope.target_limits, scope.provider + "/" + scope.model, true},
  };
  Admission result;

  for (const Scope& s : scopes) {
    const Rate tokens = tokens_rate(*s.doc, *s.configured);
    if (tokens.limited() && request.tokens > tokens.per_minute) {
      result.kind = Admission::Kind::too_large;
      result.why = "~" + std::to_string(static_cast<std::int64_t>(request.tokens)) +
                   " tokens is more than the whole tokens-per-minute limit of " + s.name + " (" +
                   per_minute_text(tokens.per_minute) + ")";
      return result;
    }
  }

  for (const Scope& s : scopes) {
    if (commit) drop_expired_holders(*s.doc, now);
    const ConfiguredLimits& other = s.is_target ? scope.provider_limits : scope.target_limits;
    auto limit = slot_limit(*s.doc, *s.configured, other, s.is_target);
    const auto [held, by_others] = slots_in(*s.doc, request.holder, now);
    if (limit && held >= *limit) {
      result.kind = Admission::Kind::wait;
      result.slot_full = true;
      result.others_hold = by_others > 0;
      result.wait_ms = static_cast<double>(kOtherHoldersRecheck.count());
      result.why = std::to_string(*limit) + " request(s) in flight at " + s.name +
                   (s.configured->concurrency ? " (its concurrency limit)"
                                              : " (learning its limits from the first reply)");
      return result;
    }
  }

  double at = std::max(now, number(target, "blocked_until"));
  if (at > now) result.why = "a 429 from " + scopes[1].name + " said to wait";
  for (const Scope& s : scopes) {
    const Rate rates[] = {requests_rate(*s.doc, *s.configured), tokens_rate(*s.doc, *s.configured)};
    const double costs[] = {1, request.tokens};
    const char* names[] = {"requests", "tokens"};
    for (int b = 0; b < 2; ++b) {
      const double when =
          allow_at(number(object_in(*s.doc, names[b]), "tat"), rates[b], costs[b], now);
      if (when > at) {
        at = when;
        result.why = std::string(names[b]) + " per minute of " + s.name + " (" +
                     per_minute_text(rates[b].per_minute) + ")";
      }
    }
  }
  result.wait_ms = at - now;
  if (result.wait_ms > request.max_wait_ms) {
    result.kind = Admission::Kind::wait;
    return result;
  }
  result.kind = Admission::Kind::granted;
  if (!commit) return result;
  for (const Scope& s : scopes) {
    const Rate rates[] = {requests_rate(*s.doc, *s.configured), tokens_rate(*s.doc, *s.configured)};
    const double costs[] = {1, request.tokens};
    const char* names[] = {"requests", "tokens"};
    for (int b = 0; b < 2; ++b) {
      if (!rates[b].limited()) continue;
      json& bucket = object_at(*s.doc, names[b]);
      bucket["tat"] = take(number(bucket, "tat"), rates[b], costs[b], at);
    }
    json& mine = object_at(object_at(*s.doc, "in_flight"), request.holder);
    mine["n"] = static_cast<std::int64_t>(number(mine, "n")) + 1;
    mine["until"] = std::max(number(mine, "until"), at + request.lease_ms);
  }
  return result;
}

double blocked_until_after_429(double now_ms, std::optional<Millis> hint,
                               const providers::RateLimitInfo& headers) {
  const Millis wait = hint.value_or(headers.requests_reset.value_or(Millis(1000)));
  return now_ms + static_cast<double>(wait.count());
}

void settle(json& doc, const LimitScope& scope, const AdmissionFeedback& f) {
  json& provider = object_at(doc, "provider");
  json& target = object_at(object_at(doc, "targets"), scope.model);
  const Scope scopes[] = {
      {&provider, &scope.provider_limits, scope.provider, false},
      {&target, &scope.target_limits, scope.provider + "/" + scope.model, true},
  };
  // A request that never reached the provider used none of its limits: give it all back. One
  // it refused for its rate limit used no tokens, but its request slot stays taken: the 429
  // says the provider's bucket is fuller than ours, and handing the slot back would open a
  // hole in a schedule other requests have already reserved after it -- the next reservation
  // would land on top of one of theirs, draw another 429, and so on for the rest of the run.
  const bool give_back = !f.reached_provider || f.blocked_until_ms.has_value();
  for (const Scope& s : scopes) {
    json& holders = object_at(*s.doc, "in_flight");
    if (auto it = holders.find(f.holder); it != holders.end()) {
      const auto left = static_cast<std::int64_t>(number(*it, "n")) - 1;
      if (left <= 0) {
        holders.erase(it);
      } else {
        (*it)["n"] = left;
      }
    }
    if (give_back) {
      if (!f.reached_provider)
        shift_bucket(*s.doc, "requests", requests_rate(*s.doc, *s.configured), -1);
      shift_bucket(*s.doc, "tokens", tokens_rate(*s.doc, *s.configured), -f.reserved_tokens);
    } else if (f.used_tokens) {
      shift_bucket(*s.doc, "tokens", tokens_rate(*s.doc, *s.configured),
                   *f.used_tokens - f.reserved_tokens);
    }
  }
  if (!f.replied) return;
  // Rate-limit headers describe the model's own limits (OpenAI and Anthropic limit per
  // model), so they teach the target's buckets; the provider's come from config only.
  target["known"] = true;
  const auto& h = f.headers;
  // What this request cost the provider's buckets (nothing when it was refused).
  learn(target, "requests", scope.target_limits, h.requests_limit, h.requests_remaining,
        give_back ? 0 : 1, f.now_ms);
  learn(target, "tokens", scope.target_limits,
        h.tokens_limit ? h.tokens_limit : h.input_tokens_limit,
        h.tokens_remaining ? h.tokens_remaining : h.input_tokens_remaining,
        give_back ? 0 : f.reserved_tokens, f.now_ms);
  if (f.blocked_until_ms) {
    const double until = std::max(number(target, "blocked_until"), *f.blocked_until_ms);
    target["blocked_until"] = until;
    const Rate rate = requests_rate(target, scope.target_limits);
    if (rate.limited()) {
      json& bucket = object_at(target, "requests");
      bucket["tat"] = empty_until(number(bucket, "tat"), rate, until);
    }
  }
}

ScopeView provider_view(const json& doc, const ConfiguredLimits& configured, double now_ms) {
  return scope_view(object_in(doc, "provider"), configured, {}, false, now_ms);
}

ScopeView target_view(const json& doc, const std::string& model, const ConfiguredLimits& configured,
                      const ConfiguredLimits& provider, double now_ms) {
  return scope_view(object_in(object_in(doc, "targets"), model), configured, provider, true,
                    now_ms);
}

Admission Limiter::reserve(const LimitScope& scope, const AdmissionRequest& request) {
  Admission result;
  view_.update_now(limits_key(scope.provider),
                   [&](json& doc) { result = admit(doc, scope, request, /*commit=*/true); });
  return result;
}

Admission Limiter::peek(const LimitScope& scope, const AdmissionRequest& request) {
  json doc = view_.get(limits_key(scope.provider));
  return admit(doc, scope, request, /*commit=*/false);
}

void Limiter::settle(const LimitScope& scope, const AdmissionFeedback& feedback) {
  // By value: the change is replayed on the stored document at the next sync.
  view_.change(limits_key(scope.provider),
               [scope, feedback](json& doc) { engine::settle(doc, scope, feedback); });
  if (settled_) settled_(scope.provider);
}

}  // namespace detour::engine
