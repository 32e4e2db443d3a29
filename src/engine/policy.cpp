#include "engine/policy.hpp"

#include <algorithm>

#include "engine/retry.hpp"

namespace detour::engine {

const std::vector<ClassAction>& class_actions() {
  static const std::vector<ClassAction> table = {
      {ErrorClass::rate_limited, Action::wait_or_move_on},
      {ErrorClass::quota_exhausted, Action::move_on_never},
      {ErrorClass::overloaded, Action::retry_then_move_on},
      {ErrorClass::server_error, Action::retry_then_move_on},
      {ErrorClass::timeout, Action::move_on_come_back},
      {ErrorClass::connection, Action::move_on_come_back},
      {ErrorClass::auth, Action::move_on_never},
      {ErrorClass::not_found, Action::move_on_never},
      {ErrorClass::bad_request, Action::stop},
      {ErrorClass::context_length, Action::larger_window},
      {ErrorClass::content_filter, Action::stop},
      {ErrorClass::invalid_response, Action::retry_once_then_move_on},
      {ErrorClass::empty_response, Action::move_on_never},
      {ErrorClass::refusal, Action::move_on_never},
      {ErrorClass::schema_mismatch, Action::move_on_never},
      {ErrorClass::truncated, Action::move_on_never},
      // Skips never reach the policy (nothing was sent), but a row keeps the table total.
      {ErrorClass::skipped_open, Action::move_on_never},
      {ErrorClass::skipped_budget, Action::move_on_come_back},
      {ErrorClass::cancelled, Action::stop},
  };
  return table;
}

Action action_for(ErrorClass c) {
  for (const auto& row : class_actions()) {
    if (row.error == c) return row.action;
  }
  return Action::stop;
}

std::string_view to_string(Action a) {
  switch (a) {
    case Action::wait_or_move_on:
      return "wait_or_move_on";
    case Action::retry_then_move_on:
      return "retry_then_move_on";
    case Action::retry_once_then_move_on:
      return "retry_once_then_move_on";
    case Action::move_on_come_back:
      return "move_on_come_back";
    case Action::move_on_never:
      return "move_on_never";
    case Action::larger_window:
      return "larger_window";
    case Action::stop:
      return "stop";
  }
  return "stop";
}

namespace {

Decision move_on(std::string reason, bool come_back) {
  Decision d;
  d.kind = Decision::Kind::next_target;
  d.come_back = come_back;
  d.reason = std::move(reason);
  return d;
}

Decision stop(std::string reason) {
  Decision d;
  d.kind = Decision::Kind::stop;
  d.reason = std::move(reason);
  return d;
}

// Retrying on this target, subject to the per-target count, the budget and the deadline.
Decision retry_or_move_on(const FailureFacts& f, int max_retries, std::optional<Millis> hint) {
  if (f.retries_used >= max_retries) {
    return move_on(
        std::to_string(f.retries_used) + " of " + std::to_string(max_retries) + " retries used",
        false);
  }
  if (!f.budget_allows) return move_on("retry budget spent for this provider", true);
  WaitDecision wait =
      decide_wait(hint, f.backoff, f.time_left, f.move_on_threshold, f.other_target_usable);
  if (wait.kind == WaitDecision::Kind::move_on) return move_on(wait.reason, true);
  Decision d;
  d.kind = Decision::Kind::retry_same;
  d.wait = wait.wait;
  d.reason = wait.reason;
  return d;
}

}  // namespace

Decision decide_after_failure(const FailureFacts& f) {
  if (f.error == ErrorClass::cancelled) return stop("cancelled");
  if (f.request_exceeds_limit) {
    return move_on("the request alone exceeds this target's tokens-per-minute limit", false);
  }

  // x-should-retry is the provider telling us, whatever the status: "true" makes any class
  // worth a retry here (within retries, budget and deadline), "false" forbids retrying here.
  if (f.should_retry == true) {
    Decision d = retry_or_move_on(f, f.max_retries, f.hint);
    d.reason = "x-should-retry: true; " + d.reason;
    return d;
  }
  const Action action = action_for(f.error);
  if (f.should_retry == false) {
    if (action == Action::stop) return stop(std::string(to_string(f.error)) + " is final");
    return move_on("x-should-retry: false", false);
  }

  switch (action) {
    case Action::stop:
      if (f.error == ErrorClass::content_filter && f.route_moves_on_content_filter) {
        return move_on("the route moves on after content_filter", false);
      }
      return stop("the request itself was rejected; no target can answer it as it is");
    case Action::move_on_never:
      return move_on("not retried on this target", false);
    case Action::larger_window:
      return move_on("only a target with a larger context window can answer", false);
    case Action::move_on_come_back:
      return move_on("move on now, retry only if the rest fail", true);
    case Action::retry_once_then_move_on:
      return retry_or_move_on(f, std::min(1, f.max_retries), std::nullopt);
    case Action::retry_then_move_on:
      return retry_or_move_on(f, f.max_retries, f.hint);
    case Action::wait_or_move_on:
      return retry_or_move_on(f, f.max_retries, f.hint);
  }
  return stop("no rule");
}

}  // namespace detour::engine
