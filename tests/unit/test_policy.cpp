// The failure policy (docs/architecture.md, "Failure policy and retries"), row by row: what each
// class does, how the server's hints, x-should-retry, retries, the budget and the deadline change
// it.
#include <catch2/catch.hpp>

#include "engine/policy.hpp"

using namespace detour;
using engine::Action;
using engine::Decision;
using engine::ErrorClass;
using Kind = engine::Decision::Kind;

namespace {

engine::FailureFacts facts(ErrorClass c) {
  engine::FailureFacts f;
  f.error = c;
  f.backoff = Millis(400);
  f.retries_used = 0;
  f.max_retries = 2;
  f.time_left = Millis(60'000);
  f.other_target_usable = true;
  return f;
}

}  // namespace

TEST_CASE("policy: every failure class has its row and action", "[policy]") {
  struct Row {
    ErrorClass error;
    Action action;
    Kind first_decision;  // with retries left, budget, time and another target usable
    bool come_back;
  };
  const std::vector<Row> rows = {
      {ErrorClass::rate_limited, Action::wait_or_move_on, Kind::retry_same, false},
      {ErrorClass::quota_exhausted, Action::move_on_never, Kind::next_target, false},
      {ErrorClass::overloaded, Action::retry_then_move_on, Kind::retry_same, false},
      {ErrorClass::server_error, Action::retry_then_move_on, Kind::retry_same, false},
      {ErrorClass::timeout, Action::move_on_come_back, Kind::next_target, true},
      {ErrorClass::connection, Action::move_on_come_back, Kind::next_target, true},
      {ErrorClass::auth, Action::move_on_never, Kind::next_target, false},
      {ErrorClass::not_found, Action::move_on_never, Kind::next_target, false},
      {ErrorClass::bad_request, Action::stop, Kind::stop, false},
      {ErrorClass::context_length, Action::larger_window, Kind::next_target, false},
      {ErrorClass::content_filter, Action::stop, Kind::stop, false},
      {ErrorClass::invalid_response, Action::retry_once_then_move_on, Kind::retry_same, false},
      {ErrorClass::empty_response, Action::move_on_never, Kind::next_target, false},
      {ErrorClass::refusal, Action::move_on_never, Kind::next_target, false},
      {ErrorClass::schema_mismatch, Action::move_on_never, Kind::next_target, false},
      {ErrorClass::truncated, Action::move_on_never, Kind::next_target, false},
      {ErrorClass::cancelled, Action::stop, Kind::stop, false},
  };
  for (const auto& row : rows) {
    INFO(engine::to_string(row.error));
    CHECK(engine::action_for(row.error) == row.action);
    Decision d = engine::decide_after_failure(facts(row.error));
    CHECK(d.kind == row.first_decision);
    if (d.kind == Kind::next_target) CHECK(d.come_back == row.come_back);
    CHECK_FALSE(d.reason.empty());
  }
  // The table covers every failure class the engine can produce.
  for (int c = 1; c <= static_cast<int>(ErrorClass::cancelled); ++c) {
    auto cls = static_cast<ErrorClass>(c);
    bool found = false;
    for (const auto& row : engine::class_actions())
      found = found || row.error == cls;
    INFO(engine::to_string(cls));
    CHECK(found);
  }
}

TEST_CASE("policy: retries on one target are counted, then the call moves on", "[policy]") {
  auto f = facts(ErrorClass::overloaded);
  f.retries_used = 2;
  Decision d = engine::decide_after_failure(f);
  CHECK(d.kind == Kind::next_target);
  CHECK_FALSE(d.come_back);
  CHECK(d.reason == "2 of 2 retries used");

  f = facts(ErrorClass::invalid_response);
  f.retries_used = 1;  // invalid_response is retried once whatever --retries says
  CHECK(engine::decide_after_failure(f).kind == Kind::next_target);

  f = facts(ErrorClass::server_error);
  f.max_retries = 0;
  CHECK(engine::decide_after_failure(f).kind == Kind::next_target);
}

TEST_CASE("policy: server hints win over backoff, unless too long", "[policy]") {
  SECTION("a short hint is waited exactly") {
    auto f = facts(ErrorClass::rate_limited);
    f.hint = Millis(1500);
    Decision d = engine::decide_after_failure(f);
    CHECK(d.kind == Kind::retry_same);
    CHECK(d.wait == Millis(1500));
  }
  SECTION("no hint: our backoff") {
    auto f = facts(ErrorClass::server_error);
    Decision d = engine::decide_after_failure(f);
    CHECK(d.kind == Kind::retry_same);
    CHECK(d.wait == Millis(400));
  }
  SECTION("a hint over the threshold while another target is usable: move on now") {
    auto f = facts(ErrorClass::rate_limited);
    f.hint = Millis(37'000);
    Decision d = engine::decide_after_failure(f);
    CHECK(d.kind == Kind::next_target);
    CHECK(d.come_back);
    CHECK(d.reason == "retry-after 37s > 10s while another target is usable");
  }
  SECTION("a hint over the threshold with no other target: wait it") {
    auto f = facts(ErrorClass::rate_limited);
    f.hint = Millis(37'000);
    f.other_target_usable = false;
    Decision d = engine::decide_after_failure(f);
    CHECK(d.kind == Kind::retry_same);
    CHECK(d.wait == Millis(37'000));
  }
  SECTION("a hint longer than the time left: move on now") {
    auto f = facts(ErrorClass::rate_limited);
    f.hint = Millis(5'000);
    f.time_left = Millis(3'000);
    f.other_target_usable = false;
    Decision d = engine::decide_after_failure(f);
    CHECK(d.kind == Kind::next_target);
    CHECK_THAT(d.reason, Catch::Contains(">= time left"));
  }
}

TEST_CASE("policy: x-should-retry overrides the class either way", "[policy]") {
  SECTION("true makes a 400 worth a retry") {
    auto f = facts(ErrorClass::bad_request);
    f.should_retry = true;
    Decision d = engine::decide_after_failure(f);
    CHECK(d.kind == Kind::retry_same);
    CHECK_THAT(d.reason, Catch::StartsWith("x-should-retry: true"));
  }
  SECTION("true still respects the retry count") {
    auto f = facts(ErrorClass::bad_request);
    f.should_retry = true;
    f.retries_used = 2;
    CHECK(engine::decide_after_failure(f).kind == Kind::next_target);
  }
  SECTION("false forbids retrying a 500 here, but other targets may answer") {
    auto f = facts(ErrorClass::server_error);
    f.should_retry = false;
    Decision d = engine::decide_after_failure(f);
    CHECK(d.kind == Kind::next_target);
    CHECK_FALSE(d.come_back);
    CHECK(d.reason == "x-should-retry: false");
  }
  SECTION("false on a rate limit: no wait, next target") {
    auto f = facts(ErrorClass::rate_limited);
    f.should_retry = false;
    f.hint = Millis(100);
    CHECK(engine::decide_after_failure(f).kind == Kind::next_target);
  }
}

TEST_CASE("policy: a request larger than the whole TPM limit is never retried there", "[policy]") {
  auto f = facts(ErrorClass::rate_limited);
  f.request_exceeds_limit = true;
  f.hint = Millis(100);
  Decision d = engine::decide_after_failure(f);
  CHECK(d.kind == Kind::next_target);
  CHECK_FALSE(d.come_back);
}

TEST_CASE("policy: a spent retry budget moves on instead of retrying", "[policy]") {
  auto f = facts(ErrorClass::overloaded);
  f.budget_allows = false;
  Decision d = engine::decide_after_failure(f);
  CHECK(d.kind == Kind::next_target);
  CHECK(d.come_back);
  CHECK_THAT(d.reason, Catch::Contains("retry budget"));
}

TEST_CASE("policy: a route may opt in to moving on after content_filter", "[policy]") {
  auto f = facts(ErrorClass::content_filter);
  CHECK(engine::decide_after_failure(f).kind == Kind::stop);
  f.route_moves_on_content_filter = true;
  CHECK(engine::decide_after_failure(f).kind == Kind::next_target);
}
