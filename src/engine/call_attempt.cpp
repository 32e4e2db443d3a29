// One exchange with one target: building and starting it, streaming its text, the
// first-token timer and the hedge timer, and turning its response into a record.
#include <algorithm>

#include "config/key_command.hpp"
#include "engine/call.hpp"
#include "engine/call_internal.hpp"
#include "engine/reply_check.hpp"
#include "engine/target_endpoint.hpp"

namespace detour::engine {

using std::chrono::duration_cast;

// With --hedge and no history of the target: how long to wait for a first token before
// asking another target too. Long enough not to double every call of a healthy provider.
constexpr Millis kDefaultHedgeDelay{2000};

std::int64_t wall_ms(const net::Clock& clock) {
  return duration_cast<Millis>(clock.wall_now().time_since_epoch()).count();
}

void detach(Call::Attempt& attempt, net::Transport& transport) {
  attempt.owner = nullptr;
  if (attempt.first_token_timer) transport.cancel_timer(*attempt.first_token_timer);
  if (attempt.hedge_timer) transport.cancel_timer(*attempt.hedge_timer);
  if (attempt.key_timer) transport.cancel_timer(*attempt.key_timer);
  attempt.first_token_timer.reset();
  attempt.hedge_timer.reset();
  attempt.key_timer.reset();
  if (attempt.request != 0) transport.cancel(attempt.request);
}

AttemptRecord skipped_open_record(const config::ResolvedTarget& target, const Gate& gate,
                                  const net::Clock& clock) {
  AttemptRecord r;
  r.provider = target.target.provider;
  r.model = target.target.model;
  r.error = ErrorClass::skipped_open;
  r.message = "circuit open";
  if (gate.open_until) {
    auto left = duration_cast<Millis>(*gate.open_until - clock.now());
    r.message += " for " + format_duration(std::max(Millis(0), left));
  }
  if (gate.cause) {
    r.message += " after " + gate.cause->error_class;
    if (!gate.cause->message.empty()) r.message += " (" + gate.cause->message + ")";
    for (int c = 0; c <= static_cast<int>(ErrorClass::cancelled); ++c) {
      if (to_string(static_cast<ErrorClass>(c)) == gate.cause->error_class)
        r.cause = static_cast<ErrorClass>(c);
    }
  }
  return r;
}

AttemptRecord Call::record_of(const Attempt& attempt) const {
  const config::ResolvedTarget& target = spec_.chain.targets[attempt.index];
  AttemptRecord r;
  r.provider = target.target.provider;
  r.model = target.target.model;
  r.latency = duration_cast<Millis>(ctx_.clock.now() - attempt.started);
  r.waited = attempt.waited;
  r.printed_text = attempt.printed_text;
  r.hedge = attempt.hedge;
  r.ttft = attempt.ttft;
  return r;
}

void Call::start_attempt(std::size_t index, Millis waited, bool hedge) {
  const config::ResolvedTarget& target = spec_.chain.targets[index];
  auto attempt = std::make_shared<Attempt>();
  attempt->owner = this;
  attempt->index = index;
  attempt->protocol = providers::find_protocol(target.provider->protocol);
  attempt->started = ctx_.clock.now();
  attempt->waited = waited;
  attempt->hedge = hedge;
  if (progress_[index].reserved) {
    attempt->reservation = std::move(*progress_[index].reserved);
    progress_[index].reserved.reset();
  }
  progress_[index].in_flight = true;
  observer_.on_attempt_start(target,
                             static_cast<int>(result_.attempts.size() + in_flight_.size()) + 1);

  in_flight_.push_back(attempt);
  send_when_keyed(attempt);
}

void Call::stop_attempt(const std::shared_ptr<Attempt>& attempt) {
  if (attempt->request != 0) {
    ctx_.transport.cancel(attempt->request);
    return;
  }
  // Not sent: waiting for api_key_cmd, or about to report it gave no key. It ends on the next
  // turn, as a cancelled transfer would.
  if (attempt->key_failure) return;
  if (attempt->key_timer) ctx_.transport.cancel_timer(*attempt->key_timer);
  attempt->key_timer = ctx_.transport.add_timer(Millis(0), [attempt] {
    attempt->key_timer.reset();
    net::HttpResponse none;
    none.transport = net::TransportStatus::cancelled;
    if (attempt->owner) attempt->owner->complete_attempt(attempt, std::move(none));
  });
}

void Call::send_when_keyed(const std::shared_ptr<Attempt>& attempt) {
  const config::ResolvedTarget& target = spec_.chain.targets[attempt->index];
  std::optional<TargetKey> key;
  try {
    key = key_if_ready(target);
  } catch (const config::KeyCommandError& e) {
    // No key, no request: the attempt ends on the next turn of the loop, as an auth failure
    // that teaches the target's state nothing (complete_attempt).
    attempt->key_failure = e.what();
    attempt->key_timer = ctx_.transport.add_timer(Millis(0), [attempt] {
      attempt->key_timer.reset();
      net::HttpResponse none;
      none.transport = net::TransportStatus::other;
      if (attempt->owner) attempt->owner->complete_attempt(attempt, std::move(none));
    });
    return;
  }
  if (!key) {
    // api_key_cmd is running: the loop goes on with the other calls meanwhile.
    attempt->waited_for_key = true;
    attempt->key_timer = ctx_.transport.add_timer(kKeyPoll, [attempt] {
      attempt->key_timer.reset();
      if (attempt->owner) attempt->owner->send_when_keyed(attempt);
    });
    return;
  }
  // A key this attempt waited for was printed just now: a 401 to it means the key is bad.
  if (attempt->waited_for_key) key->fresh = true;
  send(attempt, *key);
}

void Call::send(const std::shared_ptr<Attempt>& attempt, const TargetKey& key) {
  const config::ResolvedTarget& target = spec_.chain.targets[attempt->index];
  const bool hedge = attempt->hedge;
  attempt->cached_command_key = key.from_command && !key.fresh;
  providers::ChatRequest request = spec_.request;
  request.model = target.target.model;
  request.stream = spec_.stream;
  net::HttpRequest http = attempt->protocol->chat_request(endpoint_for(target, key), request);
  const Millis left = time_left();
  http.total_timeout = std::max(Millis(1), std::min(spec_.timeout, left));
  attempt->timeout_is_deadline = left <= spec_.timeout;

  net::ResponseHandler handler;
  if (spec_.stream) {
    handler.on_headers = [attempt](int status, const net::Headers&) {
      if (status >= 200 && status < 300)
        attempt->decoder = attempt->protocol->make_stream_decoder();
    };
    handler.on_body = [attempt](std::string_view chunk) {
      if (!attempt->owner) return false;
      if (!attempt->decoder) {
        attempt->error_body.append(chunk);
        return true;
      }
      Call& call = *attempt->owner;
      attempt->decoder->feed(chunk, [&](std::string_view text) {
        if (!attempt->ttft) call.on_first_text(*attempt);
        if (call.printer_ == attempt.get()) {
          attempt->printed_text = true;
          call.observer_.on_text(text);
        }
      });
      return attempt->owner != nullptr;
    };
  }
  handler.on_complete = [attempt](net::HttpResponse response) {
    if (attempt->owner) attempt->owner->complete_attempt(attempt, std::move(response));
  };
  attempt->request = ctx_.transport.start(std::move(http), std::move(handler));

  // A stream's first token is its first text. A plain reply's tokens all arrive with its body,
  // which a server may send long after its headers (DeepSeek's blank lines under load, proxies
  // that flush headers early), so a plain attempt must be complete by then: the same rule the
  // hedge timer applies to it.
  if (spec_.first_token_timeout) {
    attempt->first_token_timer =
        ctx_.transport.add_timer(*spec_.first_token_timeout, [this, attempt] {
          attempt->first_token_timer.reset();
          if (!attempt->owner || attempt->ttft) return;
          attempt->first_token_timed_out = true;
          ctx_.transport.cancel(attempt->request);
        });
  }
  if (spec_.hedge && !hedge && in_flight_.size() == 1) arm_hedge(attempt);
}

void Call::arm_hedge(const std::shared_ptr<Attempt>& attempt) {
  Millis delay = kDefaultHedgeDelay;
  const TargetStats& stats = progress_[attempt->index].state.stats;
  const auto& history = spec_.stream ? stats.ttft_ms : stats.latencies_ms;
  if (spec_.hedge_after) {
    delay = *spec_.hedge_after;
  } else if (auto p95 = percentile(history, 95)) {
    delay = Millis(std::max<std::int64_t>(1, *p95));
  }
  attempt->hedge_timer = ctx_.transport.add_timer(delay, [this, attempt, delay] {
    attempt->hedge_timer.reset();
    if (!attempt->owner || attempt->ttft || finished_) return;
    // Choosing and reserving the other target reads the shared state: in a sync.
    synced([this, attempt, delay] { hedge(attempt, delay); });
  });
}

void Call::hedge(const std::shared_ptr<Attempt>& attempt, Millis delay) {
  {
    if (!attempt->owner || attempt->ttft) return;
    const std::string primary = spec_.chain.targets[attempt->index].target.name();
    const std::size_t saved_cursor = cursor_;
    auto index = take_candidate();
    if (!index) index = skipped_with_capacity();
    if (!index) {
      observer_.on_decision("no first token from " + primary + " after " + format_duration(delay) +
                            ", and no other target to hedge with");
      return;
    }
    const config::ResolvedTarget& other = spec_.chain.targets[*index];
    if (!progress_[*index].reserved) {
      cursor_ = saved_cursor;  // a hedge does not wait for capacity
      observer_.on_decision("not hedging with " + other.target.name() + ": it has no capacity now");
      return;
    }
    if (!ctx_.state.spend_retry(other.target.provider)) {
      const Reservation unused = *progress_[*index].reserved;  // give back the hedge's slot only
      progress_[*index].reserved.reset();
      release(*index, unused, /*reached_provider=*/false);
      cursor_ = saved_cursor;  // not hedging: the target stays where it was in the order
      observer_.on_decision("not hedging with " + other.target.name() + ": the retry budget of " +
                            other.target.provider + " is spent");
      return;
    }
    observer_.on_decision("no first token from " + primary + " after " + format_duration(delay) +
                          ": hedging with " + other.target.name());
    start_attempt(*index, Millis(0), /*hedge=*/true);
  }
}

// The first text of a streamed attempt: its timers stop, and if it is the first attempt of
// the call to produce text it is the one printed; any other attempt in flight lost the race.
void Call::on_first_text(Attempt& attempt) {
  attempt.ttft = duration_cast<Millis>(ctx_.clock.now() - attempt.started);
  if (attempt.first_token_timer) ctx_.transport.cancel_timer(*attempt.first_token_timer);
  if (attempt.hedge_timer) ctx_.transport.cancel_timer(*attempt.hedge_timer);
  attempt.first_token_timer.reset();
  attempt.hedge_timer.reset();
  if (printer_) return;
  printer_ = &attempt;
  for (auto& other : in_flight_) {
    if (other.get() == &attempt || other->lost) continue;
    other->lost = true;
    stop_attempt(other);
  }
}

void Call::complete_attempt(const std::shared_ptr<Attempt>& attempt, net::HttpResponse response) {
  in_flight_.erase(std::find(in_flight_.begin(), in_flight_.end(), attempt));
  detach(*attempt, ctx_.transport);
  if (printer_ == attempt.get()) printer_ = nullptr;
  progress_[attempt->index].in_flight = false;
  const config::ResolvedTarget& target = spec_.chain.targets[attempt->index];
  const providers::Protocol* protocol = attempt->protocol;

  AttemptRecord record = record_of(*attempt);
  if (response.status != 0) record.status = response.status;
  Outcome outcome;
  std::optional<providers::ChatReply> reply;
  std::optional<providers::Usage> usage;  // what the reply says it used, valid or not
  const providers::RateLimitInfo headers =
      response.status != 0
          ? providers::parse_rate_limit_headers(response.headers, ctx_.clock.wall_now())
          : providers::RateLimitInfo{};

  if (attempt->key_failure) {
    record.error = ErrorClass::auth;
    record.message = *attempt->key_failure;
  } else if (attempt->lost) {
    record.error = ErrorClass::cancelled;
    record.message = "lost the hedge";
  } else if (attempt->first_token_timed_out) {
    record.error = ErrorClass::timeout;
    record.message = "no first token within " + format_duration(*spec_.first_token_timeout);
  } else if (cancelled_) {
    record.error = ErrorClass::cancelled;
    record.message = "cancelled";
  } else {
    attempt->hit_deadline =
        attempt->timeout_is_deadline && response.transport == net::TransportStatus::timeout;
    if (attempt->decoder && (response.transport == net::TransportStatus::ok ||
                             response.transport == net::TransportStatus::connection_reset)) {
      attempt->decoder->finish([&](std::string_view text) {
        if (printer_ == nullptr || printer_ == attempt.get()) {
          record.printed_text = true;
          observer_.on_text(text);
        }
      });
    }
    // A streamed request collects a non-2xx body through on_body; a plain one gets it here.
    const std::string& error_body = spec_.stream ? attempt->error_body : response.body;
    ReplyCheck check =
        check_response(*protocol, response, headers, error_body,
                       attempt->decoder ? &attempt->decoder->state() : nullptr, &spec_.validation);
    record.error = check.error;
    record.message = std::move(check.message);
    usage = check.usage;
    reply = std::move(check.reply);
    if (check.provider_error) {
      outcome.hint = server_hint(headers, *check.provider_error);
      if (response.status >= 400) {
        outcome.should_retry = headers.should_retry;
        outcome.request_exceeds_limit =
            request_exceeds_rate_limit(response.status, *check.provider_error);
      }
    }
  }
  if (!record.message.empty())
    record.message = redact(std::move(record.message), secrets_of(target));
  settle_capacity(*attempt, response, headers, usage, record, outcome);

  // A 401 to a token the command gave earlier says the token expired, not that the target
  // is unusable: the command runs again and the same target is asked once more.
  const bool stale_token = record.error == ErrorClass::auth && attempt->cached_command_key &&
                           response.status == 401 && !cancelled_;
  // Neither an attempt never sent (no key, or cancelled while the command ran) nor an
  // expired token is the target's doing: they teach its state (breaker, stats, retry budget)
  // nothing.
  if (attempt->request != 0 && !stale_token) {
    ctx_.state.record(target, record.error, record.status, record.message, record.latency,
                      record.ttft, ctx_.clock.now(), wall_ms(ctx_.clock));
    if (!attempt->lost) ctx_.state.budget_outcome(target.target.provider, record.error);
  }
  result_.attempts.push_back(record);
  if (stale_token) {
    target.key_command->invalidate();
    observer_.on_attempt_end(record, "the token from api_key_cmd was refused: running it again");
    admit_then_start(attempt->index, Millis(0));
    return;
  }

  if (reply) {
    observer_.on_attempt_end(record, "answered");
    finish_success(*attempt, std::move(*reply));
    return;
  }
  if (attempt->lost) {
    observer_.on_attempt_end(record, "lost the hedge");
    return;
  }
  last_failure_ = record;
  after_failure(*attempt, record, outcome);
}

}  // namespace detour::engine
