// The walk along the chain: the order targets are tried in, what happens after a failure,
// passes over the chain again, and how the call ends. One exchange with one target is in
// call_attempt.cpp.
#include <algorithm>

#include "engine/call.hpp"
#include "engine/call_internal.hpp"
#include "engine/context.hpp"
#include "engine/router.hpp"

namespace detour::engine {

using std::chrono::duration_cast;

int exit_code_for_failure(const CallResult& result) {
  if (result.error == ErrorClass::cancelled) return 130;
  if (is_request_rejection(result.error)) return 4;
  // A target skipped for an open circuit counts as what opened it: a key refused a minute
  // ago is still refused, and the exit code should still say so.
  int tried = 0, auth = 0;
  for (const auto& a : result.attempts) {
    const ErrorClass c = a.error == ErrorClass::skipped_open ? a.cause : a.error;
    if (c == ErrorClass::cancelled || c == ErrorClass::skipped_budget) continue;
    ++tried;
    if (c == ErrorClass::auth) ++auth;
  }
  if (tried > 0 && auth == tried) return 5;
  return 1;
}

std::optional<double> cost_of(const config::ModelConfig& model, const providers::Usage& usage) {
  if (!model.input_cost || !model.output_cost || !usage.input_tokens || !usage.output_tokens) {
    return std::nullopt;
  }
  // Tokens read from a prompt cache cost cached_input_cost (input_cost when the model has none:
  // never less than it may be billed). Tokens written to a cache are priced as input.
  const std::int64_t cached =
      std::clamp<std::int64_t>(usage.cached_input_tokens.value_or(0), 0, *usage.input_tokens);
  const double cached_cost = model.cached_input_cost.value_or(*model.input_cost);
  return (static_cast<double>(*usage.input_tokens - cached) * *model.input_cost +
          static_cast<double>(cached) * cached_cost +
          static_cast<double>(*usage.output_tokens) * *model.output_cost) /
         1e6;
}

std::string redact(std::string text, const std::vector<std::string>& secrets) {
  constexpr std::string_view kRedacted = "[redacted]";
  // Messages quote provider bodies cut short (80 to 300 bytes, providers/json_util.cpp), and a
  // cut can fall inside an echoed key: its start is as secret as the rest, so a run of at least
  // this many of its first characters goes too. A shorter run is left alone: a few characters
  // are mostly the format every such key starts with ("sk-", "sk-ant-", "AIza").
  constexpr size_t kKeyStart = 8;
  for (const auto& secret : secrets) {
    if (secret.size() < 4) continue;  // too short to be a key; replacing would garble text
    const std::string_view start(secret.data(), std::min(secret.size(), kKeyStart));
    for (size_t at = text.find(start); at != std::string::npos; at = text.find(start, at)) {
      size_t length = start.size();
      while (length < secret.size() && at + length < text.size() &&
             text[at + length] == secret[length]) {
        ++length;
      }
      text.replace(at, length, kRedacted);
      at += kRedacted.size();
    }
  }
  return text;
}

Call::Call(CallContext context, CallSpec spec, CallObserver& observer, Done done)
    : ctx_(context), spec_(std::move(spec)), observer_(observer), done_(std::move(done)) {
  ctx_.state.attach(ctx_.transport);
}

Call::~Call() {
  for (auto& attempt : in_flight_) {
    detach(*attempt, ctx_.transport);
    release(attempt->index, attempt->reservation, /*reached_provider=*/true);
  }
  cancel_waits();
  release_unsent();
}

Millis Call::time_left() const {
  return spec_.deadline - duration_cast<Millis>(ctx_.clock.now() - started_);
}

void Call::start() {
  started_ = ctx_.clock.now();
  // Planning reads the targets' state and the first attempt reserves capacity: both in the
  // sync at the end of this turn, one transaction with whatever else the turn changed.
  synced([this] {
    ctx_.state.prefetch(spec_.chain);
    plan();
    if (!finished_) next();
  });
}

void Call::synced(std::function<void()> work) {
  if (ctx_.state.syncing()) {
    work();
    return;
  }
  ctx_.state.in_sync([this, alive = std::weak_ptr<int>(alive_), work = std::move(work)] {
    if (!alive.expired() && !finished_) work();
  });
}

void Call::cancel() {
  if (finished_) return;
  cancelled_ = true;
  // Nothing in flight (waiting for a timer, a slot or the next sync): the call ends here.
  // Otherwise the attempts' completions report, as cancelled.
  if (in_flight_.empty()) {
    cancel_waits();
    AttemptRecord record = last_failure_.value_or(AttemptRecord{});
    record.error = ErrorClass::cancelled;
    record.message = "cancelled";
    finish_failure(record, "cancelled");
    return;
  }
  cancel_waits();
  for (auto& attempt : in_flight_)
    stop_attempt(attempt);
}

// Decides the order of the chain for this call and, with --truncate, shrinks the request to
// the smallest known context window.
void Call::plan() {
  const auto& targets = spec_.chain.targets;
  progress_.resize(targets.size());
  std::vector<RouteCandidate> candidates;
  const std::int64_t now_ms = wall_ms(ctx_.clock);
  const std::int64_t breaker_window_ms = ctx_.state.breaker_config().window.count();
  for (std::size_t i = 0; i < targets.size(); ++i) {
    progress_[i].state = ctx_.state.load(targets[i]);
    const TargetStats& stats = progress_[i].state.stats;
    RouteCandidate c;
    c.latency_ms = stats.latency_ms;
    // A low success rate demotes a target only while its failures are recent: a demoted
    // target gets little traffic, so its rate would otherwise never recover.
    if (stats.last_error && now_ms - stats.last_error->at_ms < breaker_window_ms) {
      c.success_rate = stats.success_rate;
      c.observed_calls = stats.calls;
    }
    c.input_cost = targets[i].model.input_cost;
    c.output_cost = targets[i].model.output_cost;
    c.weight = targets[i].weight;
    candidates.push_back(c);
  }
  const Strategy strategy = parse_strategy(spec_.chain.strategy).value_or(Strategy::fallback);
  RouteContext context;
  context.input_tokens = estimate_input_tokens(spec_.request);
  context.output_tokens = spec_.request.max_tokens.value_or(1000);
  if (strategy == Strategy::round_robin && spec_.chain.route) {
    context.turn = ctx_.state.take_turn(*spec_.chain.route);
  }
  order_ = order_targets(strategy, candidates, context, ctx_.rng);
  keep_allowed_targets();
  if (!order_.empty()) result_.first_target = targets[order_.front()].target.name();

  if (!spec_.truncate) return;
  std::optional<std::int64_t> window;
  for (std::size_t i : order_) {
    const config::ResolvedTarget& t = targets[i];
    if (t.model.context_window)
      window = std::min(window.value_or(INT64_MAX), *t.model.context_window);
  }
  if (!window) return;
  const std::int64_t reserve = std::min<std::int64_t>(4096, *window / 4);
  TruncateResult cut = truncate_to_fit(spec_.request, *window, reserve);
  result_.truncated_messages = cut.dropped_messages;
  result_.truncated_text = cut.cut_last;
  if (!cut.fits) {
    AttemptRecord none;
    none.error = ErrorClass::context_length;
    finish_failure(none,
                   "--truncate: the request cannot fit the smallest context window of the "
                   "chain (" +
                       std::to_string(*window) +
                       " tokens) without emptying its "
                       "last message");
  }
}

void Call::keep_allowed_targets() {
  if (order_.empty()) return;
  const auto& targets = spec_.chain.targets;
  const std::optional<int> first_tier = targets[order_.front()].model.tier;
  std::vector<std::size_t> kept;
  for (std::size_t position = 0; position < order_.size(); ++position) {
    const std::size_t i = order_[position];
    const std::optional<int> tier = targets[i].model.tier;
    bool allowed = true;
    if (spec_.no_fallback && position > 0) allowed = false;
    // Unknown tiers are kept: nothing says they are worse.
    if (spec_.no_degrade && first_tier && tier && *tier < *first_tier) allowed = false;
    if (allowed) {
      kept.push_back(i);
    } else {
      progress_[i].done = true;  // never usable in this call, not even by a hedge
    }
  }
  order_ = std::move(kept);
}

std::optional<std::size_t> Call::take_candidate() {
  const auto& targets = spec_.chain.targets;
  while (cursor_ < order_.size()) {
    const std::size_t i = order_[cursor_++];
    Progress& p = progress_[i];
    const config::ResolvedTarget& target = targets[i];
    if (p.done || p.in_flight) continue;
    // A later pass takes targets that failed transiently (a retry each) and targets passed
    // over for capacity (free: they never failed).
    bool retry = false;
    if (pass_ > 0) {
      if (p.capacity_skipped) {
        p.capacity_skipped = false;
      } else if (p.come_back) {
        p.come_back = false;
        retry = true;
      } else {
        continue;
      }
    }
    if (context_floor_ && target.model.context_window &&
        *target.model.context_window <= *context_floor_) {
      p.done = true;
      observer_.on_decision("skipping " + target.target.name() + ": its context window (" +
                            std::to_string(*target.model.context_window) +
                            " tokens) is not larger than one that was too small");
      continue;
    }
    if (retry) {
      if (p.retries >= spec_.retries) {
        p.done = true;
        continue;
      }
      if (!ctx_.state.spend_retry(target.target.provider)) {
        p.done = true;
        observer_.on_decision("not trying " + target.target.name() +
                              " again: the retry budget of " + target.target.provider +
                              " is spent");
        continue;
      }
      ++p.retries;
    }
    // The first pass goes by the state loaded when the call started; later ones read it again.
    const Gate gate =
        ctx_.state.gate(target, ctx_.clock.now(), spec_.timeout, pass_ == 0 ? &p.state : nullptr);
    if (!gate.allowed) {
      p.done = true;
      AttemptRecord skipped = skipped_open_record(target, gate, ctx_.clock);
      result_.attempts.push_back(skipped);
      if (!last_failure_) last_failure_ = skipped;
      observer_.on_attempt_end(skipped, next_target_text());
      continue;
    }
    // Capacity: take it if it is free now; otherwise pass over to a target that has some
    // sooner, and wait (admit_then_start) only when none has.
    const Admission admission = reserve_now(i);
    if (admission.kind == Admission::Kind::too_large) {
      p.done = true;
      skip_for_capacity(i, admission);
      continue;
    }
    if (admission.kind == Admission::Kind::wait && sooner_elsewhere(i, admission)) {
      pass_over(i, admission);
      continue;
    }
    return i;
  }
  return std::nullopt;
}

std::string Call::next_target_text() const {
  for (std::size_t at = cursor_; at < order_.size(); ++at) {
    const Progress& p = progress_[order_[at]];
    if (!p.done && !p.in_flight && (pass_ == 0 || p.come_back || p.capacity_skipped))
      return "next target " + spec_.chain.targets[order_[at]].target.name();
  }
  for (const Progress& p : progress_) {
    if (!p.done && (p.capacity_skipped || (p.come_back && p.retries < spec_.retries)))
      return "then another pass";
  }
  return "no target left";
}

void Call::next(Millis waited) {
  if (finished_) return;
  if (!ctx_.state.syncing()) {
    synced([this, waited] { next(waited); });
    return;
  }
  if (auto index = take_candidate()) {
    admit_then_start(*index, waited);
    return;
  }
  if (!in_flight_.empty()) return;  // a hedge is still running; its outcome decides
  retry_pass();
}

// Every target of this pass has failed or been skipped. Targets that failed transiently get
// another pass after a backoff (or the soonest time a server said it would be back), as long
// as retries, budget and the deadline allow.
void Call::retry_pass() {
  const auto& targets = spec_.chain.targets;
  const auto now = ctx_.clock.now();
  std::vector<std::string> names;
  std::optional<Millis> soonest;
  std::string spent;  // providers whose retry budget rules out another pass
  for (std::size_t i : order_) {
    Progress& p = progress_[i];
    if (p.done || !(p.capacity_skipped || (p.come_back && p.retries < spec_.retries))) continue;
    // No backoff for a pass the retry budget would refuse anyway.
    const std::string& provider = targets[i].target.provider;
    if (!p.capacity_skipped && !ctx_.state.can_retry(provider)) {
      p.done = true;
      if (spent.find(provider) == std::string::npos)
        spent += (spent.empty() ? "" : ", ") + provider;
      continue;
    }
    names.push_back(targets[i].target.name());
    Millis available = p.not_before && *p.not_before > now
                           ? duration_cast<Millis>(*p.not_before - now)
                           : Millis(0);
    soonest = std::min(soonest.value_or(available), available);
  }
  AttemptRecord last = last_failure_.value_or(AttemptRecord{});
  if (names.empty()) {
    finish_failure(last,
                   spent.empty() ? "no target left" : "the retry budget of " + spent + " is spent");
    return;
  }
  const Millis wait = std::max(backoff_delay(pass_, spec_.backoff, ctx_.rng), *soonest);
  if (wait >= time_left()) {
    finish_failure(last, "no time left for another pass over the chain");
    return;
  }
  std::string list;
  for (const auto& n : names)
    list += (list.empty() ? "" : ", ") + n;
  observer_.on_decision("every target failed; trying " + list + " again in " +
                        format_duration(wait));
  ++pass_;
  cursor_ = 0;
  wait_then(wait, [this, wait] { next(wait); });
}

std::optional<net::Transport::Id> Call::wait_then(Millis wait, std::function<void()> then) {
  if (wait <= Millis(0)) {
    then();
    return std::nullopt;
  }
  auto id = std::make_shared<net::Transport::Id>(0);
  *id = ctx_.transport.add_timer(wait, [this, id, then = std::move(then)] {
    std::erase(wait_timers_, *id);
    if (!finished_) then();
  });
  wait_timers_.push_back(*id);
  return *id;
}

void Call::cancel_wait(net::Transport::Id timer) {
  ctx_.transport.cancel_timer(timer);
  std::erase(wait_timers_, timer);
}

void Call::cancel_waits() {
  for (net::Transport::Id id : wait_timers_)
    ctx_.transport.cancel_timer(id);
  wait_timers_.clear();
}

bool Call::other_target_usable(std::size_t except) const {
  for (std::size_t i = 0; i < progress_.size(); ++i) {
    if (i == except) continue;
    const Progress& p = progress_[i];
    if (!p.done && !p.in_flight) return true;
  }
  return false;
}

void Call::after_failure(const Attempt& attempt, const AttemptRecord& record,
                         const Outcome& outcome) {
  const std::size_t i = attempt.index;
  Progress& p = progress_[i];
  const config::ResolvedTarget& target = spec_.chain.targets[i];
  if (cancelled_ || record.error == ErrorClass::cancelled) {
    observer_.on_attempt_end(record, "cancelled");
    finish_failure(record, "cancelled");
    return;
  }
  if (time_left() <= Millis(0) || attempt.hit_deadline) {
    observer_.on_attempt_end(record, "deadline reached");
    AttemptRecord last = record;
    if (other_target_usable(i) || record.error == ErrorClass::timeout) {
      last.error = ErrorClass::timeout;
      last.message = "deadline of " + format_duration(spec_.deadline) + " reached";
    }
    finish_failure(last, "deadline reached");
    return;
  }

  FailureFacts facts;
  facts.error = record.error;
  facts.should_retry = outcome.should_retry;
  facts.request_exceeds_limit = outcome.request_exceeds_limit;
  facts.hint = outcome.hint;
  facts.backoff = backoff_delay(p.retries, spec_.backoff, ctx_.rng);
  facts.retries_used = p.retries;
  facts.max_retries = spec_.retries;
  facts.budget_allows = ctx_.state.can_retry(target.target.provider);
  facts.time_left = time_left();
  facts.other_target_usable = other_target_usable(i);
  facts.move_on_threshold = spec_.move_on_threshold;
  facts.route_moves_on_content_filter = spec_.route_moves_on_content_filter;
  Decision decision = decide_after_failure(facts);

  if (record.error == ErrorClass::context_length) {
    const std::int64_t floor =
        target.model.context_window.value_or(estimate_input_tokens(spec_.request));
    context_floor_ = std::max(context_floor_.value_or(0), floor);
  }
  if (decision.kind == Decision::Kind::retry_same &&
      !ctx_.state.spend_retry(target.target.provider)) {
    decision.kind = Decision::Kind::next_target;
    decision.come_back = true;
    decision.reason = "the retry budget of " + target.target.provider + " is spent";
  }

  switch (decision.kind) {
    case Decision::Kind::stop:
      observer_.on_attempt_end(record, decision.reason + ": stop");
      finish_failure(record, decision.reason);
      return;
    case Decision::Kind::retry_same:
      ++p.retries;
      p.in_flight = true;  // reserved: no hedge or pass may take it while we wait
      observer_.on_attempt_end(record, decision.reason + ": retrying " + target.target.name());
      wait_then(decision.wait, [this, i, wait = decision.wait] {
        progress_[i].in_flight = false;
        admit_then_start(i, wait);
      });
      return;
    case Decision::Kind::next_target:
      if (decision.come_back) {
        p.come_back = true;
        if (outcome.hint) p.not_before = ctx_.clock.now() + *outcome.hint;
      } else {
        p.done = true;
      }
      observer_.on_attempt_end(record, decision.reason + ": " + next_target_text());
      if (!in_flight_.empty()) return;  // the hedge in flight may still answer
      next();
      return;
  }
}

void Call::finish_success(const Attempt& attempt, providers::ChatReply reply) {
  const config::ResolvedTarget& target = spec_.chain.targets[attempt.index];
  end_in_flight("lost the hedge to " + target.target.name());
  cancel_waits();  // a hedge's backoff must not send anything once the call has its answer
  finished_ = true;
  result_.ok = true;
  result_.target = target;
  result_.latency = duration_cast<Millis>(ctx_.clock.now() - started_);
  result_.cost_usd = cost_of(target.model, reply.usage);
  release_unsent();
  const auto& first = spec_.chain.targets[order_.front()];
  result_.degraded =
      first.model.tier && target.model.tier && *target.model.tier < *first.model.tier;
  result_.reply = std::move(reply);
  auto done = std::move(done_);
  done(std::move(result_));
}

void Call::finish_failure(AttemptRecord last, std::string why) {
  if (finished_) return;
  end_in_flight("cancelled: " + why);
  cancel_waits();
  release_unsent();
  finished_ = true;
  result_.ok = false;
  result_.latency = duration_cast<Millis>(ctx_.clock.now() - started_);
  // Passed over for capacity: the call failed for what that was (rate_limited, or
  // bad_request for a request too large for every target's whole minute).
  result_.error = last.error == ErrorClass::skipped_budget && last.cause != ErrorClass::none
                      ? last.cause
                      : last.error;
  result_.status = last.status;
  if (last.provider.empty()) {
    result_.message = why;
  } else {
    result_.message = last.provider + "/" + last.model + ": " + last.message;
  }
  auto done = std::move(done_);
  done(std::move(result_));
}

// Cancels every attempt still in flight and records it as cancelled, with why.
void Call::end_in_flight(const std::string& why) {
  auto still = std::move(in_flight_);
  in_flight_.clear();
  for (auto& attempt : still) {
    AttemptRecord record = record_of(*attempt);
    record.error = ErrorClass::cancelled;
    record.message = why;
    ctx_.state.record(spec_.chain.targets[attempt->index], ErrorClass::cancelled, std::nullopt, why,
                      record.latency, std::nullopt, ctx_.clock.now(), wall_ms(ctx_.clock));
    result_.attempts.push_back(record);
    observer_.on_attempt_end(record, why);
    detach(*attempt, ctx_.transport);
    release(attempt->index, attempt->reservation, /*reached_provider=*/true);
  }
}

CallResult Call::interrupted_result() const {
  CallResult stopped = result_;
  for (const auto& attempt : in_flight_) {
    AttemptRecord record = record_of(*attempt);
    record.error = ErrorClass::cancelled;
    record.message = "interrupted";
    stopped.attempts.push_back(std::move(record));
  }
  stopped.ok = false;
  stopped.error = ErrorClass::cancelled;
  stopped.message = "interrupted";
  stopped.latency = duration_cast<Millis>(ctx_.clock.now() - started_);
  return stopped;
}

}  // namespace detour::engine
