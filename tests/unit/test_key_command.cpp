// api_key_cmd's cache (README, "Providers"): run when first needed, kept for the process or
// api_key_ttl, forgotten after a 401; failures name the provider and the program, never the
// output. The runner and the clock are fakes; one test runs a real program.
#include <atomic>
#include <future>

#include <catch2/catch.hpp>

#include "config/key_command.hpp"
#include "io/command.hpp"
#include "key_command_fakes.hpp"

using namespace detour;
using config::KeyCommand;
using config::KeyCommandError;

using testing::printed;
using FakeRunner = testing::ScriptedCommand;

TEST_CASE("key command: runs once, keeps the first line, and again after its ttl", "[keycmd]") {
  FakeRunner fake;
  fake.results = {printed("  tok-1  \nmetadata: x\n"), printed("tok-2\n")};
  KeyCommand::Clock::time_point now{};
  KeyCommand command("vertex", "gcloud auth print-access-token", Millis(60'000), fake.runner(),
                     [&] { return now; });
  CHECK(fake.runs == 0);  // nothing runs until a key is needed

  auto first = command.get();
  CHECK(first.value == "tok-1");
  CHECK(first.fresh);
  CHECK(fake.last_argv == std::vector<std::string>{"gcloud", "auth", "print-access-token"});
  now += Millis(59'000);
  auto cached = command.get();
  CHECK(cached.value == "tok-1");
  CHECK_FALSE(cached.fresh);
  CHECK(fake.runs == 1);
  CHECK(command.cached() == std::optional<std::string>("tok-1"));

  now += Millis(1'000);
  CHECK(command.get().value == "tok-2");
  CHECK(fake.runs == 2);
}

TEST_CASE("key command: without a ttl it is kept for the process; a 401 forgets it", "[keycmd]") {
  FakeRunner fake;
  fake.results = {printed("a\n"), printed("b\n")};
  KeyCommand::Clock::time_point now{};
  KeyCommand command("p", "get-key", std::nullopt, fake.runner(), [&] { return now; });
  CHECK(command.get().value == "a");
  now += Millis(24LL * 3600 * 1000);
  CHECK(command.get().value == "a");
  command.invalidate();
  CHECK_FALSE(command.cached());
  const auto again = command.get();
  CHECK(again.value == "b");
  CHECK(again.fresh);
  CHECK(fake.runs == 2);
}

TEST_CASE("key command: failures name the provider and program, never the output", "[keycmd]") {
  struct Row {
    const char* name;
    io::CommandResult result;
    const char* message;
  };
  io::CommandResult not_started;
  not_started.error = "No such file or directory";
  io::CommandResult timed_out = printed("sk-SECRET-partial", -1);
  timed_out.timed_out = true;
  const Row rows[] = {
      {"exit 1", printed("sk-SECRET-printed-anyway\n", 1),
       "provider vault: api_key_cmd (get-key) failed with exit status 1; its output is not "
       "shown, as it may hold a secret"},
      {"signal", printed("sk-SECRET-x", -1),
       "provider vault: api_key_cmd (get-key) failed (killed by a signal)"},
      {"not found", not_started,
       "provider vault: api_key_cmd (get-key) could not be run: No such file or directory"},
      {"timeout", timed_out, "provider vault: api_key_cmd (get-key) did not finish within 30s"},
      {"blank first line", printed("\nsk-SECRET-second-line\n"),
       "provider vault: api_key_cmd (get-key) printed no key on its first line"},
  };
  for (const auto& row : rows) {
    SECTION(row.name) {
      FakeRunner fake;
      fake.results = {row.result};
      KeyCommand command("vault", "get-key --path secret/sk-SECRET-arg", std::nullopt,
                         fake.runner());
      std::string message;
      try {
        command.get();
      } catch (const KeyCommandError& e) {
        message = e.what();
      }
      CHECK_THAT(message, Catch::StartsWith(row.message));
      CHECK_THAT(message, !Catch::Contains("SECRET"));  // neither the output nor the arguments
      CHECK_FALSE(command.cached());
    }
  }
}

TEST_CASE("key command: a real program's first line, run without a shell", "[keycmd]") {
  const io::CommandResult r =
      io::run_command({"printf", "%s\\n%s\\n", "tok en", "rest"}, Millis(5000));
  CHECK(r.started);
  CHECK(r.exit_status == 0);
  CHECK(r.output == "tok en\nrest\n");
  const io::CommandResult missing = io::run_command({"no-such-program-for-detour"}, Millis(5000));
  CHECK_FALSE(missing.started);
  CHECK_FALSE(missing.error.empty());
  const io::CommandResult failing = io::run_command({"false"}, Millis(5000));
  CHECK(failing.exit_status == 1);
}

TEST_CASE("key command: a failure is kept a little while, not run again for every call",
          "[keycmd]") {
  FakeRunner fake;
  fake.results = {printed("", 1), printed("tok\n")};
  KeyCommand::Clock::time_point now{};
  KeyCommand command("p", "get-key", std::nullopt, fake.runner(), [&] { return now; });
  CHECK_THROWS_AS(command.get(), KeyCommandError);
  now += Millis(9'000);
  CHECK_THROWS_WITH(command.get(), Catch::Contains("failed with exit status 1"));
  CHECK(fake.runs == 1);
  now += Millis(1'000);
  CHECK(command.get().value == "tok");
  CHECK(fake.runs == 2);
}

TEST_CASE("key command: poll never waits; the command runs once however many ask", "[keycmd]") {
  FakeRunner fake;
  fake.results = {printed("tok-1\n"), printed("tok-2\n")};
  KeyCommand::Clock::time_point now{};
  std::vector<std::function<void()>> held;
  KeyCommand command(
      "vertex", "get-token", Millis(60'000), fake.runner(), [&] { return now; },
      [&](std::function<void()> work) { held.push_back(std::move(work)); });
  CHECK_FALSE(command.poll());
  CHECK_FALSE(command.poll());  // still running: not started again
  REQUIRE(held.size() == 1);
  CHECK(fake.runs == 0);
  held[0]();
  held.clear();
  auto key = command.poll();
  REQUIRE(key);
  CHECK(key->value == "tok-1");
  CHECK(fake.runs == 1);
  // Its ttl counts from when the command started.
  now += Millis(60'000);
  CHECK_FALSE(command.poll());
  REQUIRE(held.size() == 1);
  held[0]();
  CHECK(command.poll()->value == "tok-2");
}

TEST_CASE("key command: get waits for a command another caller started, on a real thread",
          "[keycmd]") {
  std::atomic<int> runs{0};
  std::promise<void> go;
  std::shared_future<void> released = go.get_future().share();
  KeyCommand command("p", "get-key", std::nullopt,
                     [&runs, released](const std::vector<std::string>&, Millis) {
                       ++runs;
                       released.wait();  // the command is still running until the test says
                       return printed("tok\n");
                     });
  CHECK_FALSE(command.poll());  // started on its thread, not finished
  go.set_value();
  const auto key = command.get();
  CHECK(key.value == "tok");
  CHECK(key.fresh);
  CHECK(runs == 1);
}
