#pragma once
// Fakes for the engine's I/O seams: a clock that moves only when told, and a transport
// whose "server" is a function from request to scripted reply. No sockets, no sleeps.
#include <deque>
#include <functional>
#include <map>
#include <vector>

#include "net/transport.hpp"

namespace detour::testing {

class FakeClock final : public net::Clock {
 public:
  std::chrono::steady_clock::time_point now() const override { return steady_; }
  std::chrono::system_clock::time_point wall_now() const override { return wall_; }
  void advance(Millis d) {
    steady_ += d;
    wall_ += d;
  }

 private:
  std::chrono::steady_clock::time_point steady_{std::chrono::hours(1000)};
  std::chrono::system_clock::time_point wall_{
      std::chrono::sys_days{std::chrono::year{2026} / 11 / 22}};
};

// What the fake server answers to one request.
struct FakeReply {
  net::TransportStatus transport = net::TransportStatus::ok;
  int status = 200;
  net::Headers headers;
  std::vector<std::string> chunks;  // the body, in the pieces it arrives in
  Millis latency{10};
};

class FakeTransport final : public net::Transport {
 public:
  using Server = std::function<FakeReply(const net::HttpRequest&)>;
  FakeTransport(FakeClock& clock, Server server) : clock_(clock), server_(std::move(server)) {}

  Id start(net::HttpRequest request, net::ResponseHandler handler) override {
    Id id = ++next_id_;
    requests.push_back(request);
    pending_.push_back({id, std::move(request), std::move(handler)});
    return id;
  }
  void cancel(Id id) override { cancelled_.push_back(id); }
  Id add_timer(Millis delay, std::function<void()> callback) override {
    Id id = ++next_id_;
    timers_.emplace(clock_.now() + delay, std::make_pair(id, std::move(callback)));
    return id;
  }
  void cancel_timer(Id id) override {
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (it->second.first == id) {
        timers_.erase(it);
        return;
      }
    }
  }

  // Answers requests one at a time, moving the clock by each reply's latency (capped by the
  // request's total timeout, which then ends it as a timeout), and fires timers when due.
  void run() override {
    stopped_ = false;
    while (!stopped_ && (!pending_.empty() || !timers_.empty())) {
      if (!pending_.empty()) {
        Pending p = std::move(pending_.front());
        pending_.pop_front();
        deliver(p);
      } else {
        auto it = timers_.begin();
        if (it->first > clock_.now())
          clock_.advance(std::chrono::duration_cast<Millis>(it->first - clock_.now()));
        auto callback = std::move(it->second.second);
        timers_.erase(it);
        callback();
      }
    }
  }
  void stop() override { stopped_ = true; }

  std::vector<net::HttpRequest> requests;  // every request started, in order

 private:
  struct Pending {
    Id id;
    net::HttpRequest request;
    net::ResponseHandler handler;
  };

  void deliver(Pending& p) {
    FakeReply reply = server_(p.request);
    if (stopped_) return;  // stopped while the server "worked": the request stays in flight
    net::HttpResponse response;
    bool timed_out = p.request.total_timeout.count() > 0 && reply.latency > p.request.total_timeout;
    clock_.advance(timed_out ? p.request.total_timeout : reply.latency);
    response.total_latency = reply.latency;
    if (timed_out) {
      response.transport = net::TransportStatus::timeout;
    } else if (reply.transport != net::TransportStatus::ok &&
               reply.transport != net::TransportStatus::connection_reset) {
      response.transport = reply.transport;
    } else {
      response.status = reply.status;
      response.headers = reply.headers;
      if (p.handler.on_headers) p.handler.on_headers(reply.status, reply.headers);
      for (const auto& chunk : reply.chunks) {
        if (p.handler.on_body) {
          if (!p.handler.on_body(chunk)) {
            response.transport = net::TransportStatus::cancelled;
            break;
          }
        } else {
          response.body += chunk;
        }
      }
      if (response.transport == net::TransportStatus::ok) response.transport = reply.transport;
    }
    for (Id c : cancelled_) {
      if (c == p.id) response.transport = net::TransportStatus::cancelled;
    }
    p.handler.on_complete(std::move(response));
  }

  FakeClock& clock_;
  Server server_;
  Id next_id_ = 0;
  std::deque<Pending> pending_;
  std::vector<Id> cancelled_;
  std::multimap<std::chrono::steady_clock::time_point, std::pair<Id, std::function<void()>>>
      timers_;
  bool stopped_ = false;
};

}  // namespace detour::testing
