// The call machinery on a fake transport: failover along the chain, streams, deadlines,
// and what the result records. The failover *policy* itself is tested in test_errors.cpp.
#include <catch2/catch.hpp>

#include "call_fixture.hpp"

using namespace detour;
using detour::testing::FakeClock;
using detour::testing::FakeReply;
using detour::testing::FakeTransport;
using namespace detour::testing::call;

TEST_CASE("a healthy first target answers in one attempt", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest&) { return ok_reply("hello"); });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  REQUIRE(result.ok);
  CHECK(result.reply.content == "hello");
  CHECK(result.target->target.model == "a");
  REQUIRE(result.attempts.size() == 1);
  CHECK(result.attempts[0].status == 200);
  CHECK(result.attempts[0].error == engine::ErrorClass::none);
  CHECK(result.attempts[0].latency == Millis(20));
  CHECK(result.cost_usd == Approx((1000 * 1.0 + 500 * 2.0) / 1e6));
  CHECK(transport.requests.size() == 1);
}

TEST_CASE("a failing first target moves the call to the next", "[call]") {
  struct Row {
    const char* name;
    FakeReply first;
    engine::ErrorClass expected;
  };
  const std::vector<Row> rows = {
      {"503", error_reply(503, "server_error", "", "busy"), engine::ErrorClass::overloaded},
      {"429", error_reply(429, "requests", "rate_limit_exceeded", "slow down"),
       engine::ErrorClass::rate_limited},
      {"refused", FakeReply{net::TransportStatus::connect_failed, 0, {}, {}, Millis(1)},
       engine::ErrorClass::connection},
      {"garbage 200", FakeReply{net::TransportStatus::ok, 200, {}, {"<html>"}, Millis(3)},
       engine::ErrorClass::invalid_response},
      {"too slow", FakeReply{net::TransportStatus::ok, 200, {}, {"{}"}, Millis(5000)},
       engine::ErrorClass::timeout},
  };
  for (const auto& row : rows) {
    SECTION(row.name) {
      Fixture f({"a", "b"});
      FakeClock clock;
      FakeTransport transport(clock, [&](const net::HttpRequest& r) {
        return model_of(r) == "a" ? row.first : ok_reply("from b");
      });
      Recorder rec;
      auto result = f.run(transport, clock, f.spec(), rec);
      REQUIRE(result.ok);
      CHECK(result.reply.content == "from b");
      REQUIRE(result.attempts.size() == 2);
      CHECK(result.attempts[0].model == "a");
      CHECK(result.attempts[0].error == row.expected);
      CHECK(result.attempts[1].model == "b");
      CHECK_THAT(rec.decisions.front(), Catch::EndsWith("next target mock/b"));
    }
  }
}

TEST_CASE("when every target fails the call reports the last error and the exit code", "[call]") {
  SECTION("transient failures exit 1") {
    Fixture f({"a", "b"});
    FakeClock clock;
    FakeTransport transport(clock, [](const net::HttpRequest&) {
      return error_reply(500, "server_error", "", "boom");
    });
    Recorder rec;
    auto result = f.run(transport, clock, f.spec(), rec);
    CHECK_FALSE(result.ok);
    CHECK(result.error == engine::ErrorClass::server_error);
    CHECK(result.status == 500);
    CHECK(result.attempts.size() == 2);
    CHECK(engine::exit_code_for_failure(result) == 1);
    CHECK(rec.decisions.back() == "0 of 0 retries used: no target left");
  }
  SECTION("a request rejected everywhere exits 4") {
    Fixture f({"a", "b"});
    FakeClock clock;
    FakeTransport transport(clock, [](const net::HttpRequest&) {
      return error_reply(400, "invalid_request_error", "context_length_exceeded", "too long");
    });
    Recorder rec;
    auto result = f.run(transport, clock, f.spec(), rec);
    CHECK(result.error == engine::ErrorClass::context_length);
    CHECK(engine::exit_code_for_failure(result) == 4);
  }
  SECTION("auth refused everywhere exits 5, and the key never reaches the message") {
    Fixture f({"a"});
    FakeClock clock;
    FakeTransport transport(clock, [](const net::HttpRequest&) {
      return error_reply(401, "invalid_request_error", "invalid_api_key",
                         "Incorrect API key provided: sk-secret-key-123456.");
    });
    Recorder rec;
    auto result = f.run(transport, clock, f.spec(), rec);
    CHECK(result.error == engine::ErrorClass::auth);
    CHECK(engine::exit_code_for_failure(result) == 5);
    CHECK(result.message.find("sk-secret-key-123456") == std::string::npos);
    CHECK(result.message.find("[redacted]") != std::string::npos);
  }
}

TEST_CASE("each attempt gets min(timeout, time left) and the deadline ends the call", "[call]") {
  Fixture f({"a", "b", "c"});
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest&) {
    return FakeReply{net::TransportStatus::ok, 200, {}, {"{}"}, Millis(60000)};
  });
  Recorder rec;
  auto spec = f.spec();
  spec.timeout = Millis(1000);
  spec.deadline = Millis(1500);
  auto result = f.run(transport, clock, std::move(spec), rec);
  CHECK_FALSE(result.ok);
  REQUIRE(transport.requests.size() == 2);
  CHECK(transport.requests[0].total_timeout == Millis(1000));
  CHECK(transport.requests[1].total_timeout == Millis(500));
  CHECK(result.error == engine::ErrorClass::timeout);
  CHECK(result.latency == Millis(1500));
  CHECK(rec.decisions.back() == "deadline reached");
}

// curl times the attempt with its own clock in whole ms, the call with steady_clock: the
// two can disagree by a fraction of a ms (CI once saw a second attempt start this way). An attempt
// whose timeout was the rest of the deadline has reached the deadline when it times out, even if
// our clock says a hair is left -- else the call starts an attempt that cannot finish.
TEST_CASE("a timeout that was the rest of the deadline ends the call", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest& r) {
    return FakeReply{net::TransportStatus::timeout, 0, {}, {}, r.total_timeout - Millis(1)};
  });
  Recorder rec;
  auto spec = f.spec();
  spec.deadline = Millis(300);
  auto result = f.run(transport, clock, std::move(spec), rec);
  CHECK_FALSE(result.ok);
  REQUIRE(transport.requests.size() == 1);
  CHECK(transport.requests[0].total_timeout == Millis(300));
  CHECK(result.error == engine::ErrorClass::timeout);
  CHECK(rec.decisions.back() == "deadline reached");

  SECTION("one that timed out by --timeout alone moves on") {
    auto own = f.spec();
    own.timeout = Millis(100);
    own.deadline = Millis(10'000);
    Recorder rec2;
    FakeTransport again(clock, [](const net::HttpRequest& r) {
      return FakeReply{net::TransportStatus::timeout, 0, {}, {}, r.total_timeout};
    });
    auto moved = f.run(again, clock, std::move(own), rec2);
    CHECK(again.requests.size() >= 2);
  }
}

TEST_CASE("a streamed answer arrives piece by piece", "[call]") {
  Fixture f({"a"});
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest& r) {
    CHECK(nlohmann::json::parse(r.body).at("stream") == true);
    return FakeReply{net::TransportStatus::ok,
                     200,
                     {},
                     {"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
                      "data: "
                      "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":"
                      "\"stop\"}]}\n\n",
                      "data: [DONE]\n\n"},
                     Millis(10)};
  });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(true), rec);
  REQUIRE(result.ok);
  CHECK(rec.text == "Hello");
  CHECK(result.reply.content == "Hello");
  CHECK(result.reply.finish_reason == "stop");
}

TEST_CASE("a stream cut short fails over and says text was already printed", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest& r) {
    if (model_of(r) == "a") {
      return FakeReply{
          net::TransportStatus::connection_reset,
          200,
          {},
          {"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial \"}}]}\n\n"},
          Millis(10)};
    }
    return FakeReply{net::TransportStatus::ok,
                     200,
                     {},
                     {"data: "
                      "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"whole\"},\"finish_"
                      "reason\":\"stop\"}]}\n\n",
                      "data: [DONE]\n\n"},
                     Millis(10)};
  });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(true), rec);
  REQUIRE(result.ok);
  CHECK(result.reply.content == "whole");
  CHECK(rec.text == "partial whole");
  REQUIRE(result.attempts.size() == 2);
  CHECK(result.attempts[0].error == engine::ErrorClass::invalid_response);
  CHECK(result.attempts[0].printed_text);
}

TEST_CASE("an answer from a lower tier than the first target is marked degraded", "[call]") {
  Fixture f({"a", "b"}, {3, 2});
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest& r) {
    return model_of(r) == "a" ? error_reply(503, "", "", "down") : ok_reply("ok");
  });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  REQUIRE(result.ok);
  CHECK(result.degraded);
}

TEST_CASE("redact removes every occurrence of each key", "[call]") {
  CHECK(engine::redact("a KEY12345 b KEY12345", {"KEY12345"}) == "a [redacted] b [redacted]");
  CHECK(engine::redact("nothing here", {"KEY12345", ""}) == "nothing here");
}

TEST_CASE("redact removes a key cut short, but not a few of its first characters", "[call]") {
  const std::string key = "sk-proj-0123456789abcdef";
  // An excerpt of a body that ends inside the key.
  CHECK(engine::redact("body: {\"key\":\"sk-proj-0123456)", {key}) ==
        "body: {\"key\":\"[redacted])");
  CHECK(engine::redact("sk-proj-0123456789abcdef, sk-proj-0123", {key}) ==
        "[redacted], [redacted]");
  // Fewer than 8: the format of a key, not a piece of this one.
  CHECK(engine::redact("keys look like sk-proj...", {key}) == "keys look like sk-proj...");
  // A short key is still found only whole.
  CHECK(engine::redact("ab12 ab1", {"ab12"}) == "[redacted] ab1");
}

TEST_CASE("a call whose loop is stopped reports the attempt in flight as cancelled", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport* loop = nullptr;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    if (model_of(r) == "b") loop->stop();  // Ctrl-C while b is being asked
    return model_of(r) == "a" ? error_reply(503, "", "", "down") : ok_reply("late");
  });
  loop = &transport;
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  CHECK_FALSE(result.ok);
  CHECK(result.error == engine::ErrorClass::cancelled);
  CHECK(engine::exit_code_for_failure(result) == 130);
  REQUIRE(result.attempts.size() == 2);
  CHECK(result.attempts[0].error == engine::ErrorClass::overloaded);
  CHECK(result.attempts[1].model == "b");
  CHECK(result.attempts[1].error == engine::ErrorClass::cancelled);
}

TEST_CASE("--no-fallback and --no-degrade apply to the order the strategy chose", "[call]") {
  // cheapest orders b (1), c (5), a (9): "the first target" is b, whatever the config lists.
  Fixture f({"a", "b", "c"}, {2, 3, 2});
  f.chain.strategy = "cheapest";
  const double costs[] = {9.0, 1.0, 5.0};
  for (std::size_t i = 0; i < 3; ++i) {
    f.chain.targets[i].model.input_cost = costs[i];
    f.chain.targets[i].model.output_cost = costs[i];
  }
  FakeClock clock;
  FakeTransport transport(clock,
                          [](const net::HttpRequest&) { return error_reply(503, "", "", "down"); });
  Recorder rec;
  engine::CallSpec spec = f.spec();
  SECTION("--no-fallback keeps the strategy's first") {
    spec.no_fallback = true;
  }
  SECTION("--no-degrade keeps the tiers of the strategy's first (3)") {
    spec.no_degrade = true;
  }
  auto result = f.run(transport, clock, spec, rec);
  CHECK_FALSE(result.ok);
  REQUIRE(transport.requests.size() == 1);
  CHECK(model_of(transport.requests[0]) == "b");
  CHECK(result.first_target == "mock/b");
}

TEST_CASE("--no-degrade keeps targets of unknown tier and of the first's tier", "[call]") {
  Fixture f({"a", "b", "c", "d"}, {3, 2, 3});  // d has no tier
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest& r) {
    return model_of(r) == "d" ? ok_reply("from d") : error_reply(503, "", "", "down");
  });
  Recorder rec;
  engine::CallSpec spec = f.spec();
  spec.no_degrade = true;
  auto result = f.run(transport, clock, spec, rec);
  REQUIRE(result.ok);
  std::vector<std::string> asked;
  for (const auto& request : transport.requests)
    asked.push_back(model_of(request));
  CHECK(asked == std::vector<std::string>{"a", "c", "d"});
}

TEST_CASE("cost: tokens read from a prompt cache cost cached_input_cost", "[call][cost]") {
  config::ModelConfig priced;
  priced.input_cost = 3.0;
  priced.output_cost = 15.0;
  priced.cached_input_cost = 0.3;
  config::ModelConfig no_cache_price = priced;
  no_cache_price.cached_input_cost.reset();
  config::ModelConfig unpriced;
  struct Row {
    const char* name;
    const config::ModelConfig& model;
    providers::Usage usage;
    std::optional<double> cost;
  };
  const std::vector<Row> rows = {
      {"no cache", priced, {1000, 100, std::nullopt}, (1000 * 3.0 + 100 * 15.0) / 1e6},
      {"cache read", priced, {1000, 100, 800}, (200 * 3.0 + 800 * 0.3 + 100 * 15.0) / 1e6},
      {"all cached", priced, {1000, 100, 1000}, (1000 * 0.3 + 100 * 15.0) / 1e6},
      // A count past the prompt's (a server's mistake) is taken as the whole prompt.
      {"more cached than sent", priced, {1000, 100, 5000}, (1000 * 0.3 + 100 * 15.0) / 1e6},
      {"no cached price", no_cache_price, {1000, 100, 800}, (1000 * 3.0 + 100 * 15.0) / 1e6},
      {"no prices", unpriced, {1000, 100, 800}, std::nullopt},
      {"no usage", priced, {std::nullopt, 100, std::nullopt}, std::nullopt},
  };
  for (const Row& row : rows) {
    INFO(row.name);
    const auto cost = engine::cost_of(row.model, row.usage);
    REQUIRE(cost.has_value() == row.cost.has_value());
    if (cost) CHECK(*cost == Approx(*row.cost));
  }
}
