// The libcurl transport against an in-process HTTP server on loopback: what arrives, what comes
// back, how each failure is reported, and the loop's guarantees (timers, cancel, re-entrancy).
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

#include "net/transport.hpp"

using namespace std::chrono_literals;
using detour::Millis;
using detour::net::find_header;
using detour::net::HttpRequest;
using detour::net::HttpResponse;
using detour::net::make_curl_transport;
using detour::net::ResponseHandler;
using detour::net::Transport;
using detour::net::TransportStatus;

namespace {

using SteadyClock = std::chrono::steady_clock;

// A server on 127.0.0.1 and a free port, serving from its own thread.
class TestServer {
 public:
  TestServer() : TestServer(std::make_unique<httplib::Server>()) {}
  explicit TestServer(std::unique_ptr<httplib::Server> server) : server_(std::move(server)) {
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

HttpRequest get(std::string url) {
  HttpRequest request;
  request.method = "GET";
  request.url = std::move(url);
  return request;
}

// Runs one request to completion on its own loop.
HttpResponse exchange(Transport& transport, HttpRequest request, ResponseHandler handler = {}) {
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

// A port nothing listens on: bound (so nobody else has it a moment ago), then closed.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

Millis since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<Millis>(SteadyClock::now() - start);
}

// Streams three events with pauses, so they cannot arrive as one piece.
void serve_stream(const httplib::Request&, httplib::Response& res) {
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

void serve_slow(const httplib::Request&, httplib::Response& res) {
  std::this_thread::sleep_for(500ms);
  res.set_content("late", "text/plain");
}

}  // namespace

TEST_CASE("a POST arrives intact and the response comes back", "[transport]") {
  TestServer server;
  struct Seen {
    std::string method, body, custom, content_type, user_agent, expect;
  };
  std::mutex mutex;
  Seen seen;
  server->Post("/echo", [&](const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard lock(mutex);
      seen = {req.method,
              req.body,
              req.get_header_value("X-Custom"),
              req.get_header_value("Content-Type"),
              req.get_header_value("User-Agent"),
              req.get_header_value("Expect")};
    }
    res.status = 201;
    res.set_header("X-Reply-Value", "  padded value\t");
    res.set_content("echo:" + req.body, "application/json");
  });
  server.start();
  auto transport = make_curl_transport();

  SECTION("small body, headers both ways") {
    HttpRequest request;
    request.url = server.url("/echo");
    request.headers = {{"Content-Type", "application/json"}, {"X-Custom", "abc 123"}};
    request.body = R"({"prompt":"hi"})";
    const HttpResponse response = exchange(*transport, request);

    CHECK(response.transport == TransportStatus::ok);
    CHECK(response.transport_message.empty());
    CHECK(response.status == 201);
    CHECK(response.body == R"(echo:{"prompt":"hi"})");
    CHECK(find_header(response.headers, "x-reply-value") == "padded value");
    CHECK(find_header(response.headers, "content-type") == "application/json");
    for (const auto& [name, value] : response.headers) {
      for (char c : name)
        CHECK_FALSE((c >= 'A' && c <= 'Z'));
    }
    CHECK(response.first_byte_latency <= response.total_latency);
    std::lock_guard lock(mutex);
    CHECK(seen.method == "POST");
    CHECK(seen.body == request.body);
    CHECK(seen.custom == "abc 123");
    CHECK(seen.content_type == "application/json");
    CHECK(seen.user_agent == std::string("detour/") + DETOUR_VERSION);
  }

  SECTION("a large body is sent at once and no compression is asked for") {
    HttpRequest request;
    request.url = server.url("/echo");
    request.headers = {{"content-type", "application/json"}};
    request.body.assign(3 * 1024 * 1024, 'x');
    const HttpResponse response = exchange(*transport, request);
    CHECK(response.transport == TransportStatus::ok);
    CHECK(response.body.size() == request.body.size() + 5);
    CHECK_FALSE(find_header(response.headers, "content-encoding").has_value());
    std::lock_guard lock(mutex);
    CHECK(seen.body.size() == request.body.size());
    CHECK(seen.expect.empty());  // no one-second wait for "100 Continue"
  }

  SECTION("a body without a declared type is not labelled a form") {
    HttpRequest request;
    request.url = server.url("/echo");
    request.body = "plain";
    CHECK(exchange(*transport, request).status == 201);
    std::lock_guard lock(mutex);
    CHECK(seen.content_type.empty());
  }

  SECTION("after an interim 100 Continue only the final headers are reported, once") {
    HttpRequest request;
    request.url = server.url("/echo");
    request.headers = {{"Expect", "100-continue"}, {"Content-Type", "text/plain"}};
    request.body = "wait for it";
    std::vector<int> statuses;
    ResponseHandler handler;
    handler.on_headers = [&](int status, const detour::net::Headers& headers) {
      statuses.push_back(status);
      CHECK(find_header(headers, "x-reply-value") == "padded value");
    };
    const HttpResponse response = exchange(*transport, request, handler);
    CHECK(response.transport == TransportStatus::ok);
    CHECK(statuses == std::vector<int>{201});
    CHECK(response.body == "echo:wait for it");
  }
}

TEST_CASE("a streamed body arrives in pieces after the headers", "[transport]") {
  TestServer server;
  server->Get("/stream", serve_stream);
  server.start();
  auto transport = make_curl_transport();

  std::vector<std::string> events;  // "headers" then each chunk
  ResponseHandler handler;
  handler.on_headers = [&](int status, const detour::net::Headers& headers) {
    CHECK(status == 200);
    CHECK(find_header(headers, "content-type") == "text/event-stream");
    events.push_back("headers");
  };

  SECTION("on_body sees every chunk") {
    handler.on_body = [&](std::string_view chunk) {
      events.emplace_back(chunk);
      return true;
    };
    const HttpResponse response = exchange(*transport, get(server.url("/stream")), handler);
    CHECK(response.transport == TransportStatus::ok);
    CHECK(response.status == 200);
    CHECK(response.body.empty());  // consumed by on_body
    REQUIRE(events.size() >= 3);   // headers + at least two separate pieces
    CHECK(events.front() == "headers");
    std::string joined;
    for (std::size_t i = 1; i < events.size(); ++i)
      joined += events[i];
    CHECK(joined == "one\ntwo\nthree\n");
  }

  SECTION("on_body returning false cancels the exchange") {
    int pieces = 0;
    handler.on_body = [&](std::string_view) {
      ++pieces;
      return false;
    };
    const auto started = SteadyClock::now();
    const HttpResponse response = exchange(*transport, get(server.url("/stream")), handler);
    CHECK(response.transport == TransportStatus::cancelled);
    CHECK(response.status == 200);
    CHECK(pieces == 1);
    CHECK(since(started) < 100ms);  // did not wait for the rest of the stream
  }
}

TEST_CASE("transport failures are told apart", "[transport]") {
  TestServer server;
  server->Get("/slow", serve_slow);
  server->Get("/stall", [](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
      sink.write("a", 1);
      std::this_thread::sleep_for(500ms);
      sink.done();
      return true;
    });
  });
  server->Get("/partial", [](const httplib::Request&, httplib::Response& res) {
    // Promises 1000 bytes, sends 10, then drops the connection.
    res.set_content_provider(1000, "application/octet-stream",
                             [](size_t, size_t, httplib::DataSink& sink) {
                               sink.write("0123456789", 10);
                               return false;
                             });
  });
  server.start();
  auto transport = make_curl_transport();

  SECTION("connection refused") {
    const HttpResponse response =
        exchange(*transport, get("http://127.0.0.1:" + std::to_string(closed_port()) + "/"));
    CHECK(response.transport == TransportStatus::connect_failed);
    CHECK(response.status == 0);
    CHECK_FALSE(response.transport_message.empty());
  }

  SECTION("unknown host") {
    HttpRequest request = get("http://no-such-host.invalid/");
    request.connect_timeout = 3000ms;
    const HttpResponse response = exchange(*transport, request);
    CHECK(response.transport == TransportStatus::dns_failed);
  }

  SECTION("no response headers within the first-byte timeout") {
    HttpRequest request = get(server.url("/slow"));
    request.first_byte_timeout = 100ms;
    const HttpResponse response = exchange(*transport, request);
    CHECK(response.transport == TransportStatus::first_byte_timeout);
    CHECK(response.status == 0);
    CHECK(response.total_latency >= 100ms);
    CHECK(response.total_latency < 400ms);
  }

  SECTION("a first-byte timeout does not cut a response whose headers arrived") {
    HttpRequest request = get(server.url("/stall"));
    request.first_byte_timeout = 100ms;
    const HttpResponse response = exchange(*transport, request);
    CHECK(response.transport == TransportStatus::ok);
    CHECK(response.body == "a");
  }

  SECTION("total timeout before the headers") {
    HttpRequest request = get(server.url("/slow"));
    request.total_timeout = 150ms;
    const HttpResponse response = exchange(*transport, request);
    CHECK(response.transport == TransportStatus::timeout);
    CHECK(response.total_latency < 400ms);
  }

  SECTION("total timeout in the middle of the body") {
    HttpRequest request = get(server.url("/stall"));
    request.total_timeout = 150ms;
    const HttpResponse response = exchange(*transport, request);
    CHECK(response.transport == TransportStatus::timeout);
    CHECK(response.status == 200);
    CHECK(response.body == "a");
  }

  SECTION("a body cut short") {
    const HttpResponse response = exchange(*transport, get(server.url("/partial")));
    CHECK(response.transport == TransportStatus::connection_reset);
    CHECK(response.status == 200);
    CHECK(response.body == "0123456789");
  }

  SECTION("credentials never reach the message") {
    HttpRequest request =
        get("http://127.0.0.1:" + std::to_string(closed_port()) + "/?key=s3cr3t-query");
    request.headers = {{"Authorization", "Bearer sk-very-secret"}, {"x-api-key", "k-very-secret"}};
    const HttpResponse response = exchange(*transport, request);
    CHECK(response.transport == TransportStatus::connect_failed);
    CHECK(response.transport_message.find("secret") == std::string::npos);
    CHECK(response.transport_message.find("s3cr3t") == std::string::npos);
  }

  SECTION("a header with a line break is refused before sending") {
    HttpRequest request = get(server.url("/slow"));
    request.headers = {{"x-api-key", "abc\r\nX-Injected: 1"}};
    const HttpResponse response = exchange(*transport, request);
    CHECK(response.transport == TransportStatus::other);
    CHECK(response.transport_message.find("x-api-key") != std::string::npos);
    CHECK(response.transport_message.find("Injected") == std::string::npos);
  }
}

TEST_CASE("TLS certificates are verified", "[transport]") {
  // A self-signed certificate for 127.0.0.1: any client that trusts it has verification off.
  static constexpr const char* kCert = R"(-----BEGIN CERTIFICATE-----
MIIBkDCCATagAwIBAgIUPuNMws+I28WS+ruyT+ksT9Hk0uQwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyMjAyMDk1MloYDzIxMjYxMDI5
MDIwOTUyWjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARzslRFVXECeUdVSxjWAi6Y2nQJnMyXGvoVSxbw6G+bNTfLq0YyZWRL
pDNHCOdBc6QAMOmme5YmCqxT062+bWiMo2QwYjAdBgNVHQ4EFgQUhPrKe4epW6SZ
gkRz4tghQLObqPIwHwYDVR0jBBgwFoAUhPrKe4epW6SZgkRz4tghQLObqPIwDwYD
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0gAMEUC
IQDXNHR2Gj/zcD4FlQJHQLlFYwMAazuxdFd+DdvUCgA/lAIgX5pF2Xrswx/T6QjZ
8+U/P/Q8KjfsJN1+xn2JXkz0Gu4=
-----END CERTIFICATE-----
)";
  static constexpr const char* kKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgga/u24e5KO1MVmpN
xVOB5b2dz/BtWli9gWt98eCSTamhRANCAARzslRFVXECeUdVSxjWAi6Y2nQJnMyX
GvoVSxbw6G+bNTfLq0YyZWRLpDNHCOdBc6QAMOmme5YmCqxT062+bWiM
-----END PRIVATE KEY-----
)";
  const auto dir = std::filesystem::temp_directory_path() /
                   ("detour-transport-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "cert.pem") << kCert;
  std::ofstream(dir / "key.pem") << kKey;
  {
    TestServer server(std::make_unique<httplib::SSLServer>((dir / "cert.pem").c_str(),
                                                           (dir / "key.pem").c_str()));
    REQUIRE(server->is_valid());
    server->Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("should not be read", "text/plain");
    });
    server.start();
    auto transport = make_curl_transport();
    const HttpResponse response = exchange(*transport, get(server.url("/", "https")));
    CHECK(response.transport == TransportStatus::tls_failed);
    CHECK(response.status == 0);
    CHECK(response.body.empty());
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("many requests share one loop and reuse connections", "[transport]") {
  TestServer server;
  server->new_task_queue = [] { return new httplib::ThreadPool(64); };
  std::mutex mutex;
  std::set<int> ports;
  server->Get("/work", [&](const httplib::Request& req, httplib::Response& res) {
    std::this_thread::sleep_for(50ms);
    res.set_content("done " + req.get_param_value("i"), "text/plain");
  });
  server->Get("/port", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mutex);
    ports.insert(req.remote_port);
    res.set_content("port", "text/plain");
  });
  server.start();

  SECTION("50 concurrent requests all complete") {
    auto transport = make_curl_transport();
    std::vector<std::optional<HttpResponse>> responses(50);
    for (std::size_t i = 0; i < responses.size(); ++i) {
      ResponseHandler handler;
      handler.on_complete = [&responses, i](HttpResponse r) { responses[i] = std::move(r); };
      transport->start(get(server.url("/work?i=" + std::to_string(i))), handler);
    }
    const auto started = SteadyClock::now();
    transport->run();
    for (std::size_t i = 0; i < responses.size(); ++i) {
      REQUIRE(responses[i].has_value());
      CHECK(responses[i]->transport == TransportStatus::ok);
      CHECK(responses[i]->body == "done " + std::to_string(i));
    }
    // Run one at a time, 50 requests of 50 ms would take 2.5 s.
    CHECK(since(started) < 1500ms);
  }

  SECTION(
      "sequential requests, each started from the last one's on_complete, share a "
      "connection") {
    auto transport = make_curl_transport();
    int done = 0;
    std::function<void()> next;
    next = [&] {
      ResponseHandler handler;
      handler.on_complete = [&](HttpResponse response) {
        CHECK(response.transport == TransportStatus::ok);
        if (++done < 20) next();
      };
      transport->start(get(server.url("/port")), handler);
    };
    next();
    transport->run();
    CHECK(done == 20);
    std::lock_guard lock(mutex);
    CHECK(ports.size() <= 2);
  }
}

TEST_CASE("timers fire in order and can be cancelled", "[transport]") {
  auto transport = make_curl_transport();
  std::vector<std::string> fired;

  SECTION("order, cancellation, zero delay") {
    const auto started = SteadyClock::now();
    transport->add_timer(60ms, [&] { fired.push_back("60"); });
    transport->add_timer(20ms, [&] {
      fired.push_back("20");
      // Delay 0 from inside a callback: runs on the next iteration, not inside this one.
      transport->add_timer(0ms, [&] { fired.push_back("20+0"); });
      fired.push_back("20 end");
    });
    const Transport::Id doomed = transport->add_timer(30ms, [&] { fired.push_back("30"); });
    transport->add_timer(40ms, [&] { fired.push_back("40"); });
    transport->add_timer(0ms, [&] { transport->cancel_timer(doomed); });
    transport->cancel_timer(424242);  // unknown: ignored
    transport->run();
    CHECK(fired == std::vector<std::string>{"20", "20 end", "20+0", "40", "60"});
    CHECK(since(started) >= 60ms);
  }

  SECTION("a timer re-arming itself with delay 0 does not starve I/O") {
    TestServer server;
    server->Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    server.start();
    auto looped = make_curl_transport();  // after the server: closes its connection first
    bool complete = false;
    long spins = 0;
    std::function<void()> spin = [&] {
      if (!complete && ++spins < 10'000'000) looped->add_timer(0ms, spin);
    };
    looped->add_timer(0ms, spin);
    ResponseHandler handler;
    handler.on_complete = [&](HttpResponse response) {
      CHECK(response.transport == TransportStatus::ok);
      complete = true;
    };
    looped->start(get(server.url("/")), handler);
    looped->run();
    CHECK(complete);
    CHECK(spins < 10'000'000);
  }
}

TEST_CASE("cancel completes a request from the loop with cancelled", "[transport]") {
  TestServer server;
  server->Get("/slow", serve_slow);
  server.start();
  auto transport = make_curl_transport();
  bool inside_cancel = false;
  int completions = 0;
  std::optional<HttpResponse> response;
  ResponseHandler handler;
  handler.on_complete = [&](HttpResponse r) {
    CHECK_FALSE(inside_cancel);  // never re-entrantly from cancel()
    ++completions;
    response = std::move(r);
  };
  auto cancel = [&](Transport::Id id) {
    inside_cancel = true;
    transport->cancel(id);
    inside_cancel = false;
  };

  SECTION("in flight") {
    const Transport::Id id = transport->start(get(server.url("/slow")), handler);
    transport->add_timer(50ms, [&] {
      cancel(id);
      cancel(id);  // twice: still one completion
    });
    const auto started = SteadyClock::now();
    transport->run();
    CHECK(since(started) < 400ms);
    cancel(id);  // finished: ignored
    cancel(987654);
  }

  SECTION("before the loop ever ran") {
    const Transport::Id id = transport->start(get(server.url("/slow")), handler);
    cancel(id);
    CHECK(completions == 0);
    transport->run();
  }

  REQUIRE(completions == 1);
  CHECK(response->transport == TransportStatus::cancelled);
  CHECK(response->status == 0);
}

TEST_CASE("stop() makes run() return", "[transport]") {
  TestServer server;
  server->Get("/slow", serve_slow);
  server.start();
  auto transport = make_curl_transport();
  int completions = 0;
  ResponseHandler handler;
  handler.on_complete = [&](HttpResponse) { ++completions; };

  SECTION("from a callback, with a timer still pending; run() resumes afterwards") {
    bool late = false;
    const Transport::Id far = transport->add_timer(10s, [] {});
    transport->add_timer(20ms, [&] { transport->stop(); });
    transport->add_timer(40ms, [&] { late = true; });
    const auto started = SteadyClock::now();
    transport->run();
    CHECK(since(started) < 500ms);
    CHECK_FALSE(late);
    transport->cancel_timer(far);
    transport->run();  // the stop was consumed
    CHECK(late);
  }

  SECTION("from another thread; destroying the transport drops requests in flight") {
    transport->start(get(server.url("/slow")), handler);
    transport->start(get(server.url("/slow")), handler);
    std::thread stopper([&] {
      std::this_thread::sleep_for(50ms);
      transport->stop();
    });
    const auto started = SteadyClock::now();
    transport->run();
    stopper.join();
    CHECK(since(started) < 300ms);
    transport.reset();  // no completion, no leak (ASan)
    CHECK(completions == 0);
  }
}
