#pragma once
// What the engine does after a failed attempt (docs/architecture.md, "Failure policy and retries";
// README, "Retries, failover, routes and state"), as data and one pure function. The Call gathers
// the facts (class, headers, retries so far, time left, whether another target is usable) and
// carries out the decision; nothing here reads a clock.
#include <optional>
#include <string>
#include <vector>

#include "config/settings.hpp"
#include "core/duration.hpp"
#include "engine/errors.hpp"
#include "engine/retry.hpp"

namespace detour::engine {

// The "what detour does" column of the README's table of error classes.
enum class Action {
  wait_or_move_on,          // rate_limited: wait a short hint, else move on now
  retry_then_move_on,       // overloaded, server_error: back off and retry a little
  retry_once_then_move_on,  // invalid_response
  move_on_come_back,        // timeout, connection: move on now, retry after the rest failed
  move_on_never,            // quota, auth, not_found, validation failures: not this target again
  larger_window,            // context_length: only targets with a larger window
  stop,                     // bad_request, content_filter, cancelled: no target can help
};

struct ClassAction {
  ErrorClass error;
  Action action;
};

// The table itself, one row per failure class (ErrorClass::none has no row).
const std::vector<ClassAction>& class_actions();
Action action_for(ErrorClass c);
std::string_view to_string(Action a);

struct FailureFacts {
  ErrorClass error = ErrorClass::none;
  std::optional<bool> should_retry;    // x-should-retry: true forces a retry, false forbids one
  bool request_exceeds_limit = false;  // the one request is larger than the target's limit
  std::optional<Millis> hint;          // the server's wait (server_hint), if any
  Millis backoff{0};                   // our own backoff for the next retry, already drawn
  int retries_used = 0;                // retries already made on this target in this call
  int max_retries = config::kDefaultRetries;  // --retries / [defaults] retries
  bool budget_allows = true;                  // the provider's retry budget has tokens to spend
  Millis time_left{0};                        // until the call's deadline
  bool other_target_usable = false;           // another target of the chain may still be tried
  Millis move_on_threshold = kDefaultMoveOnThreshold;
  bool route_moves_on_content_filter = false;  // a route may opt in to moving on
};

struct Decision {
  enum class Kind {
    retry_same,   // wait `wait`, then this target again
    next_target,  // move on now
    stop,         // end the call with this failure
  } kind = Kind::next_target;
  Millis wait{0};
  // With next_target: the target may be tried again in a later pass over the chain, once
  // every other target has failed too (transient failures); false: never again in this call.
  bool come_back = false;
  std::string reason;  // for -v, e.g. "retry-after 37s > 10s while another target is usable"
};

Decision decide_after_failure(const FailureFacts& facts);

}  // namespace detour::engine
