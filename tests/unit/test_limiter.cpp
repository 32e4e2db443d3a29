// The limiter's shared document: reservations across the provider's and the target's buckets,
// requests too large for a minute, in-flight slots (and the one-at-a-time start while nothing
// is known), learning from headers, usage reconciliation, 429 resets, and what `limits` shows.
#include <catch2/catch.hpp>

#include "engine/limiter.hpp"

#include <sys/wait.h>
#include <unistd.h>

using namespace detour::engine;
using nlohmann::json;

namespace {

LimitScope scope_with(ConfiguredLimits provider = {}, ConfiguredLimits target = {}) {
  LimitScope s;
  s.provider = "mock";
  s.model = "m1";
  s.provider_limits = provider;
  s.target_limits = target;
  return s;
}

AdmissionRequest at(double now_ms, double tokens = 10, std::string lease = "x",
                    double max_wait_ms = 0) {
  AdmissionRequest r;
  r.now_ms = now_ms;
  r.tokens = tokens;
  r.holder = std::move(lease);
  r.max_wait_ms = max_wait_ms;
  return r;
}

AdmissionFeedback done(const std::string& lease, double now_ms) {
  AdmissionFeedback f;
  f.holder = lease;
  f.replied = true;
  f.now_ms = now_ms;
  return f;
}

}  // namespace

TEST_CASE("limiter: configured rpm paces requests and a wait is reserved only when accepted",
          "[limiter]") {
  json doc;
  const auto scope = scope_with({60, {}, 2, {}});  // provider: 60/min, burst 2
  const double now = 1'000'000;
  int n = 0;
  auto lease = [&] { return "r" + std::to_string(++n); };
  CHECK(admit(doc, scope, at(now, 10, lease()), true).wait_ms == 0);
  CHECK(admit(doc, scope, at(now, 10, lease()), true).wait_ms == 0);
  // The third needs one second: refused with max_wait 0, and nothing is reserved by asking.
  Admission a = admit(doc, scope, at(now, 10, lease()), true);
  CHECK(a.kind == Admission::Kind::wait);
  CHECK(a.wait_ms == Approx(1000));
  CHECK(a.why == "requests per minute of mock (60/min)");
  a = admit(doc, scope, at(now, 10, lease(), 5000), true);
  CHECK(a.kind == Admission::Kind::granted);
  CHECK(a.wait_ms == Approx(1000));
  a = admit(doc, scope, at(now, 10, lease(), 5000), true);  // the next slot, not the same one
  CHECK(a.wait_ms == Approx(2000));
}

TEST_CASE("limiter: a request must fit the provider's and the target's buckets", "[limiter]") {
  json doc;
  SECTION("the target's own rpm binds under a looser provider") {
    const auto scope = scope_with({600, {}, {}, {}}, {60, {}, 1, {}});
    CHECK(admit(doc, scope, at(0, 50, "a"), true).kind == Admission::Kind::granted);
    Admission a = admit(doc, scope, at(0, 50, "b"), true);
    CHECK(a.kind == Admission::Kind::wait);
    CHECK(a.why == "requests per minute of mock/m1 (60/min)");
    CHECK(a.wait_ms == Approx(1000));
  }
  SECTION("the provider's tokens per minute") {
    const auto scope = scope_with({600, 6000, {}, {}});  // 100 tokens a second, holds 100
    CHECK(admit(doc, scope, at(0, 50, "a"), true).kind == Admission::Kind::granted);
    Admission a = admit(doc, scope, at(0, 80, "b"), true);
    CHECK(a.why == "tokens per minute of mock (6000/min)");
    CHECK(a.wait_ms == Approx(300));
  }
}

TEST_CASE("limiter: a request larger than a whole minute's tokens is never sent", "[limiter]") {
  json doc;
  Admission a = admit(doc, scope_with({{}, 1000, {}, {}}), at(0, 1001), true);
  CHECK(a.kind == Admission::Kind::too_large);
  CHECK(a.why == "~1001 tokens is more than the whole tokens-per-minute limit of mock (1000/min)");
  CHECK(admit(doc, scope_with({{}, 1000, {}, {}}), at(0, 1000), true).kind ==
        Admission::Kind::granted);
}

TEST_CASE("limiter: in-flight slots are shared, freed on settle, and expire", "[limiter]") {
  json doc;
  const auto scope = scope_with({{}, {}, {}, 2});
  CHECK(admit(doc, scope, at(0, 1, "a"), true).kind == Admission::Kind::granted);
  CHECK(admit(doc, scope, at(0, 1, "b"), true).kind == Admission::Kind::granted);
  Admission full = admit(doc, scope, at(0, 1, "c"), true);
  CHECK(full.kind == Admission::Kind::wait);
  CHECK(full.slot_full);
  CHECK(full.others_hold);  // "a" and "b" are other processes than "c"
  CHECK(full.why == "2 request(s) in flight at mock (its concurrency limit)");
  CHECK(provider_view(doc, scope.provider_limits, 0).in_flight == 2);
  settle(doc, scope, done("a", 10));
  CHECK(admit(doc, scope, at(10, 1, "c"), true).kind == Admission::Kind::granted);
  // A process that died never settles: its slot frees itself after the lease.
  CHECK(admit(doc, scope, at(10, 1, "d"), true).kind == Admission::Kind::wait);
  CHECK(admit(doc, scope, at(70'000, 1, "d"), true).kind == Admission::Kind::granted);
}

TEST_CASE("limiter: with nothing known, one request at a time until the first reply", "[limiter]") {
  json doc;
  const auto scope = scope_with();
  CHECK(admit(doc, scope, at(0, 1, "first"), true).kind == Admission::Kind::granted);
  Admission second = admit(doc, scope, at(0, 1, "second"), true);
  CHECK(second.kind == Admission::Kind::wait);
  CHECK(second.why ==
        "1 request(s) in flight at mock/m1 (learning its limits from the first reply)");
  AdmissionFeedback f = done("first", 5);  // no rate-limit headers at all: no limits
  settle(doc, scope, f);
  for (int i = 0; i < 20; ++i)
    CHECK(admit(doc, scope, at(5, 1, "n" + std::to_string(i)), true).kind ==
          Admission::Kind::granted);
  // A configured limit anywhere is enough knowledge to start at full speed.
  json other;
  const auto configured = scope_with({6000, {}, {}, {}});
  CHECK(admit(other, configured, at(0, 1, "a"), true).kind == Admission::Kind::granted);
  CHECK(admit(other, configured, at(0, 1, "b"), true).kind == Admission::Kind::granted);
}

TEST_CASE("limiter: limits are learned from headers and the bucket resynchronised", "[limiter]") {
  json doc;
  const auto scope = scope_with();
  const double now = 1'000'000;
  REQUIRE(admit(doc, scope, at(now, 30, "p"), true).kind == Admission::Kind::granted);
  AdmissionFeedback f = done("p", now + 10);
  f.headers.requests_limit = 60;
  f.headers.requests_remaining = 4;  // after this one: the bucket holds 5
  f.headers.tokens_limit = 60'000;
  f.headers.tokens_remaining = 59'000;
  settle(doc, scope, f);
  const ScopeView view = target_view(doc, "m1", {}, {}, now + 10);
  CHECK(view.requests.learned == 60);
  CHECK(view.requests.remaining == 4);
  CHECK(view.tokens.learned == 60'000);
  CHECK(view.tokens.remaining == 59'000);
  CHECK_FALSE(view.concurrency_limit);  // known now: no more one-at-a-time
  // Four go at once, the fifth a second after the resync.
  for (int i = 0; i < 4; ++i)
    CHECK(admit(doc, scope, at(now + 10, 1, "q" + std::to_string(i)), true).wait_ms == 0);
  Admission fifth = admit(doc, scope, at(now + 10, 1, "q5"), true);
  CHECK(fifth.kind == Admission::Kind::wait);
  CHECK(fifth.wait_ms == Approx(1000));
  // A configured limit wins over the learned one; both are shown.
  const ScopeView mixed = target_view(doc, "m1", {120, {}, {}, {}}, {}, now + 10);
  CHECK(mixed.requests.configured == 120);
  CHECK(mixed.requests.learned == 60);
}

TEST_CASE("limiter: Anthropic's input-token limit stands in for a token limit", "[limiter]") {
  json doc;
  const auto scope = scope_with();
  admit(doc, scope, at(0, 1, "p"), true);
  AdmissionFeedback f = done("p", 1);
  f.headers.input_tokens_limit = 40'000;
  f.headers.input_tokens_remaining = 39'990;
  settle(doc, scope, f);
  CHECK(target_view(doc, "m1", {}, {}, 1).tokens.learned == 40'000);
  CHECK(admit(doc, scope, at(1, 40'001, "big"), true).kind == Admission::Kind::too_large);
}

TEST_CASE("limiter: usage corrects the token reservation; unsent requests are given back",
          "[limiter]") {
  json doc;
  const auto scope = scope_with({{}, 6000, {}, {}});  // 100 tokens a second, holds 100
  REQUIRE(admit(doc, scope, at(0, 100, "a"), true).kind == Admission::Kind::granted);
  CHECK(provider_view(doc, scope.provider_limits, 0).tokens.remaining == 0);
  AdmissionFeedback f = done("a", 0);
  f.reserved_tokens = 100;
  f.used_tokens = 40;
  settle(doc, scope, f);
  CHECK(provider_view(doc, scope.provider_limits, 0).tokens.remaining == 60);
  REQUIRE(admit(doc, scope, at(0, 60, "b"), true).kind == Admission::Kind::granted);
  AdmissionFeedback refused;
  refused.holder = "b";
  refused.reserved_tokens = 60;
  refused.reached_provider = false;  // connection refused: the provider never counted it
  settle(doc, scope, refused);
  CHECK(provider_view(doc, scope.provider_limits, 0).tokens.remaining == 60);
}

TEST_CASE("limiter: a 429 empties the target until the hinted reset", "[limiter]") {
  json doc;
  const auto scope = scope_with({}, {600, {}, {}, {}});  // plenty of configured capacity
  REQUIRE(admit(doc, scope, at(0, 1, "a"), true).kind == Admission::Kind::granted);
  AdmissionFeedback f = done("a", 100);
  f.blocked_until_ms = 100 + 7000;
  settle(doc, scope, f);
  Admission a = admit(doc, scope, at(200, 1, "b"), true);
  CHECK(a.kind == Admission::Kind::wait);
  CHECK(a.wait_ms == Approx(6900));
  CHECK(a.why == "a 429 from mock/m1 said to wait");
  CHECK(target_view(doc, "m1", scope.target_limits, {}, 200).blocked_until_ms == Approx(7100));
  CHECK(admit(doc, scope, at(7100, 1, "c"), true).kind == Admission::Kind::granted);
}

TEST_CASE("limiter: a document from another version never breaks admission", "[limiter]") {
  json doc = {{"provider", 7}, {"targets", {{"m1", {{"requests", "x"}, {"leases", 3}}}}}};
  CHECK(admit(doc, scope_with({60, {}, {}, {}}), at(0), true).kind == Admission::Kind::granted);
  json text = "garbage";
  CHECK(admit(text, scope_with(), at(0), true).kind == Admission::Kind::granted);
}

TEST_CASE("limiter: the bucket's size is learned from what remains plus what the request cost",
          "[limiter]") {
  const auto scope = scope_with();
  SECTION("remaining plus what this request cost") {
    json doc;
    admit(doc, scope, at(0, 101, "p"), true);
    AdmissionFeedback f = done("p", 0);
    f.reserved_tokens = 101;
    f.headers.tokens_limit = 40'000;
    f.headers.tokens_remaining = 565;  // 666 before this request
    settle(doc, scope, f);
    // 666 a second refill: the bucket is full again 101 tokens' time later, not at once.
    Admission a = admit(doc, scope, at(0, 4000, "big"), true);
    CHECK(a.kind == Admission::Kind::wait);
    CHECK(a.wait_ms == Approx(101 * 1.5));
  }
  SECTION("not from the reset headers, which are rounded up") {
    json doc;
    admit(doc, scope, at(0, 1, "p"), true);
    AdmissionFeedback f = done("p", 0);
    f.headers.requests_limit = 60;
    f.headers.requests_remaining = 2;
    f.headers.requests_reset = detour::Millis(3000);
    settle(doc, scope, f);
    CHECK(target_view(doc, "m1", {}, {}, 60'000).requests.remaining == 3);
  }
}

TEST_CASE("limiter: a request refused with a 429 gives its tokens back", "[limiter]") {
  json doc;
  const auto scope = scope_with({{}, 6000, {}, {}});  // 100 tokens a second, holds 100
  REQUIRE(admit(doc, scope, at(0, 100, "a"), true).kind == Admission::Kind::granted);
  AdmissionFeedback f = done("a", 0);
  f.reserved_tokens = 100;
  f.blocked_until_ms = 1000;
  settle(doc, scope, f);
  CHECK(provider_view(doc, scope.provider_limits, 0).tokens.remaining == 100);
}

TEST_CASE("limiter: a 429 does not hand its slot back into a schedule reserved after it",
          "[limiter]") {
  // 60 a minute, burst 1: slots at 0, 1000, 2000 and 3000 are reserved, then the one at 1000
  // draws a 429 whose hint (1,500) is before the last reservation. Giving its slot back would
  // let the next request in at 3000, on top of the one already there: another 429, and a
  // hole that never closes. The next request gets 4000.
  json doc;
  const auto scope = scope_with({}, {60, {}, 1, {}});
  for (double slot : {0.0, 1000.0, 2000.0, 3000.0}) {
    const Admission a = admit(doc, scope, at(0, 1, "me", 10'000), true);
    REQUIRE(a.kind == Admission::Kind::granted);
    REQUIRE(a.wait_ms == Approx(slot));
  }
  AdmissionFeedback f = done("me", 1000);
  f.blocked_until_ms = 1500;
  settle(doc, scope, f);
  const Admission next = admit(doc, scope, at(1000, 1, "me", 10'000), true);
  REQUIRE(next.kind == Admission::Kind::granted);
  CHECK(next.wait_ms == Approx(3000));  // at 4000
}

TEST_CASE("limiter: one process's requests in flight are one count, however many", "[limiter]") {
  json doc;
  const auto scope = scope_with({{}, {}, {}, 1000});
  REQUIRE(admit(doc, scope, at(0, 1, "me"), true).kind == Admission::Kind::granted);
  const std::size_t size_at_1 = doc.dump().size();
  for (int i = 1; i < 500; ++i) {
    REQUIRE(admit(doc, scope, at(i, 1, "me"), true).kind == Admission::Kind::granted);
  }
  // The same document but for the digits of the two counts (the provider's and the target's).
  CHECK(doc.dump().size() <= size_at_1 + 4);
  CHECK(doc["provider"]["in_flight"].size() == 1);
  CHECK(doc["provider"]["in_flight"]["me"]["n"] == 500);
  CHECK(provider_view(doc, scope.provider_limits, 500).in_flight == 500);
  for (int i = 0; i < 499; ++i)
    settle(doc, scope, done("me", 600 + i));
  CHECK(provider_view(doc, scope.provider_limits, 1200).in_flight == 1);
  settle(doc, scope, done("me", 1200));
  CHECK(doc["provider"]["in_flight"].empty());
  // The count expires with the latest reservation's longest attempt, not the first one's.
  admit(doc, scope, at(0, 1, "me"), true);
  admit(doc, scope, at(50'000, 1, "me"), true);
  CHECK(provider_view(doc, scope.provider_limits, 100'000).in_flight == 2);
  CHECK(provider_view(doc, scope.provider_limits, 110'001).in_flight == 0);
}

TEST_CASE("limiter: a full scope says whether other processes hold its slots", "[limiter]") {
  json doc;
  const auto scope = scope_with({{}, {}, {}, 1});
  REQUIRE(admit(doc, scope, at(0, 1, "me"), true).kind == Admission::Kind::granted);
  Admission mine = admit(doc, scope, at(1, 1, "me"), true);
  CHECK(mine.slot_full);
  CHECK_FALSE(mine.others_hold);  // only this process's settlement can free it
  Admission theirs = admit(doc, scope, at(1, 1, "other"), true);
  CHECK(theirs.slot_full);
  CHECK(theirs.others_hold);
  // An entry of an earlier version (one per request) is dropped, not counted.
  json old = {{"provider", {{"leases", {{"r1", 1e15}}}}}};
  CHECK(admit(old, scope, at(1, 1, "me"), true).kind == Admission::Kind::granted);
  CHECK_FALSE(old["provider"].contains("leases"));
}

// A process killed while it held slots frees them at once: a `kill -9` during the one-at-a-time
// first request to an unknown target used to stall every other process for the request's
// longest attempt (tests/integration/test_batch.cpp, "kill -9 at any point").
TEST_CASE("limiter: the slots of a process that has ended are free", "[limiter]") {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(holder_is_gone(std::to_string(child) + "-00c0ffee00c0ffee"));
  CHECK_FALSE(holder_is_gone(std::to_string(::getpid()) + "-00c0ffee00c0ffee"));
  CHECK_FALSE(holder_is_gone("a"));
  CHECK_FALSE(holder_is_gone("-1"));
  CHECK_FALSE(holder_is_gone("12x-3"));

  // In a scope's document: the ended process's count no longer takes a slot; a live one's does.
  auto doc_held_by = [](pid_t pid) {
    return json{{"provider",
                 {{"in_flight",
                   {{std::to_string(pid) + "-00c0ffee00c0ffee", {{"n", 1}, {"until", 1e12}}}}}}}};
  };
  ConfiguredLimits none;
  CHECK(provider_view(doc_held_by(child), none, 0.0).in_flight == 0);
  CHECK(provider_view(doc_held_by(::getpid()), none, 0.0).in_flight == 1);
}

// One rule for how long a 429 holds a target back, for a call's and a health probe's alike.
TEST_CASE("limiter: a 429 holds the target until its hint, else its requests reset, else 1 s",
          "[limiter]") {
  using detour::Millis;
  struct Row {
    std::optional<Millis> hint, requests_reset;
    double until;
  };
  const std::vector<Row> rows = {
      {Millis(2500), Millis(9000), 12'500},  // the reply's hint comes first
      {std::nullopt, Millis(9000), 19'000},  // then when the requests bucket is full again
      {std::nullopt, std::nullopt, 11'000},  // then a second
      {Millis(0), std::nullopt, 10'000},     // "Retry-After: 0" is a hint too
  };
  for (const auto& row : rows) {
    detour::providers::RateLimitInfo headers;
    headers.requests_reset = row.requests_reset;
    CHECK(blocked_until_after_429(10'000, row.hint, headers) == row.until);
  }
}
