#include "engine/call.hpp"

#include <algorithm>

namespace detour::engine {

using std::chrono::duration_cast;

NextStep decide_after_failure(const AttemptRecord& attempt) {
  // The foundation policy: every failure moves on to the next target of the chain; the
  // call stops only when the caller cancelled it. The resilience engine replaces this.
  if (attempt.error == ErrorClass::cancelled) return NextStep::stop;
  return NextStep::next_target;
}

int exit_code_for_failure(const CallResult& result) {
  if (result.error == ErrorClass::cancelled) return 130;
  const auto& attempts = result.attempts;
  auto all = [&](auto predicate) {
    return !attempts.empty() && std::all_of(attempts.begin(), attempts.end(), predicate);
  };
  if (all([](const AttemptRecord& a) { return is_request_rejection(a.error); })) return 4;
  if (all([](const AttemptRecord& a) { return a.error == ErrorClass::auth; })) return 5;
  return 1;
}

std::optional<double> cost_of(const config::ModelConfig& model, const providers::Usage& usage) {
  if (!model.input_cost || !model.output_cost || !usage.input_tokens || !usage.output_tokens) {
    return std::nullopt;
  }
  return (static_cast<double>(*usage.input_tokens) * *model.input_cost +
          static_cast<double>(*usage.output_tokens) * *model.output_cost) /
         1e6;
}

std::string redact(std::string text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (secret.size() < 4) continue;  // too short to be a key; replacing would garble text
    for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
      text.replace(at, secret.size(), "[redacted]");
    }
  }
  return text;
}

// State of the attempt in flight. Transport callbacks hold it by shared_ptr and reach the
// Call through `owner`, which the Call clears when it goes away before the loop reports.
struct Call::Attempt {
  Call* owner = nullptr;
  const config::ResolvedTarget* target = nullptr;
  const providers::Protocol* protocol = nullptr;
  net::Transport::Id request = 0;
  std::chrono::steady_clock::time_point started;
  int status = 0;
  std::unique_ptr<providers::StreamDecoder> decoder;
  std::string error_body;  // body of a non-2xx streamed reply, kept to parse the error
  bool printed_text = false;
};

Call::Call(net::Transport& transport, const net::Clock& clock, CallSpec spec,
           CallObserver& observer, Done done)
    : transport_(transport),
      clock_(clock),
      spec_(std::move(spec)),
      observer_(observer),
      done_(std::move(done)) {}

Call::~Call() {
  if (attempt_) {
    attempt_->owner = nullptr;
    transport_.cancel(attempt_->request);
  }
}

void Call::start() {
  started_ = clock_.now();
  start_attempt();
}

void Call::cancel() {
  cancelled_ = true;
  if (attempt_) transport_.cancel(attempt_->request);
}

Millis Call::time_left() const {
  return spec_.deadline - duration_cast<Millis>(clock_.now() - started_);
}

void Call::start_attempt() {
  const auto& target = spec_.chain.targets[next_target_++];
  auto attempt = std::make_shared<Attempt>();
  attempt->owner = this;
  attempt->target = &target;
  attempt->protocol = providers::find_protocol(target.provider->protocol);
  attempt->started = clock_.now();
  observer_.on_attempt_start(target, static_cast<int>(result_.attempts.size()) + 1);

  providers::ChatRequest request = spec_.request;
  request.model = target.target.model;
  request.stream = spec_.stream;
  net::HttpRequest http = attempt->protocol->build_request(
      providers::Endpoint{target.provider->base_url, target.api_key}, request);
  Millis budget = std::max(Millis(1), std::min(spec_.timeout, time_left()));
  http.total_timeout = budget;

  net::ResponseHandler handler;
  if (spec_.stream) {
    handler.on_headers = [attempt](int status, const net::Headers&) {
      attempt->status = status;
      if (status >= 200 && status < 300)
        attempt->decoder = attempt->protocol->make_stream_decoder();
    };
    handler.on_body = [attempt](std::string_view chunk) {
      if (!attempt->owner) return false;
      if (!attempt->decoder) {
        attempt->error_body.append(chunk);
        return true;
      }
      attempt->decoder->feed(chunk, [&](std::string_view text) {
        attempt->printed_text = true;
        attempt->owner->observer_.on_text(text);
      });
      return true;
    };
  }
  handler.on_complete = [attempt](net::HttpResponse response) {
    if (attempt->owner) attempt->owner->complete_attempt(std::move(response));
  };
  attempt_ = attempt;
  attempt->request = transport_.start(std::move(http), std::move(handler));
}

void Call::complete_attempt(net::HttpResponse response) {
  std::shared_ptr<Attempt> attempt = std::move(attempt_);
  attempt->owner = nullptr;
  const auto& target = *attempt->target;
  const auto* protocol = attempt->protocol;

  AttemptRecord record;
  record.provider = target.target.provider;
  record.model = target.target.model;
  record.latency = duration_cast<Millis>(clock_.now() - attempt->started);
  record.printed_text = attempt->printed_text;
  if (response.status != 0) record.status = response.status;

  std::optional<providers::ChatReply> reply;
  if (cancelled_) {
    record.error = ErrorClass::cancelled;
    record.message = "cancelled";
  } else if (response.transport != net::TransportStatus::ok &&
             !(attempt->decoder && response.transport == net::TransportStatus::connection_reset)) {
    record.error = classify_transport(response.transport);
    record.message = std::string(net::to_string(response.transport));
    if (!response.transport_message.empty()) record.message += ": " + response.transport_message;
  } else if (response.status >= 200 && response.status < 300) {
    if (attempt->decoder) {
      auto on_text = [&](std::string_view text) {
        record.printed_text = true;
        observer_.on_text(text);
      };
      attempt->decoder->finish(on_text);
      const auto& state = attempt->decoder->state();
      if (state.error) {
        record.error = classify_http_error(response.status, *state.error, {});
        record.message = "error in stream: " + state.error->message;
      } else if (!state.complete) {
        record.error = ErrorClass::invalid_response;
        record.message = "stream ended before the provider's end marker";
      } else {
        reply = state.reply;
      }
    } else {
      auto parsed = protocol->parse_reply(response.body);
      if (parsed.reply) {
        reply = std::move(parsed.reply);
      } else {
        record.error = ErrorClass::invalid_response;
        record.message = parsed.problem;
      }
    }
  } else {
    // A streamed request collects a non-2xx body through on_body; a plain one gets it here.
    const std::string& body = spec_.stream ? attempt->error_body : response.body;
    auto error = protocol->parse_error(response.status, body);
    auto headers = providers::parse_rate_limit_headers(response.headers, clock_.wall_now());
    record.error = classify_http_error(response.status, error, headers);
    record.message =
        error.message.empty() ? "HTTP " + std::to_string(response.status) : error.message;
  }
  record.message = redact(std::move(record.message), {target.api_key});

  if (reply) {
    result_.attempts.push_back(record);
    observer_.on_attempt_end(record, "answered");
    result_.target = target;
    finish_success(std::move(*reply));
    return;
  }

  result_.attempts.push_back(record);
  bool more = next_target_ < spec_.chain.targets.size();
  bool in_time = time_left() > Millis(0);
  if (more && in_time && decide_after_failure(record) == NextStep::next_target) {
    observer_.on_attempt_end(record,
                             "next target " + spec_.chain.targets[next_target_].target.name());
    start_attempt();
    return;
  }
  std::string why = !more ? "no target left" : !in_time ? "deadline reached" : "stop";
  observer_.on_attempt_end(record, why);
  if (more && !in_time && record.error != ErrorClass::cancelled) {
    record.error = ErrorClass::timeout;
    record.message = "deadline of " + format_duration(spec_.deadline) + " reached";
  }
  finish_failure(record);
}

void Call::finish_success(providers::ChatReply reply) {
  const auto& target = *result_.target;
  result_.ok = true;
  result_.latency = duration_cast<Millis>(clock_.now() - started_);
  result_.cost_usd = cost_of(target.model, reply.usage);
  const auto& first = spec_.chain.targets.front();
  result_.degraded =
      first.model.tier && target.model.tier && *target.model.tier < *first.model.tier;
  result_.reply = std::move(reply);
  auto done = std::move(done_);
  done(std::move(result_));
}

void Call::finish_failure(const AttemptRecord& last) {
  result_.ok = false;
  result_.latency = duration_cast<Millis>(clock_.now() - started_);
  result_.error = last.error;
  result_.status = last.status;
  result_.message = last.provider + "/" + last.model + ": " + last.message;
  auto done = std::move(done_);
  done(std::move(result_));
}

CallResult Call::interrupted_result() const {
  CallResult stopped = result_;
  if (attempt_) {
    AttemptRecord record;
    record.provider = attempt_->target->target.provider;
    record.model = attempt_->target->target.model;
    record.error = ErrorClass::cancelled;
    record.message = "interrupted";
    record.latency = duration_cast<Millis>(clock_.now() - attempt_->started);
    record.printed_text = attempt_->printed_text;
    stopped.attempts.push_back(std::move(record));
  }
  stopped.ok = false;
  stopped.error = ErrorClass::cancelled;
  stopped.message = "interrupted";
  stopped.latency = duration_cast<Millis>(clock_.now() - started_);
  return stopped;
}

CallResult run_call(net::Transport& transport, const net::Clock& clock, CallSpec spec,
                    CallObserver& observer) {
  std::optional<CallResult> result;
  Call call(transport, clock, std::move(spec), observer,
            [&](CallResult r) { result = std::move(r); });
  call.start();
  transport.run();
  if (!result) return call.interrupted_result();  // the loop was stopped (Ctrl-C)
  return std::move(*result);
}

}  // namespace detour::engine
