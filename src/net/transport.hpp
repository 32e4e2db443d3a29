#pragma once
// The I/O seam of the engine: an event loop that runs HTTP exchanges and timers.
// The real implementation is CurlTransport (curl_multi); unit tests use a fake.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "net/http.hpp"

namespace detour::net {

struct ResponseHandler {
  // Called once when the status line and headers have arrived. Optional.
  std::function<void(int status, const Headers& headers)> on_headers;
  // Called with each piece of the body as it arrives. Optional: when absent the body is
  // collected into HttpResponse::body. Return false to abort the exchange (it then
  // completes with TransportStatus::cancelled).
  std::function<bool(std::string_view chunk)> on_body;
  // Called exactly once per started request, from the loop (never from inside start() or
  // cancel()), whatever the outcome.
  std::function<void(HttpResponse response)> on_complete;
};

class Transport {
 public:
  using Id = std::uint64_t;
  virtual ~Transport() = default;

  virtual Id start(HttpRequest request, ResponseHandler handler) = 0;
  // Stops a request; its on_complete still runs (TransportStatus::cancelled). Unknown or
  // finished ids are ignored.
  virtual void cancel(Id request) = 0;

  virtual Id add_timer(Millis delay, std::function<void()> callback) = 0;
  virtual void cancel_timer(Id timer) = 0;

  // Runs requests and timers until none is pending or stop() is called.
  virtual void run() = 0;
  virtual void stop() = 0;
};

// Time, behind an interface so retry, limiter and breaker decisions are tested without sleeps.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point now() const = 0;
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
};

// This machine's steady clock, and for wall-clock time a shared store's (`offset` returns how far
// it is ahead of this machine's): limiter slots, in-flight expiries and header reset times are
// wall-clock times in the shared documents, and must mean the same moment on every machine.
class OffsetClock final : public Clock {
 public:
  explicit OffsetClock(std::function<Millis()> offset) : offset_(std::move(offset)) {}
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now() + offset_();
  }

 private:
  std::function<Millis()> offset_;
};

struct CurlTransportOptions {
  long max_connections_per_host = 64;
  bool verbose = false;
};

// Creates the libcurl implementation (src/net/curl_transport.cpp).
std::unique_ptr<Transport> make_curl_transport(const CurlTransportOptions& options = {});

}  // namespace detour::net
