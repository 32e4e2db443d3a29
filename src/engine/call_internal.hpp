#pragma once
// What call.cpp and call_attempt.cpp share inside the Call; nothing outside the engine's call
// machinery includes this.
#include <chrono>
#include <memory>
#include <optional>

#include "engine/call.hpp"

namespace detour::engine {

// Capacity the limiter reserved for one attempt (an in-flight slot and its tokens).
struct Reservation {
  std::string holder;  // the process holding the slot; empty: nothing reserved
  double tokens = 0;
};

// One exchange with one target. Transport callbacks hold it by shared_ptr and reach the Call
// through `owner`, which is cleared when the call no longer wants to hear from it.
struct Call::Attempt {
  Call* owner = nullptr;
  std::size_t index = 0;  // into the chain
  const providers::Protocol* protocol = nullptr;
  net::Transport::Id request = 0;  // 0: not sent (yet)
  std::chrono::steady_clock::time_point started;
  Millis waited{0};
  bool hedge = false;
  std::unique_ptr<providers::StreamDecoder> decoder;
  std::string error_body;  // body of a non-2xx streamed reply, kept to parse the error
  bool printed_text = false;
  std::optional<Millis> ttft;
  std::optional<net::Transport::Id> first_token_timer;
  std::optional<net::Transport::Id> hedge_timer;
  bool first_token_timed_out = false;
  bool lost = false;  // cancelled because another attempt won
  // Its timeout is what was left of the call's deadline, so its timing out is the deadline,
  // whatever our clock says a moment later (curl times it with its own clock, in whole ms).
  bool timeout_is_deadline = false;
  bool hit_deadline = false;  // it timed out, and timeout_is_deadline
  Reservation reservation;    // its capacity in the limiter, settled when it ends
  // api_key_cmd: why no key could be had (the attempt ends without a request); the timer that
  // polls the running command or ends the attempt that has no key; whether it waited for the
  // command; whether the key sent was the command's cached one (a 401 then runs the command
  // again and retries).
  std::optional<std::string> key_failure;
  std::optional<net::Transport::Id> key_timer;
  bool waited_for_key = false;
  bool cached_command_key = false;
};

// Where the call stands with one target of its chain.
struct Call::Progress {
  TargetState state;       // as loaded when the call started (routing, hedge delay)
  int retries = 0;         // attempts beyond the first made on this target
  bool done = false;       // not to be tried again in this call
  bool come_back = false;  // failed transiently: worth another pass once the rest failed
  bool in_flight = false;  // an attempt is running or a retry of it is waiting
  std::optional<std::chrono::steady_clock::time_point> not_before;  // the server's hint
  // Admitted by the limiter for the attempt about to start (take_candidate reserved it).
  std::optional<Reservation> reserved;
  // Waiting for an in-flight slot to free (SharedState::wait_for_slot), and the timer that
  // gives up on it when the call can wait no longer.
  bool waiting_for_slot = false;
  std::optional<net::Transport::Id> slot_deadline;
  std::chrono::steady_clock::time_point slot_wait_began;
  // Passed over for lack of capacity while another target had some: worth a later pass,
  // without counting as a retry, since it never failed.
  bool capacity_skipped = false;
};

// What a finished attempt said beyond its record, for the failure policy.
struct Call::Outcome {
  std::optional<bool> should_retry;
  bool request_exceeds_limit = false;
  std::optional<Millis> hint;
};

// Stops listening to an attempt and cancels its exchange and timers.
void detach(Call::Attempt& attempt, net::Transport& transport);

AttemptRecord skipped_open_record(const config::ResolvedTarget& target, const Gate& gate,
                                  const net::Clock& clock);

std::int64_t wall_ms(const net::Clock& clock);

}  // namespace detour::engine
