#pragma once
// Fakes for the engine's I/O seams: a clock that moves only when told, and a transport
// whose "server" is a function from request to scripted reply. No sockets, no sleeps: the
// transport keeps a timeline of events (replies, timers) and jumps the clock from one to the
// next, so overlapping requests (hedges) and timers interleave as they would for real.
#include <deque>
#include <functional>
#include <map>
#include <set>
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
  FakeReply(net::TransportStatus transport_ = net::TransportStatus::ok, int status_ = 200,
            net::Headers headers_ = {}, std::vector<std::string> chunks_ = {},
            Millis latency_ = Millis(10))
      : transport(transport_),
        status(status_),
        headers(std::move(headers_)),
        chunks(std::move(chunks_)),
        latency(latency_) {}

  net::TransportStatus transport = net::TransportStatus::ok;
  int status = 200;
  net::Headers headers;
  std::vector<std::string> chunks;  // the body, in the pieces it arrives in
  Millis latency{10};               // when the exchange ends
  // When the headers and the first chunk arrive (the rest arrive at `latency`); unset: all
  // at once at `latency`.
  std::optional<Millis> first_chunk_at;
};

class FakeTransport final : public net::Transport {
 public:
  using Server = std::function<FakeReply(const net::HttpRequest&)>;
  FakeTransport(FakeClock& clock, Server server) : clock_(clock), server_(std::move(server)) {}

  Id start(net::HttpRequest request, net::ResponseHandler handler) override {
    Id id = ++next_id_;
    requests.push_back(request);
    Exchange& x = exchanges_[id];
    x.request = std::move(request);
    x.handler = std::move(handler);
    schedule(clock_.now(), id, Kind::begin);  // the server sees it from the loop, not here
    return id;
  }
  void cancel(Id id) override {
    auto it = exchanges_.find(id);
    if (it == exchanges_.end() || it->second.cancelled) return;
    it->second.cancelled = true;
    cancelled.push_back(id);
    schedule(clock_.now(), id, Kind::finish);
  }
  Id add_timer(Millis delay, std::function<void()> callback) override {
    Id id = ++next_id_;
    timers_[id] = std::move(callback);
    schedule(clock_.now() + delay, id, Kind::timer);
    return id;
  }
  void cancel_timer(Id id) override { timers_.erase(id); }

  void run() override {
    stopped_ = false;
    while (!stopped_ && !events_.empty()) {
      auto it = events_.begin();
      auto [when, event] = *it;
      events_.erase(it);
      if (when > clock_.now())
        clock_.advance(std::chrono::duration_cast<Millis>(when - clock_.now()));
      handle(event);
    }
  }
  void stop() override { stopped_ = true; }

  // Timers added and neither fired nor cancelled: what a finished call must not leave behind.
  std::size_t pending_timers() const { return timers_.size(); }
  // Requests started whose on_complete has not run yet.
  std::size_t pending_requests() const { return exchanges_.size(); }

  std::vector<net::HttpRequest> requests;  // every request started, in order
  std::vector<Id> cancelled;               // every request cancelled, in order

 private:
  enum class Kind { begin, first_chunk, finish, timer };
  struct Event {
    Id id;
    Kind kind;
  };
  struct Exchange {
    net::HttpRequest request;
    net::ResponseHandler handler;
    FakeReply reply;
    std::chrono::steady_clock::time_point started;
    std::size_t delivered = 0;  // chunks handed to on_body so far
    bool headers_sent = false;
    bool cancelled = false;
    bool aborted = false;  // on_body returned false
    net::TransportStatus ends_as = net::TransportStatus::ok;
    std::string body;
  };

  void schedule(std::chrono::steady_clock::time_point when, Id id, Kind kind) {
    events_.emplace(when, Event{id, kind});
  }

  void handle(const Event& e) {
    if (e.kind == Kind::timer) {
      auto it = timers_.find(e.id);
      if (it == timers_.end()) return;
      auto callback = std::move(it->second);
      timers_.erase(it);
      callback();
      return;
    }
    auto it = exchanges_.find(e.id);
    if (it == exchanges_.end()) return;
    Exchange& x = it->second;
    if (e.kind == Kind::begin) {
      if (x.cancelled) return;  // the cancel already scheduled its finish
      x.started = clock_.now();
      x.reply = server_(x.request);
      if (stopped_) return;  // stopped while the server "worked": the request stays in flight
      plan(e.id, x);
    } else if (e.kind == Kind::first_chunk) {
      if (!x.cancelled) send_headers_and_chunks(x, 1);
    } else {
      finish(e.id, x);
    }
  }

  // Works out when the exchange ends and how, given the request's timeouts.
  void plan(Id id, Exchange& x) {
    const FakeReply& r = x.reply;
    const Millis first = r.first_chunk_at.value_or(r.latency);
    Millis end = r.latency;
    const Millis total = x.request.total_timeout;
    const Millis first_byte = x.request.first_byte_timeout;
    if (first_byte.count() > 0 && first > first_byte && r.transport == net::TransportStatus::ok) {
      end = first_byte;
      x.ends_as = net::TransportStatus::first_byte_timeout;
    } else if (total.count() > 0 && r.latency > total) {
      end = total;
      x.ends_as = net::TransportStatus::timeout;
      if (r.first_chunk_at && *r.first_chunk_at < total)
        schedule(x.started + *r.first_chunk_at, id, Kind::first_chunk);
    } else if (r.first_chunk_at && *r.first_chunk_at < r.latency) {
      schedule(x.started + *r.first_chunk_at, id, Kind::first_chunk);
    }
    schedule(x.started + end, id, Kind::finish);
  }

  void send_headers_and_chunks(Exchange& x, std::size_t up_to) {
    const FakeReply& r = x.reply;
    const bool replied = r.transport == net::TransportStatus::ok ||
                         r.transport == net::TransportStatus::connection_reset;
    if (!replied) return;
    if (!x.headers_sent) {
      x.headers_sent = true;
      if (x.handler.on_headers) x.handler.on_headers(r.status, r.headers);
    }
    while (x.delivered < std::min(up_to, r.chunks.size()) && !x.aborted) {
      const std::string& chunk = r.chunks[x.delivered++];
      if (x.handler.on_body) {
        if (!x.handler.on_body(chunk)) x.aborted = true;
      } else {
        x.body += chunk;
      }
    }
  }

  void finish(Id id, Exchange& x) {
    net::HttpResponse response;
    if (!x.cancelled && x.ends_as == net::TransportStatus::ok) {
      send_headers_and_chunks(x, x.reply.chunks.size());
    }
    response.total_latency = std::chrono::duration_cast<Millis>(clock_.now() - x.started);
    if (x.cancelled || x.aborted) {
      response.transport = net::TransportStatus::cancelled;
    } else if (x.ends_as != net::TransportStatus::ok) {
      response.transport = x.ends_as;
    } else {
      response.transport = x.reply.transport;
    }
    if (x.headers_sent) {
      response.status = x.reply.status;
      response.headers = x.reply.headers;
    }
    response.body = std::move(x.body);
    auto handler = std::move(x.handler);
    exchanges_.erase(id);
    handler.on_complete(std::move(response));
  }

  FakeClock& clock_;
  Server server_;
  Id next_id_ = 0;
  std::map<Id, Exchange> exchanges_;
  std::map<Id, std::function<void()>> timers_;
  std::multimap<std::chrono::steady_clock::time_point, Event> events_;
  bool stopped_ = false;
};

}  // namespace detour::testing
