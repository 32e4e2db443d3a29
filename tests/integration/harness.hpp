#pragma once
// The integration-test harness: run the real detour binary (or any program) as a child process
// with a controlled environment and terminals, and drive detour-mock over loopback HTTP.
//
//   using namespace detour::testing;
//   MockServer mock({{"default", {{"fault", "rate_limit"}, {"times", 1}}}});
//   TempDir dir;
//   auto config = dir.write("config.toml", "[providers.m]\nprotocol = \"openai\"\n"
//                           "base_url = \"" + mock.url() + "/v1\"\napi_key_env = \"K\"\n");
//   RunOptions opts;
//   opts.env = {{"K", "test-key"}};
//   RunResult r = run({detour_bin(), "-c", config, "ask", "-m", "m/mock-1", "hi"}, opts);
//   CHECK(r.exit_code == 0);
//   CHECK(r.out == "mock reply to: hi\n");
//   CHECK(mock.stats()["requests"] == 2);
//
// Everything here throws std::runtime_error when the harness itself cannot work (fork fails,
// the mock does not start); a test's own expectations are left to Catch2.
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include <nlohmann/json.hpp>

namespace detour::testing {

struct RunResult {
  int exit_code = -1;  // the exit status; 128+N when killed by signal N; -1 on harness timeout
  std::string out;     // everything written to stdout (to the pty when stdout_is_tty)
  std::string err;     // everything written to stderr (always a pipe)
};

struct RunOptions {
  // Written to the child's stdin (a pipe), which is then closed. Ignored when stdin_is_tty.
  std::string stdin_data;
  // Give the child a pseudo-terminal as stdin with nothing ever typed on it: a program that
  // wrongly reads its terminal hangs until `timeout` (which is what such tests check).
  bool stdin_is_tty = false;
  // Give the child a pseudo-terminal (80x24, no output post-processing, so "\n" stays "\n")
  // as stdout; `out` is what was written to it.
  bool stdout_is_tty = false;
  // The child's WHOLE environment is a minimal base plus these (these win):
  //   PATH (the test process's), HOME=<home>, XDG_CONFIG_HOME=<home>/.config,
  //   XDG_STATE_HOME=<home>/.local/state, XDG_CACHE_HOME=<home>/.cache,
  //   XDG_DATA_HOME=<home>/.local/share, LANG=C, and ASAN_OPTIONS/UBSAN_OPTIONS/LSAN_OPTIONS
  //   when set in the test process. Nothing else leaks in (no real API keys, no TERM).
  std::map<std::string, std::string> env;
  // HOME for the child. Empty: a fresh temporary directory, removed after the run, so runs
  // share no config or state. Set it (e.g. to a TempDir's path) to share state across runs.
  std::string home;
  // Kill the child (and its process group) after this long: exit_code -1 and err ends with
  // "[harness: timeout]".
  std::chrono::milliseconds timeout{30000};
  // Working directory of the child; empty: the test process's.
  std::string cwd;
  // Send `send_signal` (e.g. SIGINT) to the child's process group, as a terminal's Ctrl-C
  // would, once `signal_when` returns true (asked about every 20 ms while the child runs, e.g.
  // "has the mock received the request?"), else once `signal_when_output` appears in its
  // stdout or stderr, or, when both are empty, `signal_after` after the start. 0: never.
  int send_signal = 0;
  std::function<bool()> signal_when;
  std::string signal_when_output;
  std::chrono::milliseconds signal_after{0};
  // When the test process is root (as in CI), run the child as this user and group instead
  // (setgroups, setgid, setuid between fork and exec), since root ignores permission bits and
  // a test of a read-only file would test nothing. -1: unchanged. Ignored when not root: the
  // child is then unprivileged already. The HOME made for the run (when `home` is empty) is
  // given to that user; anything else the child needs (config, state directory, cwd) the test
  // must make accessible to it.
  int run_as_uid = -1;
  int run_as_gid = -1;
};

// The conventional unprivileged user and group (`nobody`, `nogroup`) for run_as_uid/gid.
inline constexpr int kNobody = 65534;

// Whether run() really changes the child's user for `opts` (the test process is root and
// run_as_uid is set).
bool drops_privileges(const RunOptions& opts);

// Runs argv[0] (a path, or a name looked up in PATH) with argv, waits for it to exit and
// returns what it wrote. stdout and stderr are read concurrently, so neither can block it.
RunResult run(const std::vector<std::string>& argv, const RunOptions& opts = {});

// The detour binary under test and the mock (compile definitions DETOUR_BIN, DETOUR_MOCK_BIN).
std::string detour_bin();
std::string mock_bin();

// A loopback TCP port with nothing listening on it (bound to port 0, read, closed): for
// "connection refused" tests.
int free_port();

// A temporary directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name (name may contain '/'; missing directories are created).
  std::string file(const std::string& name) const;
  // Writes content to path()/name and returns that full path.
  std::string write(const std::string& name, const std::string& content) const;
  // The content of path()/name; throws when it cannot be read.
  std::string read(const std::string& name) const;

 private:
  std::string path_;
};

// A detour-mock process on 127.0.0.1 for the lifetime of the object.
class MockServer {
 public:
  // Starts detour-mock --port 0 [--scenario <file with `scenario`>] extra_args..., and waits
  // for its "port=N" line. An empty/null scenario means the mock's default (no faults).
  explicit MockServer(const nlohmann::json& scenario = {},
                      std::vector<std::string> extra_args = {});
  // Lets MockServer mock({{"default", {{"fault", "rate_limit"}}}}) compile: without it a braced
  // scenario is ambiguous with the (deleted) copy constructor.
  MockServer(nlohmann::json::initializer_list_t scenario, std::vector<std::string> extra_args = {})
      : MockServer(nlohmann::json(scenario), std::move(extra_args)) {}
  // SIGTERM, then waits (SIGKILL after 5 s). Reports an abnormal exit on stderr.
  ~MockServer();
  MockServer(const MockServer&) = delete;
  MockServer& operator=(const MockServer&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // "http://127.0.0.1:PORT". Provider base URLs: url() + "/v1" for OpenAI-compatible
  // providers; url() itself for Anthropic and Gemini.
  std::string url() const;

  // Replaces the scenario (POST /_mock/scenario); throws std::runtime_error with the mock's
  // message when it rejects it. Fault counters, outage clock and limiter restart.
  void set_scenario(const nlohmann::json& scenario);
  nlohmann::json scenario();  // GET /_mock/scenario (normalised: every key present)
  nlohmann::json stats();     // GET /_mock/stats
  void reset_stats();         // POST /_mock/stats/reset

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int stdout_fd_ = -1;
  std::string scenario_file_;
};

}  // namespace detour::testing
