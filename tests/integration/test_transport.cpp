// The libcurl transport against an in-process HTTP server on loopback: what arrives, what comes
// back, and how each failure is reported. Loop guarantees are in test_transport_loop.cpp.
#include "transport_test_server.hpp"

using namespace detour::testing::transport;

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
  // One piece, then a 3 s pause: a cancel must not wait for the rest.
  server->Get("/long", [](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
      if (!sink.write("one\n", 4)) return false;
      pause_unless_stopping(3000ms);
      sink.write("two\n", 4);
      sink.done();
      return true;
    });
  });
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
    const HttpResponse response = exchange(*transport, get(server.url("/long")), handler);
    CHECK(response.transport == TransportStatus::cancelled);
    CHECK(response.status == 200);
    CHECK(pieces == 1);
    CHECK(since(started) < 2000ms);  // did not wait 3 s for the rest of the stream
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
    CHECK(response.total_latency < 2000ms);  // the answer would take 3 s
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
    CHECK(response.total_latency < 2000ms);
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
