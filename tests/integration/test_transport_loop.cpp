// The libcurl transport's loop guarantees against an in-process server on loopback: many
// requests on one loop, connection reuse, timers, cancel, stop and re-entrancy.
#include "transport_test_server.hpp"

using namespace detour::testing::transport;

TEST_CASE("many requests share one loop and reuse connections", "[transport]") {
  TestServer server;
  server->new_task_queue = [] { return new httplib::ThreadPool(64); };
  std::mutex mutex;
  std::set<int> ports;
  server->Get("/work", [&](const httplib::Request& req, httplib::Response& res) {
    pause_unless_stopping(200ms);
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
    // Run one at a time, 50 requests of 200 ms would take 10 s.
    CHECK(since(started) < 5000ms);
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
    CHECK(since(started) < 2000ms);  // not the 3 s the answer takes
    cancel(id);                      // finished: ignored
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
  std::atomic<int> arrived{0};
  server->Get("/slow", [&](const httplib::Request& req, httplib::Response& res) {
    ++arrived;
    serve_slow(req, res);
  });
  server.start();
  auto transport = make_curl_transport();
  int completions = 0;
  ResponseHandler handler;
  handler.on_complete = [&](HttpResponse) { ++completions; };

  SECTION("from a callback, with a timer still pending; run() resumes afterwards") {
    bool late = false;
    const Transport::Id far = transport->add_timer(10s, [] {});
    transport->add_timer(20ms, [&] { transport->stop(); });
    // Far enough after the stop that a late start of the loop cannot make both due at once.
    transport->add_timer(1000ms, [&] { late = true; });
    const auto started = SteadyClock::now();
    transport->run();
    CHECK(since(started) < 5000ms);  // not the 10 s of the far timer
    CHECK_FALSE(late);
    transport->cancel_timer(far);
    transport->run();  // the stop was consumed
    CHECK(late);
  }

  SECTION("from another thread; destroying the transport drops requests in flight") {
    transport->start(get(server.url("/slow")), handler);
    transport->start(get(server.url("/slow")), handler);
    // Stops once the server has both requests: run() is then surely inside its loop.
    std::thread stopper([&] {
      const auto give_up = SteadyClock::now() + 10s;
      while (arrived < 2 && SteadyClock::now() < give_up)
        std::this_thread::sleep_for(1ms);
      transport->stop();
    });
    const auto started = SteadyClock::now();
    transport->run();
    stopper.join();
    CHECK(arrived == 2);
    CHECK(since(started) < 2500ms);  // not the 3 s the answers take
    transport.reset();               // no completion, no leak (ASan)
    CHECK(completions == 0);
  }
}
