// The I/O half of `detour health`: the probes on the event loop, and what they teach the
// shared state.
#include <algorithm>
#include <map>

#include "config/key_command.hpp"
#include "engine/call.hpp"
#include "engine/driver.hpp"
#include "engine/health.hpp"
#include "engine/reply_check.hpp"
#include "engine/target_endpoint.hpp"

namespace detour::engine {

using std::chrono::duration_cast;

namespace {

// One HTTP exchange and the probes its answer settles (a models list serves every target of
// its provider).
struct Exchange {
  std::vector<std::size_t> probes;
  const providers::Protocol* protocol = nullptr;
  bool lists_models = true;
  std::chrono::steady_clock::time_point started;
};

std::string listed_message(std::size_t count, const std::string& provider) {
  return std::to_string(count) + " model(s) listed by " + provider;
}

void settle(ProbeResult& r, ErrorClass outcome, std::string message, const ProbeOptions& options) {
  r.error = outcome;
  r.message = std::move(message);
  r.status = health_status(outcome, r.latency > options.slow, r.ratelimit);
  if (r.status == HealthStatus::degraded && outcome == ErrorClass::none) {
    r.message = "slow: " + format_duration(r.latency) + " > " + format_duration(options.slow);
  }
}

void complete(const Exchange& x, const net::HttpResponse& response,
              const std::vector<ProbeTarget>& probes, std::vector<ProbeResult>& results,
              const ProbeOptions& options, const net::Clock& clock) {
  const Millis latency = duration_cast<Millis>(clock.now() - x.started);
  providers::RateLimitInfo headers;
  if (response.status != 0)
    headers = providers::parse_rate_limit_headers(response.headers, clock.wall_now());
  const bool listed = x.lists_models && response.transport == net::TransportStatus::ok &&
                      response.status / 100 == 2;
  const std::vector<std::string> models =
      listed ? x.protocol->parse_models(response.body) : std::vector<std::string>{};
  const bool list_parsed = !models.empty();
  for (std::size_t i : x.probes) {
    ProbeResult& r = results[i];
    const ProbeTarget& probe = probes[i];
    r.completed = true;
    r.latency = latency;
    r.ratelimit = headers;
    if (response.status != 0) r.http_status = response.status;
    if (!listed) {
      // Everything but a model list is judged as a call's attempt would be.
      ReplyCheck check = check_response(*x.protocol, response, headers, response.body,
                                        /*stream=*/nullptr, /*rules=*/nullptr);
      if (x.lists_models && response.status == 404 && !r.model.empty()) {
        check.message = "the model list answered 404 (" + check.message + "); try --probe chat";
      }
      settle(r, check.error, std::move(check.message), options);
    } else if (!list_parsed) {
      settle(r, ErrorClass::invalid_response, "the model list is empty or does not parse", options);
    } else if (!r.model.empty() && !x.protocol->models_list_targets()) {
      // Azure lists the resource's models, not its deployments: the endpoint and the key
      // answered, which is all a list can prove here.
      settle(r, ErrorClass::none, "", options);
      if (r.status == HealthStatus::ok) {
        r.message = "endpoint and key answer; the deployment itself is checked by --probe chat";
      }
    } else if (r.model.empty() ||
               std::find(models.begin(), models.end(), r.model) != models.end()) {
      settle(r, ErrorClass::none, "", options);
      if (r.model.empty() && r.status == HealthStatus::ok)
        r.message = listed_message(models.size(), r.provider);
    } else {
      settle(r, ErrorClass::not_found,
             r.model + " is not among the " + listed_message(models.size(), r.provider), options);
    }
    r.message = redact(std::move(r.message), secrets_of(probe.target));
  }
}

// One exchange as a driver job (docs/architecture.md, "Many calls on one loop"): its answer
// settles its probes' results; cancelled or interrupted, they stay not completed.
class ExchangeJob final : public Job {
 public:
  struct Shared {
    const std::vector<ProbeTarget>& probes;
    std::vector<ProbeResult>& results;
    const ProbeOptions& options;
    net::Transport& transport;
    const net::Clock& clock;
  };
  ExchangeJob(Exchange& exchange, const Shared& shared)
      : x_(exchange), shared_(shared), alive_(std::make_shared<ExchangeJob*>(this)) {}
  ~ExchangeJob() override {
    // The handler outlives this job on the transport: it must find nobody there.
    *alive_ = nullptr;
    if (request_) shared_.transport.cancel(*request_);
    if (key_timer_) shared_.transport.cancel_timer(*key_timer_);
  }

  void start(Reported reported) override {
    reported_ = std::move(reported);
    send_when_keyed();
  }
  void cancel() override {
    cancelled_ = true;
    if (request_) shared_.transport.cancel(*request_);
    if (key_timer_) {
      // Not sent (waiting for api_key_cmd): it reports on the next turn, as a transfer would.
      shared_.transport.cancel_timer(*key_timer_);
      key_timer_ = shared_.transport.add_timer(Millis(0), [alive = alive_] {
        if (ExchangeJob* self = *alive) {
          self->key_timer_.reset();
          self->report();
        }
      });
    }
  }
  void interrupt() override { report(); }

 private:
  void send_when_keyed() {
    const config::ResolvedTarget& target = shared_.probes[x_.probes.front()].target;
    std::optional<TargetKey> key;
    try {
      key = key_if_ready(target);
    } catch (const config::KeyCommandError& e) {
      // No key, nothing to send: the probes fail as auth, and the job reports on the next turn.
      for (std::size_t i : x_.probes) {
        ProbeResult& r = shared_.results[i];
        r.sent = false;
        r.completed = true;
        settle(r, ErrorClass::auth, e.what(), shared_.options);
      }
      key_timer_ = shared_.transport.add_timer(Millis(0), [alive = alive_] {
        if (ExchangeJob* self = *alive) {
          self->key_timer_.reset();
          self->report();
        }
      });
      return;
    }
    if (!key) {
      // api_key_cmd is running; the other probes go on meanwhile.
      key_timer_ = shared_.transport.add_timer(kKeyPoll, [alive = alive_] {
        if (ExchangeJob* self = *alive) {
          self->key_timer_.reset();
          self->send_when_keyed();
        }
      });
      return;
    }
    send(target, *key);
  }

  void send(const config::ResolvedTarget& target, const TargetKey& key) {
    const providers::Endpoint endpoint = endpoint_for(target, key);
    net::HttpRequest request;
    if (x_.lists_models) {
      request = x_.protocol->models_request(endpoint);
    } else {
      providers::ChatRequest chat;
      chat.model = target.target.model;
      chat.messages = {{"user", "Reply with the word OK."}};
      chat.max_tokens = 1;  // a health check should cost next to nothing
      request = x_.protocol->chat_request(endpoint, chat);
    }
    request.total_timeout = shared_.options.timeout;
    x_.started = shared_.clock.now();
    net::ResponseHandler handler;
    handler.on_complete = [alive = alive_](net::HttpResponse response) {
      if (ExchangeJob* self = *alive) self->completed(response);
    };
    request_ = shared_.transport.start(std::move(request), std::move(handler));
  }

  void completed(const net::HttpResponse& response) {
    request_.reset();
    if (!cancelled_) {
      complete(x_, response, shared_.probes, shared_.results, shared_.options, shared_.clock);
    }
    report();
  }
  void report() {
    if (done_) return;
    done_ = true;
    Reported reported = reported_;
    reported();
  }

  Exchange& x_;
  Shared shared_;
  std::shared_ptr<ExchangeJob*> alive_;
  std::optional<net::Transport::Id> request_;
  std::optional<net::Transport::Id> key_timer_;
  Reported reported_;
  bool cancelled_ = false;
  bool done_ = false;
};

// What the probes learned, kept like any call's outcome: breaker and stats per target, and
// the limits a chat probe's headers state.
void record(const std::vector<ProbeTarget>& probes, std::vector<ProbeResult>& results,
            const ProbeOptions& options, const net::Clock& clock, SharedState& state) {
  const auto now = clock.now();
  const std::int64_t wall = duration_cast<Millis>(clock.wall_now().time_since_epoch()).count();
  for (std::size_t i = 0; i < probes.size(); ++i) {
    ProbeResult& r = results[i];
    const config::ResolvedTarget& target = probes[i].target;
    if (r.model.empty()) continue;  // a provider probe: no target to keep anything for
    // Probes never sent or cut short by Ctrl-C learned nothing, but still show the circuit.
    if (r.sent && r.completed) {
      state.record(target, r.error, r.http_status, r.message, r.latency, std::nullopt, now, wall);
      if (options.kind == ProbeKind::chat && r.http_status) {
        AdmissionFeedback learned;
        learned.replied = true;
        learned.headers = r.ratelimit;
        learned.now_ms = static_cast<double>(wall);
        // A 429 holds the target back until its hint, as a call's does.
        if (r.error == ErrorClass::rate_limited) {
          learned.blocked_until_ms =
              blocked_until_after_429(learned.now_ms, r.ratelimit.retry_after, r.ratelimit);
        }
        state.limiter().settle(limit_scope(target), learned);
      }
      // A chat probe that got its answer is what a half-open probe would have been: the
      // target serves requests now, so ask should not keep skipping it. (A model list says
      // less: chat itself may still fail, so it leaves the circuit as it is.)
      if (options.kind == ProbeKind::chat && r.error == ErrorClass::none)
        state.close_circuit(target);
    }
  }
  state.flush();  // everything the probes taught, in one transaction
  for (std::size_t i = 0; i < probes.size(); ++i) {
    ProbeResult& r = results[i];
    if (r.model.empty()) continue;
    const auto breaker =
        CircuitBreaker::restore(state.load(probes[i].target).breaker, state.breaker_config(), now);
    r.circuit = std::string(to_string(breaker.state(now)));
  }
}

}  // namespace

std::vector<ProbeResult> run_probes(const std::vector<ProbeTarget>& probes,
                                    const ProbeOptions& options, net::Transport& transport,
                                    const net::Clock& clock, SharedState& state) {
  std::vector<ProbeResult> results(probes.size());
  std::vector<Exchange> exchanges;
  std::map<std::string, std::size_t> list_of_provider;  // models probes share one list
  for (std::size_t i = 0; i < probes.size(); ++i) {
    const ProbeTarget& p = probes[i];
    ProbeResult& r = results[i];
    r.provider = p.target.target.provider;
    r.model = p.target.target.model;
    r.target = r.model.empty() ? r.provider : p.target.target.name();
    r.route = p.route;
    if (!p.not_sendable.empty()) {
      r.error = ErrorClass::auth;
      r.status = HealthStatus::auth;
      r.message = p.not_sendable;
      r.completed = true;
      r.sent = false;
      continue;
    }
    const bool lists = options.kind == ProbeKind::models || r.model.empty();
    if (lists) {
      auto [it, fresh] = list_of_provider.try_emplace(r.provider, exchanges.size());
      if (!fresh) {
        exchanges[it->second].probes.push_back(i);
        continue;
      }
    }
    Exchange x;
    x.probes = {i};
    x.protocol = providers::find_protocol(p.target.provider->protocol);
    x.lists_models = lists;
    exchanges.push_back(std::move(x));
  }

  // Every exchange at once: a health check is as slow as its slowest probe, not their sum.
  const ExchangeJob::Shared shared{probes, results, options, transport, clock};
  std::vector<std::unique_ptr<Job>> jobs;
  for (Exchange& x : exchanges)
    jobs.push_back(std::make_unique<ExchangeJob>(x, shared));
  Driver driver(transport, std::max<std::size_t>(1, exchanges.size()), source_of(std::move(jobs)));
  driver.run();
  record(probes, results, options, clock, state);
  return results;
}

}  // namespace detour::engine
