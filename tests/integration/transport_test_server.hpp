#pragma once
// Shared by the transport tests: an in-process httplib server on loopback and small helpers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <catch2/catch.hpp>

#include "harness.hpp"
#include "net/transport.hpp"

namespace detour::testing::transport {

using namespace std::chrono_literals;
using detour::Millis;
using detour::net::find_header;
using detour::net::HttpRequest;
using detour::net::HttpResponse;
using detour::net::make_curl_transport;
using detour::net::ResponseHandler;
using detour::net::Transport;
using detour::net::TransportStatus;

using SteadyClock = std::chrono::steady_clock;

// Set while a TestServer shuts down: a handler that pauses (serve_slow) returns at once
// instead of holding the server's threads, so a long pause costs a test nothing once it is done.
inline std::atomic<bool> g_server_stopping{false};

// Sleeps `d`, or less once the server is stopping. (This is the server taking its time, as a
// slow provider does, not a test waiting for something to happen.)
inline void pause_unless_stopping(Millis d) {
  const auto end = SteadyClock::now() + d;
  while (!g_server_stopping && SteadyClock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

// A server on 127.0.0.1 and a free port, serving from its own thread.
class TestServer {
 public:
  TestServer() : TestServer(std::make_unique<httplib::Server>()) {}
  explicit TestServer(std::unique_ptr<httplib::Server> server) : server_(std::move(server)) {
    g_server_stopping = false;
    // A proxy from the environment must not capture loopback traffic.
    ::setenv("no_proxy", "*", 1);
    // httplib's defaults close a connection after 5 requests and keep idle threads 5 s.
    server_->set_keep_alive_max_count(1000);
    server_->set_keep_alive_timeout(2);
    // Headers and body go out in separate writes; with Nagle on, each reply waits ~40 ms for
    // the client's delayed ACK.
    server_->set_tcp_nodelay(true);
    server_->set_socket_options([this](socket_t fd) {
      httplib::default_socket_options(fd);
      listen_fd_ = fd;
    });
  }
  ~TestServer() {
    if (!thread_.joinable()) return;
    g_server_stopping = true;
    // stop() is ignored until the accept loop runs; it would then never return.
    while (!server_->is_running())
      std::this_thread::sleep_for(1ms);
    server_->stop();
    thread_.join();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  httplib::Server& operator*() { return *server_; }
  httplib::Server* operator->() { return server_.get(); }

  void start() {
    port_ = server_->bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    // httplib listens with a backlog of 5: a burst of connects overflows it, and the dropped
    // handshakes are retried after 1, 3, 7... seconds. Listening again raises it (Linux).
    REQUIRE(::listen(listen_fd_, 1024) == 0);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
  }

  std::string url(const std::string& path, const char* scheme = "http") const {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  socket_t listen_fd_ = -1;
  std::thread thread_;
};

inline HttpRequest get(std::string url) {
  HttpRequest request;
  request.method = "GET";
  request.url = std::move(url);
  return request;
}

// Runs one request to completion on its own loop.
inline HttpResponse exchange(Transport& transport, HttpRequest request,
                             ResponseHandler handler = {}) {
  std::optional<HttpResponse> response;
  int completions = 0;
  handler.on_complete = [&](HttpResponse r) {
    ++completions;
    response = std::move(r);
  };
  transport.start(std::move(request), std::move(handler));
  transport.run();
  REQUIRE(completions == 1);
  return std::move(*response);
}

inline int closed_port() {
  return free_port();
}

inline Millis since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<Millis>(SteadyClock::now() - start);
}

// Streams three events with pauses, so they cannot arrive as one piece.
inline void serve_stream(const httplib::Request&, httplib::Response& res) {
  // text/event-stream: httplib does not compress it, so each write reaches the client as sent.
  res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
    for (const std::string event : {"one\n", "two\n", "three\n"}) {
      if (!sink.write(event.data(), event.size())) return false;
      std::this_thread::sleep_for(40ms);
    }
    sink.done();
    return true;
  });
}

// Answers after 3 s: far longer than the timeouts and cancels the tests apply to it, so their
// upper bounds can leave seconds of slack on a loaded machine.
inline void serve_slow(const httplib::Request&, httplib::Response& res) {
  pause_unless_stopping(3000ms);
  res.set_content("late", "text/plain");
}

}  // namespace detour::testing::transport
