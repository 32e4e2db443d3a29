// The engine's rules carried out by a Call on a fake transport and fake clock: retries and
// waits, come-back passes, breakers across calls, the retry budget, context windows,
// validation, first-token timeouts and hedging.
#include "call_fixture.hpp"

using namespace detour;
using namespace detour::testing::call;
using detour::testing::FakeClock;
using detour::testing::FakeReply;
using detour::testing::FakeTransport;
using engine::ErrorClass;

TEST_CASE("call: an overloaded target is retried after a backoff, then answers", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  int calls = 0;
  FakeTransport transport(clock, [&](const net::HttpRequest&) {
    return ++calls == 1 ? error_reply(503, "", "", "busy") : ok_reply("second time");
  });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 2;
  auto result = f.run(transport, clock, spec, rec);
  REQUIRE(result.ok);
  REQUIRE(result.attempts.size() == 2);
  CHECK(result.attempts[0].model == "a");
  CHECK(result.attempts[1].model == "a");
  CHECK(result.attempts[1].waited > Millis(0));
  CHECK(result.attempts[1].waited <= Millis(500));  // full jitter under the first cap
  CHECK_THAT(rec.decisions[0], Catch::Contains("retrying mock/a"));
}

TEST_CASE("call: Retry-After is waited exactly when short", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  int calls = 0;
  FakeTransport transport(clock, [&](const net::HttpRequest&) {
    return ++calls == 1 ? error_reply(429, "requests", "rate_limit_exceeded", "slow down",
                                      {{"retry-after", "3"}})
                        : ok_reply("ok");
  });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 2;
  auto result = f.run(transport, clock, spec, rec);
  REQUIRE(result.ok);
  REQUIRE(result.attempts.size() == 2);
  CHECK(result.attempts[1].model == "a");
  CHECK(result.attempts[1].waited == Millis(3000));
}

TEST_CASE("call: a long Retry-After moves on at once and says why", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "a" ? error_reply(429, "requests", "rate_limit_exceeded", "slow",
                                            {{"retry-after", "37"}})
                              : ok_reply("from b");
  });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 2;
  spec.deadline = Millis(120'000);
  auto result = f.run(transport, clock, spec, rec);
  REQUIRE(result.ok);
  CHECK(result.target->target.model == "b");
  CHECK(result.attempts[1].waited == Millis(0));
  CHECK(rec.decisions[0] ==
        "retry-after 37s > 10s while another target is usable: next target mock/b");
}

TEST_CASE("call: quota_exhausted is never retried and opens the circuit for long", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "a"
               ? error_reply(429, "insufficient_quota", "insufficient_quota", "no money")
               : ok_reply("from b");
  });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 5;
  auto first = f.run(transport, clock, spec, rec);
  REQUIRE(first.ok);
  CHECK(transport.requests.size() == 2);

  // The next call, 10 minutes later, does not send to a at all.
  clock.advance(Millis(600'000));
  auto second = f.run(transport, clock, spec, rec);
  REQUIRE(second.ok);
  CHECK(transport.requests.size() == 3);
  REQUIRE(second.attempts.size() == 2);
  CHECK(second.attempts[0].error == ErrorClass::skipped_open);
  CHECK_FALSE(second.attempts[0].status);
  CHECK(second.attempts[0].cause == ErrorClass::quota_exhausted);
  CHECK_THAT(second.attempts[0].message, Catch::Contains("quota_exhausted"));
}

TEST_CASE("call: three failing calls open the breaker; the cooldown lets one probe", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  bool a_healthy = false;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    if (model_of(r) == "a" && !a_healthy) return refused();
    return ok_reply(model_of(r));
  });
  Recorder rec;
  auto sent_to_a = [&] {
    int n = 0;
    for (const auto& r : transport.requests)
      n += model_of(r) == "a";
    return n;
  };
  for (int i = 0; i < 10; ++i) {
    auto result = f.run(transport, clock, f.spec(), rec);
    REQUIRE(result.ok);
    clock.advance(Millis(100));
  }
  CHECK(sent_to_a() == 3);  // then the circuit is open and a is skipped

  clock.advance(Millis(30'000));  // the cooldown ends: one probe, which fails again
  f.run(transport, clock, f.spec(), rec);
  CHECK(sent_to_a() == 4);
  clock.advance(Millis(30'000));  // the second cooldown is doubled: still open
  f.run(transport, clock, f.spec(), rec);
  CHECK(sent_to_a() == 4);
  clock.advance(Millis(31'000));
  a_healthy = true;
  auto healed = f.run(transport, clock, f.spec(), rec);
  CHECK(healed.target->target.model == "a");
  CHECK(sent_to_a() == 5);
  auto after = f.run(transport, clock, f.spec(), rec);  // closed again
  CHECK(after.target->target.model == "a");
}

TEST_CASE("call: a rate limit is not a health failure", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "a" ? error_reply(429, "requests", "rate_limit_exceeded", "slow",
                                            {{"retry-after", "60"}})
                              : ok_reply("b");
  });
  Recorder rec;
  for (int i = 0; i < 6; ++i) {
    auto result = f.run(transport, clock, f.spec(), rec);
    REQUIRE(result.ok);
    CHECK(result.attempts.front().error == ErrorClass::rate_limited);  // never skipped_open
    clock.advance(Millis(61'000));  // past the hint, which keeps the limiter off `a` until then
  }
  CHECK(transport.requests.size() == 12);  // a was asked every time
}

TEST_CASE("call: after the whole chain failed transiently, it is tried again", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  int calls = 0;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    ++calls;
    if (calls <= 2) return refused();
    return ok_reply(model_of(r));
  });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 1;
  auto result = f.run(transport, clock, spec, rec);
  REQUIRE(result.ok);
  REQUIRE(result.attempts.size() == 3);
  CHECK(result.attempts[2].model == "a");
  CHECK(result.attempts[2].waited > Millis(0));
  REQUIRE_FALSE(rec.notes.empty());
  CHECK_THAT(rec.notes[0], Catch::StartsWith("every target failed; trying mock/a, mock/b again"));
}

TEST_CASE("call: the retry budget stops retries when a provider fails for everyone", "[call]") {
  Fixture f({"a"});
  FakeClock clock;
  FakeTransport transport(
      clock, [&](const net::HttpRequest&) { return error_reply(500, "server_error", "", "boom"); });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 3;
  std::vector<size_t> attempts;
  for (int i = 0; i < 6; ++i) {
    attempts.push_back(f.run(transport, clock, spec, rec).attempts.size());
    clock.advance(Millis(61'000));  // past any breaker cooldown
  }
  // 1 + 2 retries: the budget starts at 10, each failure costs 1 and each retry 1 more, and
  // retries stop at half (5).
  CHECK(attempts.front() == 3);
  CHECK(attempts.back() == 1);  // later calls get their first attempt only
}

TEST_CASE("call: context_length moves to a larger window, else stops with exit 4", "[call]") {
  Fixture f({"small", "same", "large"});
  f.chain.targets[0].model.context_window = 8000;
  f.chain.targets[1].model.context_window = 8000;
  f.chain.targets[2].model.context_window = 128000;
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "large"
               ? ok_reply("fits")
               : error_reply(400, "invalid_request_error", "context_length_exceeded", "too long");
  });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  REQUIRE(result.ok);
  CHECK(result.target->target.model == "large");
  CHECK(transport.requests.size() == 2);  // "same" was skipped: its window is no larger

  Fixture g({"small", "same"});
  g.chain.targets[0].model.context_window = 8000;
  g.chain.targets[1].model.context_window = 8000;
  auto failed = g.run(transport, clock, g.spec(), rec);
  CHECK_FALSE(failed.ok);
  CHECK(failed.error == ErrorClass::context_length);
  CHECK(engine::exit_code_for_failure(failed) == 4);
}

TEST_CASE("call: --truncate fits the smallest known window before sending", "[call]") {
  Fixture f({"a"});
  f.chain.targets[0].model.context_window = 1000;
  FakeClock clock;
  std::string sent;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    sent = r.body;
    return ok_reply("ok");
  });
  Recorder rec;
  auto spec = f.spec();
  spec.truncate = true;
  spec.request.messages = {
      {"user", std::string(9000, 'x')}, {"assistant", "old"}, {"user", "the question"}};
  auto result = f.run(transport, clock, spec, rec);
  REQUIRE(result.ok);
  CHECK(result.truncated_messages == 1);  // the oldest; the rest then fits
  CHECK(sent.find("old") != std::string::npos);
  CHECK(sent.find(std::string(100, 'x')) == std::string::npos);
  CHECK(sent.find("the question") != std::string::npos);
}

TEST_CASE("call: a 200 that fails validation is a failed attempt and moves on", "[call]") {
  struct Row {
    const char* name;
    FakeReply first;
    bool require_complete;
    ErrorClass expected;
  };
  const std::vector<Row> rows = {
      {"empty", ok_reply("   "), false, ErrorClass::empty_response},
      {"refusal", ok_reply("I can't help with that."), false, ErrorClass::refusal},
      {"cut at max tokens", ok_reply("half an ans", "length"), true, ErrorClass::truncated},
  };
  for (const auto& row : rows) {
    SECTION(row.name) {
      Fixture f({"a", "b"});
      FakeClock clock;
      FakeTransport transport(clock, [&](const net::HttpRequest& r) {
        return model_of(r) == "a" ? row.first : ok_reply("a real answer");
      });
      Recorder rec;
      auto spec = f.spec();
      spec.retries = 2;
      spec.validation.require_complete = row.require_complete;
      auto result = f.run(transport, clock, spec, rec);
      REQUIRE(result.ok);
      CHECK(result.reply.content == "a real answer");
      REQUIRE(result.attempts.size() == 2);
      CHECK(result.attempts[0].error == row.expected);
      CHECK(result.attempts[0].status == 200);
    }
  }
  SECTION("an answer cut at max tokens is fine unless complete answers are required") {
    Fixture f({"a"});
    FakeClock clock;
    FakeTransport transport(
        clock, [&](const net::HttpRequest&) { return ok_reply("half an ans", "length"); });
    Recorder rec;
    CHECK(f.run(transport, clock, f.spec(), rec).ok);
  }
}

TEST_CASE("call: a schema mismatch fails the attempt", "[call]") {
  engine::SchemaValidator schema(nlohmann::json::parse(R"({"type":"object","required":["name"]})"),
                                 "test");
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "a" ? ok_reply(R"({"nom":"x"})") : ok_reply(R"({"name":"x"})");
  });
  Recorder rec;
  auto spec = f.spec();
  spec.validation.schema = &schema;
  auto result = f.run(transport, clock, spec, rec);
  REQUIRE(result.ok);
  CHECK(result.reply.content == R"({"name":"x"})");
  CHECK(result.attempts[0].error == ErrorClass::schema_mismatch);
}

TEST_CASE("call: a stream with no first token in time is a timeout and moves on", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "a" ? stream_reply("slow", Millis(800), Millis(900))
                              : stream_reply("quick", Millis(50), Millis(60));
  });
  Recorder rec;
  auto spec = f.spec(true);
  spec.first_token_timeout = Millis(300);
  auto result = f.run(transport, clock, spec, rec);
  REQUIRE(result.ok);
  CHECK(rec.text == "quick");  // nothing of the slow attempt was printed
  CHECK(result.attempts[0].error == ErrorClass::timeout);
  CHECK(result.attempts[0].latency == Millis(300));
  CHECK_THAT(result.attempts[0].message, Catch::Contains("no first token"));
}

TEST_CASE("call: a hedge asks the next target when the first is slow; first wins", "[call]") {
  SECTION("the hedge wins and the slow attempt is cancelled") {
    Fixture f({"a", "b"});
    FakeClock clock;
    FakeTransport transport(clock, [&](const net::HttpRequest& r) {
      return model_of(r) == "a" ? stream_reply("slow", Millis(5000), Millis(5100))
                                : stream_reply("fast", Millis(100), Millis(150));
    });
    Recorder rec;
    auto spec = f.spec(true);
    spec.hedge = true;
    spec.hedge_after = Millis(500);
    auto result = f.run(transport, clock, spec, rec);
    REQUIRE(result.ok);
    CHECK(result.target->target.model == "b");
    CHECK(rec.text == "fast");
    CHECK(result.latency == Millis(650));
    REQUIRE(result.attempts.size() == 2);
    // The attempts in the order they ended: the loser is cancelled at b's first token.
    CHECK(result.attempts[0].model == "a");
    CHECK(result.attempts[0].error == ErrorClass::cancelled);
    CHECK(result.attempts[1].hedge);
    CHECK(transport.cancelled.size() == 1);
  }
  SECTION("the first attempt answers before the hedge fires: no hedge") {
    Fixture f({"a", "b"});
    FakeClock clock;
    FakeTransport transport(clock, [&](const net::HttpRequest&) {
      return stream_reply("quick", Millis(100), Millis(150));
    });
    Recorder rec;
    auto spec = f.spec(true);
    spec.hedge = true;
    spec.hedge_after = Millis(500);
    auto result = f.run(transport, clock, spec, rec);
    REQUIRE(result.ok);
    CHECK(transport.requests.size() == 1);
  }
  SECTION("buffered: the first success wins, the other is cancelled") {
    Fixture f({"a", "b"});
    FakeClock clock;
    FakeTransport transport(clock, [&](const net::HttpRequest& r) {
      FakeReply reply = ok_reply(model_of(r));
      reply.latency = model_of(r) == "a" ? Millis(900) : Millis(200);
      return reply;
    });
    Recorder rec;
    auto spec = f.spec();
    spec.hedge = true;
    spec.hedge_after = Millis(300);
    auto result = f.run(transport, clock, spec, rec);
    REQUIRE(result.ok);
    CHECK(result.reply.content == "b");
    CHECK(result.latency == Millis(500));
    REQUIRE(result.attempts.size() == 2);
    CHECK(result.attempts[1].model == "a");
    CHECK(result.attempts[1].error == ErrorClass::cancelled);
    CHECK_THAT(result.attempts[1].message, Catch::Contains("lost the hedge"));
  }
}

TEST_CASE("call: a bad request stops the call at once", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest&) {
    return error_reply(400, "invalid_request_error", "", "'messages' is required");
  });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  CHECK_FALSE(result.ok);
  CHECK(transport.requests.size() == 1);
  CHECK(engine::exit_code_for_failure(result) == 4);
}

TEST_CASE("call: an auth failure skips the target until its key changes", "[call]") {
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "a" ? error_reply(401, "invalid_request_error", "invalid_api_key", "no")
                              : ok_reply("b");
  });
  Recorder rec;
  f.run(transport, clock, f.spec(), rec);
  auto skipped = f.run(transport, clock, f.spec(), rec);
  CHECK(skipped.attempts[0].error == ErrorClass::skipped_open);
  CHECK(transport.requests.size() == 3);
  auto spec = f.spec();
  spec.chain.targets[0].api_key = "sk-a-new-key-7890";
  auto retried = f.run(transport, clock, spec, rec);
  CHECK(retried.attempts[0].status == 401);  // a new key is tried again
}

TEST_CASE("call: no backoff is waited for a pass the retry budget would refuse", "[call]") {
  Fixture f({"a"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest&) { return refused(); });
  while (f.state->can_retry("mock"))
    f.state->spend_retry("mock");
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 3;
  auto result = f.run(transport, clock, spec, rec);
  CHECK_FALSE(result.ok);
  CHECK(transport.requests.size() == 1);
  CHECK(result.latency < Millis(5));  // the refused attempt only
  CHECK(rec.notes.empty());           // no "trying again in ..." pass was announced
}

TEST_CASE("call: nothing a call started runs after it reported, with retries on", "[call]") {
  // The hedge to b gets a 503 with retry-after 1s and waits to retry; a answers meanwhile.
  // The retry's timer must die with the call: before, it fired, sent b again, and its answer
  // called the finished call's moved-out callback (bad_function_call).
  Fixture f({"a", "b"});
  FakeClock clock;
  int b_requests = 0;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    if (model_of(r) == "a") return stream_reply("slow", Millis(450), Millis(460));
    ++b_requests;
    if (b_requests == 1)
      return error_reply(503, "server_error", "", "busy", {{"retry-after", "1"}});
    return stream_reply("flaky", Millis(10), Millis(20));
  });
  Recorder rec;
  auto spec = f.spec(true);
  spec.retries = 2;
  spec.hedge = true;
  spec.hedge_after = Millis(100);
  engine::CallResult result;
  int reports = 0;
  engine::Call call({transport, clock, *f.state, f.rng}, spec, rec, [&](engine::CallResult r) {
    ++reports;
    result = std::move(r);
  });
  call.start();
  transport.run();  // runs until nothing is left: a stray timer would fire here
  CHECK(reports == 1);
  REQUIRE(result.ok);
  CHECK(result.reply.content == "slow");
  CHECK(b_requests == 1);
  CHECK(transport.requests.size() == 2);
  CHECK(transport.pending_timers() == 0);
}

TEST_CASE("call: cancel during a backoff reports cancelled once and leaves no timer", "[call]") {
  Fixture f({"a"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest&) {
    return error_reply(503, "server_error", "", "busy", {{"retry-after", "2"}});
  });
  Recorder rec;
  auto spec = f.spec();
  spec.retries = 2;
  int reports = 0;
  engine::CallResult result;
  engine::Call call({transport, clock, *f.state, f.rng}, spec, rec, [&](engine::CallResult r) {
    ++reports;
    result = std::move(r);
  });
  call.start();
  // Stop the loop once the first 503 is in and the retry waits, then cancel, as Ctrl-C does.
  transport.add_timer(Millis(500), [&] { call.cancel(); });
  transport.run();
  CHECK(reports == 1);
  CHECK(result.error == ErrorClass::cancelled);
  CHECK(transport.requests.size() == 1);
  CHECK(transport.pending_timers() == 0);
}
