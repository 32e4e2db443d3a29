// api_key_cmd in the engine (README, "Providers"): the key is had when the attempt starts,
// the attempt waiting on the loop (not blocking it) while the command runs; a 401 to a cached
// token runs the command again and asks the same target once more; a command that gives no key
// fails that target as auth, moves on, and teaches its breaker nothing.
#include <catch2/catch.hpp>

#include "call_fixture.hpp"
#include "config/key_command.hpp"
#include "key_command_fakes.hpp"

using namespace detour;
using namespace detour::testing;
using namespace detour::testing::call;

namespace {

using Tokens = ScriptedCommand;

io::CommandResult token(std::string value, int status = 0) {
  return printed(std::move(value) + "\n", status);
}

// The command runs inside the poll that starts it, so the call's order is the test's.
std::shared_ptr<config::KeyCommand> inline_command(const std::string& provider, Tokens& tokens) {
  return std::make_shared<config::KeyCommand>(provider, "get-token", std::nullopt, tokens.runner(),
                                              config::KeyCommand::Clock::now,
                                              config::KeyCommand::run_inline);
}

// A command still running: its work is held until the test lets it finish.
struct HeldCommand {
  Tokens tokens;
  std::vector<std::function<void()>> held;
  std::shared_ptr<config::KeyCommand> command() {
    return std::make_shared<config::KeyCommand>(
        "vertex", "get-token", std::nullopt, tokens.runner(), config::KeyCommand::Clock::now,
        [this](std::function<void()> work) { held.push_back(std::move(work)); });
  }
  void finish() {
    for (auto& work : held)
      work();
    held.clear();
  }
};

std::string bearer(const net::HttpRequest& request) {
  auto value = net::find_header(request.headers, "authorization");
  return value ? std::string(*value) : "";
}

}  // namespace

TEST_CASE("key command: a 401 to a cached token runs the command again and retries once",
          "[call][keycmd]") {
  Fixture f({"a", "b"});
  Tokens tokens;
  tokens.results = {token("tok-old"), token("tok-new")};
  auto command = inline_command("mock", tokens);
  f.chain.targets[0].api_key.clear();
  f.chain.targets[0].key_command = command;
  (void)command->get();  // an earlier call of the process fetched the token that has expired

  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    if (model_of(r) != "a") return ok_reply("from b");
    return bearer(r) == "Bearer tok-new"
               ? ok_reply("from a")
               : error_reply(401, "invalid_request_error", "invalid_api_key", "expired token");
  });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  REQUIRE(result.ok);
  CHECK(result.reply.content == "from a");
  REQUIRE(result.attempts.size() == 2);
  CHECK(result.attempts[0].error == engine::ErrorClass::auth);
  CHECK(tokens.runs == 2);
  CHECK_THAT(rec.decisions[0], Catch::Contains("running it again"));
  // The expired token taught the target nothing: no failure on its record.
  CHECK(f.state->load(f.chain.targets[0]).breaker.consecutive_failures == 0);
  CHECK_FALSE(f.state->load(f.chain.targets[0]).stats.last_error);
}

TEST_CASE("key command: a fresh token refused is an ordinary auth failure", "[call][keycmd]") {
  Fixture f({"a", "b"});
  Tokens tokens;
  tokens.results = {token("tok-bad")};
  f.chain.targets[0].api_key.clear();
  f.chain.targets[0].key_command = inline_command("mock", tokens);
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "a"
               ? error_reply(401, "invalid_request_error", "invalid_api_key", "bad token")
               : ok_reply("from b");
  });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  REQUIRE(result.ok);
  CHECK(result.reply.content == "from b");
  REQUIRE(result.attempts.size() == 2);
  CHECK(tokens.runs == 1);  // no loop of refreshes
  CHECK(f.state->load(f.chain.targets[0]).stats.last_error);
}

TEST_CASE("key command: no key, no request; the call moves on and the breaker stays shut",
          "[call][keycmd]") {
  engine::BreakerConfig breaker;
  breaker.consecutive_failures = 1;
  Fixture f({"a", "b"}, {}, breaker);
  Tokens tokens;
  tokens.results = {token("sk-SECRET-printed", 1)};
  f.chain.targets[0].api_key.clear();
  f.chain.targets[0].key_command = inline_command("vault", tokens);
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    CHECK(model_of(r) == "b");  // nothing was sent to a
    return ok_reply("from b");
  });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  REQUIRE(result.ok);
  CHECK(transport.requests.size() == 1);
  REQUIRE(result.attempts.size() == 2);
  CHECK(result.attempts[0].error == engine::ErrorClass::auth);
  CHECK_THAT(
      result.attempts[0].message,
      Catch::StartsWith("provider vault: api_key_cmd (get-token) failed with exit status 1"));
  CHECK_THAT(result.attempts[0].message, !Catch::Contains("SECRET"));
  CHECK(transport.pending_timers() == 0);
  const auto state = f.state->load(f.chain.targets[0]);
  CHECK(state.breaker.consecutive_failures == 0);
  CHECK(state.breaker.state == engine::BreakerSnapshot::Stored::closed);
}

TEST_CASE("key command: the attempt waits on the loop while the command runs, then sends",
          "[call][keycmd]") {
  Fixture f({"a", "b"});
  HeldCommand held;
  held.tokens.results = {token("tok-1")};
  f.chain.targets[0].api_key.clear();
  f.chain.targets[0].key_command = held.command();
  FakeClock clock;
  const auto began = clock.now();
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    CHECK(bearer(r) == "Bearer tok-1");
    CHECK(clock.now() - began >= Millis(700));  // not before the command printed the key
    return ok_reply("from a");
  });
  // The command takes 700 ms: the loop runs timers meanwhile (other calls would go on).
  transport.add_timer(Millis(700), [&] { held.finish(); });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  REQUIRE(result.ok);
  CHECK(result.reply.content == "from a");
  CHECK(held.tokens.runs == 1);  // one run, however many polls
  CHECK(transport.requests.size() == 1);
  CHECK(transport.pending_timers() == 0);
}

TEST_CASE("key command: a key waited for is fresh, so a 401 to it is not retried",
          "[call][keycmd]") {
  Fixture f({"a", "b"});
  HeldCommand held;
  held.tokens.results = {token("tok-bad")};
  f.chain.targets[0].api_key.clear();
  f.chain.targets[0].key_command = held.command();
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    return model_of(r) == "a"
               ? error_reply(401, "invalid_request_error", "invalid_api_key", "bad token")
               : ok_reply("from b");
  });
  transport.add_timer(Millis(50), [&] { held.finish(); });
  Recorder rec;
  auto result = f.run(transport, clock, f.spec(), rec);
  REQUIRE(result.ok);
  CHECK(result.reply.content == "from b");
  REQUIRE(result.attempts.size() == 2);
  CHECK(held.tokens.runs == 1);
}

TEST_CASE("key command: a call cancelled while the command runs ends without sending",
          "[call][keycmd]") {
  Fixture f({"a"});
  HeldCommand held;
  held.tokens.results = {token("tok-1")};
  f.chain.targets[0].api_key.clear();
  f.chain.targets[0].key_command = held.command();
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest&) { return ok_reply("no"); });
  Recorder rec;
  std::optional<engine::CallResult> result;
  engine::Call call({transport, clock, *f.state, f.rng}, f.spec(), rec, [&](engine::CallResult r) {
    result = std::move(r);
    transport.stop();
  });
  call.start();
  transport.add_timer(Millis(100), [&] { call.cancel(); });
  transport.run();
  REQUIRE(result);
  CHECK_FALSE(result->ok);
  CHECK(result->error == engine::ErrorClass::cancelled);
  CHECK(transport.requests.empty());
  // The target learned nothing from an attempt never sent.
  CHECK_FALSE(f.state->load(f.chain.targets[0]).stats.last_error);
  held.finish();  // the command ends after the call: nobody listens
  CHECK(held.tokens.runs == 1);
}
