// The integration harness's own tests: child processes, pipes and ptys, environment,
// timeouts and signals, temp dirs, free ports. Everything else builds on these.
#include <signal.h>

#include <httplib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>

#include "harness.hpp"

using namespace detour::testing;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

TEST_CASE("run: exit code, stdout and stderr apart", "[mock][harness]") {
  auto r = run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK(r.exit_code == 3);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  CHECK(run({"sh", "-c", "kill -TERM $$"}).exit_code == 128 + SIGTERM);
  CHECK(run({"/nonexistent/program"}).exit_code == 127);
  CHECK_FALSE(detour_bin().empty());
}

TEST_CASE("run: stdin data, large outputs without deadlock", "[mock][harness]") {
  RunOptions opts;
  opts.stdin_data.assign(1 << 20, 'x');  // (not `string(n, c) + "…"`: GCC 12 warns falsely)
  opts.stdin_data += "\nend";
  auto r = run({"cat"}, opts);
  CHECK(r.exit_code == 0);
  CHECK(r.out == opts.stdin_data);
  // Big output on both streams at once.
  auto big = run({"sh", "-c", "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"});
  CHECK(big.out.size() == 300000);
  CHECK(big.err.size() == 300000);
  // Empty stdin data: an empty, closed stdin, not a terminal.
  CHECK(run({"sh", "-c", "test -t 0 || cat; echo done"}).out == "done\n");
}

TEST_CASE("run: pseudo-terminals for stdout and stdin", "[mock][harness]") {
  RunOptions tty;
  tty.stdout_is_tty = true;
  auto r =
      run({"sh", "-c",
           "test -t 1 && printf 'tty\\nline2\\n' || echo pipe; test -t 2 || echo err-pipe >&2"},
          tty);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "tty\nline2\n");  // no "\r\n" translation
  CHECK(r.err == "err-pipe\n");
  CHECK(run({"sh", "-c", "test -t 1 && echo tty || echo pipe"}).out == "pipe\n");

  RunOptions in_tty;
  in_tty.stdin_is_tty = true;
  CHECK(run({"sh", "-c", "test -t 0 && echo tty"}, in_tty).out == "tty\n");
  // A program reading its terminal hangs (nothing is typed) until the timeout.
  in_tty.timeout = milliseconds(300);
  auto hang = run({"cat"}, in_tty);
  CHECK(hang.exit_code == -1);
  CHECK(hang.err.find("[harness: timeout]") != std::string::npos);
}

TEST_CASE("run: timeout kills the child", "[mock][harness]") {
  RunOptions opts;
  opts.timeout = milliseconds(200);
  auto start = Clock::now();
  auto r = run({"sh", "-c", "echo started; sleep 5"}, opts);
  CHECK(r.exit_code == -1);
  CHECK(r.out == "started\n");
  CHECK(r.err == "[harness: timeout]");
  CHECK(Clock::now() - start < milliseconds(2000));
}

TEST_CASE("run: signals on output or after a delay", "[mock][harness]") {
  // The mock prints its port and then waits; it exits 0 on SIGINT. (A shell would be a poor
  // subject: it defers SIGINT while forking, so the signal can miss its child.)
  RunOptions opts;
  opts.send_signal = SIGINT;
  opts.signal_when_output = "port=";
  auto start = Clock::now();
  auto r = run({mock_bin()}, opts);
  CHECK(r.exit_code == 0);
  CHECK(r.out.rfind("port=", 0) == 0);
  CHECK(Clock::now() - start < milliseconds(2000));
  RunOptions later;
  later.send_signal = SIGTERM;
  later.signal_after = milliseconds(100);
  start = Clock::now();
  CHECK(run({"sleep", "5"}, later).exit_code == 128 + SIGTERM);
  CHECK(Clock::now() - start < milliseconds(2000));
}

TEST_CASE("run: minimal environment, HOME and cwd", "[mock][harness]") {
  RunOptions opts;
  opts.env = {{"FOO", "bar"}, {"LANG", "C.UTF-8"}};
  auto r = run({"env"}, opts);
  CHECK(r.out.find("FOO=bar\n") != std::string::npos);
  CHECK(r.out.find("LANG=C.UTF-8\n") != std::string::npos);  // given values win
  CHECK(r.out.find("HOME=/") != std::string::npos);
  CHECK(r.out.find("XDG_CONFIG_HOME=") != std::string::npos);
  CHECK(r.out.find("XDG_STATE_HOME=") != std::string::npos);
  CHECK(r.out.find("PATH=") != std::string::npos);
  CHECK(r.out.find("OPENAI_API_KEY") == std::string::npos);
  CHECK(r.out.find("TERM=") == std::string::npos);

  TempDir dir;
  RunOptions shared;
  shared.home = dir.path();
  run({"sh", "-c", "mkdir -p \"$XDG_STATE_HOME\" && echo kept > \"$XDG_STATE_HOME/f\""}, shared);
  CHECK(dir.read(".local/state/f") == "kept\n");
  RunOptions in_dir;
  in_dir.cwd = dir.path();
  CHECK(run({"pwd"}, in_dir).out == std::filesystem::canonical(dir.path()).string() + "\n");
}

TEST_CASE("TempDir and free_port", "[mock][harness]") {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    auto file = dir.write("a/b/c.txt", "content");
    CHECK(file == path + "/a/b/c.txt");
    CHECK(dir.read("a/b/c.txt") == "content");
    CHECK_THROWS(dir.read("missing"));
  }
  CHECK_FALSE(std::filesystem::exists(path));

  int port = free_port();
  CHECK(port > 0);
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(2);
  auto res = cli.Get("/");
  CHECK_FALSE(res);
  CHECK(res.error() == httplib::Error::Connection);
}

TEST_CASE("run: run_as_uid runs the child unprivileged when the tests run as root", "[harness]") {
  RunOptions opts;
  opts.run_as_uid = kNobody;
  opts.run_as_gid = kNobody;
  auto r = run({"sh", "-c", "id -u; id -g; id -G; touch \"$HOME/x\" && echo home-writable"}, opts);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  if (drops_privileges(opts)) {
    CHECK(r.out == "65534\n65534\n65534\nhome-writable\n");  // no supplementary groups either
    // A program in a directory closed to that user (a build tree under /root) still runs.
    TempDir closed;  // 0700, root's
    const std::string copy = closed.file("detour");
    std::filesystem::copy_file(detour_bin(), copy);
    auto version = run({copy, "--version"}, opts);
    INFO(version.err);
    CHECK(version.exit_code == 0);
    CHECK_THAT(version.out, Catch::StartsWith("detour "));
  } else {
    CHECK(r.out != "0\n0\n0\nhome-writable\n");  // not root at all
    CHECK_THAT(r.out, Catch::EndsWith("home-writable\n"));
  }
}
