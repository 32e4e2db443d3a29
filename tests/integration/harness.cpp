#include "harness.hpp"

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <httplib.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace detour::testing {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("harness: " + what + ": " + std::strerror(errno));
}

void set_cloexec(int fd) {
  fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
}
void set_nonblock(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// A pseudo-terminal whose slave does no output processing: what the child writes is what the
// test reads, byte for byte ("\n" is not turned into "\r\n").
void open_pty(int& master, int& slave) {
  winsize ws{};
  ws.ws_row = 24;
  ws.ws_col = 80;
  if (openpty(&master, &slave, nullptr, nullptr, &ws) != 0) fail("openpty");
  termios t{};
  tcgetattr(slave, &t);
  t.c_oflag &= ~static_cast<tcflag_t>(OPOST | ONLCR);
  t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(slave, TCSANOW, &t);
  set_cloexec(master);
  set_cloexec(slave);
}

void make_pipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0) fail("pipe");
}

// Everything the child does between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(char* const* argv, char* const* envp, int in, int out, int err,
                             int ctty, const char* cwd, int uid, int gid) {
  setsid();  // own session and process group: a timeout kills the whole group
  if (ctty >= 0) ioctl(ctty, TIOCSCTTY, 0);
  dup2(in, 0);
  dup2(out, 1);
  dup2(err, 2);
  close_range(3, ~0U, 0);
  if (cwd && chdir(cwd) != 0) {
    const char msg[] = "harness: chdir failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  // After chdir (the test's directory may be closed to the new user); group before user, as
  // a process that is no longer root cannot change its group.
  if (uid >= 0) {
    const gid_t group = static_cast<gid_t>(gid >= 0 ? gid : uid);
    if (setgroups(0, nullptr) != 0 || setgid(group) != 0 || setuid(static_cast<uid_t>(uid)) != 0) {
      const char msg[] = "harness: cannot drop privileges\n";
      (void)!write(2, msg, sizeof msg - 1);
      _exit(127);
    }
  }
  // The test process ignores SIGPIPE; the program under test must start with defaults.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s)
    sigaction(s, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execvpe(argv[0], argv, envp);
  const char msg[] = "harness: exec failed\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(127);
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits for pid up to `limit`; nullopt when it is still running.
std::optional<int> wait_for(pid_t pid, milliseconds limit) {
  auto end = Clock::now() + limit;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_status(status);
    if (r < 0 && errno != EINTR) return -1;
    if (Clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(2));
  }
}

std::string make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/detour-test-XXXXXX";
  if (!mkdtemp(templ.data())) fail("mkdtemp " + templ);
  return templ;
}

std::vector<std::string> child_env(const RunOptions& opts, const std::string& home) {
  std::map<std::string, std::string> env;
  const char* path = std::getenv("PATH");
  env["PATH"] = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  env["HOME"] = home;
  env["XDG_CONFIG_HOME"] = home + "/.config";
  env["XDG_STATE_HOME"] = home + "/.local/state";
  env["XDG_CACHE_HOME"] = home + "/.cache";
  env["XDG_DATA_HOME"] = home + "/.local/share";
  env["LANG"] = "C";
  // Sanitizer runs configure the children through these.
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"})
    if (const char* v = std::getenv(name)) env[name] = v;
  for (const auto& [k, v] : opts.env)
    env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env)
    out.push_back(k + "=" + v);
  return out;
}

// Reads what is available on fd into out; closes fd at end of file (or EIO: pty hung up).
void drain(int& fd, std::string& out) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_fd(fd);
    return;
  }
}

// A test's condition for sending the signal; one that throws (the mock it asks is gone) is
// not met yet, so the child still ends, by the timeout at worst, and is never left running.
bool signal_due(const std::function<bool()>& condition) {
  try {
    return condition();
  } catch (const std::exception&) {
    return false;
  }
}

struct IgnoreSigpipe {
  IgnoreSigpipe() { signal(SIGPIPE, SIG_IGN); }
};

// Whether a user other than the owner can run `path`: the file and every directory above it
// open to others.
bool others_can_run(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
  for (auto dir = path.parent_path(); !dir.empty(); dir = dir.parent_path()) {
    if (::stat(dir.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
    if (dir == dir.root_path()) break;
  }
  return true;
}

// Copies of programs for unprivileged children, made once per program and removed at exit.
struct SharedCopies {
  std::map<std::string, std::string> copies;
  std::vector<std::string> dirs;
  ~SharedCopies() {
    std::error_code ec;
    for (const auto& d : dirs)
      std::filesystem::remove_all(d, ec);
  }
};

// `program` as an unprivileged child can run it: itself when it can, else a copy in a temporary
// directory open to all (a build tree under a private home, as a CI checkout may be, is not).
std::string runnable_by_others(const std::string& program) {
  if (program.find('/') == std::string::npos || others_can_run(program)) return program;
  static SharedCopies shared;
  auto& copy = shared.copies[program];
  if (!copy.empty()) return copy;
  std::string dir = make_temp_dir();
  shared.dirs.push_back(dir);
  ::chmod(dir.c_str(), 0755);
  copy = dir + "/" + std::filesystem::path(program).filename().string();
  std::filesystem::copy_file(program, copy);
  ::chmod(copy.c_str(), 0755);
  return copy;
}

}  // namespace

bool drops_privileges(const RunOptions& opts) {
  return opts.run_as_uid >= 0 && geteuid() == 0;
}

RunResult run(const std::vector<std::string>& argv, const RunOptions& opts) {
  static IgnoreSigpipe ignore_sigpipe;  // a child that exits early must not kill the tests
  if (argv.empty()) throw std::invalid_argument("harness: run() needs a program");
  const bool drop = drops_privileges(opts);
  const int uid = drop ? opts.run_as_uid : -1;
  const int gid = drop ? (opts.run_as_gid >= 0 ? opts.run_as_gid : opts.run_as_uid) : -1;
  std::optional<TempDir> own_home;
  std::string home = opts.home;
  if (home.empty()) {
    own_home.emplace();
    home = own_home->path();
    if (drop && chown(home.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0)
      fail("chown " + home);
  }
  std::vector<std::string> args = argv;
  if (drop) args[0] = runnable_by_others(args[0]);
  std::vector<std::string> env = child_env(opts, home);
  auto c_args = c_strings(args);
  auto c_env = c_strings(env);

  // Child ends first, parent ends second.
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  if (opts.stdin_is_tty)
    open_pty(in[1], in[0]);
  else
    make_pipe(in);
  if (opts.stdout_is_tty)
    open_pty(out[0], out[1]);
  else
    make_pipe(out);
  make_pipe(err);
  int ctty = opts.stdin_is_tty ? in[0] : opts.stdout_is_tty ? out[1] : -1;

  pid_t pid = fork();
  if (pid < 0) fail("fork");
  if (pid == 0)
    exec_child(c_args.data(), c_env.data(), in[0], out[1], err[1], ctty,
               opts.cwd.empty() ? nullptr : opts.cwd.c_str(), uid, gid);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  int in_fd = in[1], out_fd = out[0], err_fd = err[0];
  set_nonblock(out_fd);
  set_nonblock(err_fd);
  set_nonblock(in_fd);
  // With a tty stdin nothing is ever typed, but the master stays open so the terminal lives.
  int tty_master = opts.stdin_is_tty ? in_fd : -1;
  if (opts.stdin_is_tty) in_fd = -1;
  if (!opts.stdin_is_tty && opts.stdin_data.empty()) close_fd(in_fd);

  RunResult result;
  auto start = Clock::now();
  std::size_t written = 0;
  bool signalled = opts.send_signal == 0, timed_out = false;
  std::optional<int> exit_code;
  std::optional<Clock::time_point> exited_at;
  while (out_fd >= 0 || err_fd >= 0) {
    auto now = Clock::now();
    if (now - start >= opts.timeout) {
      timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      break;
    }
    if (!signalled) {
      bool due = opts.signal_when ? signal_due(opts.signal_when)
                 : opts.signal_when_output.empty()
                     ? now - start >= opts.signal_after
                     : result.out.find(opts.signal_when_output) != std::string::npos ||
                           result.err.find(opts.signal_when_output) != std::string::npos;
      if (due) {
        kill(-pid, opts.send_signal);  // like Ctrl-C: the child's whole process group
        signalled = true;
      }
    }
    // A grandchild may keep the pipes open after the child is gone: stop reading soon after.
    if (!exit_code) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exit_code = decode_status(status);
        exited_at = now;
      }
    } else if (now - *exited_at > milliseconds(500)) {
      break;
    }
    pollfd fds[3];
    nfds_t n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    poll(fds, n, 20);  // short: the signal and timeout checks above need a heartbeat
    if (out_fd >= 0) drain(out_fd, result.out);
    if (err_fd >= 0) drain(err_fd, result.err);
    while (in_fd >= 0 && written < opts.stdin_data.size()) {
      ssize_t w = write(in_fd, opts.stdin_data.data() + written, opts.stdin_data.size() - written);
      if (w > 0) {
        written += static_cast<std::size_t>(w);
      } else if (w < 0 && errno == EINTR) {
        continue;
      } else {
        if (w < 0 && errno != EAGAIN) close_fd(in_fd);  // EPIPE: the child stopped reading
        break;
      }
    }
    if (in_fd >= 0 && written >= opts.stdin_data.size()) close_fd(in_fd);
  }
  close_fd(in_fd);
  close_fd(out_fd);
  close_fd(err_fd);
  if (!exit_code) {
    auto left = opts.timeout - std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    exit_code = wait_for(pid, timed_out ? milliseconds(0) : std::max(left, milliseconds(0)));
    if (!exit_code) {
      timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      exit_code = wait_for(pid, milliseconds(5000));
    }
  }
  close_fd(tty_master);
  result.exit_code = timed_out ? -1 : exit_code.value_or(-1);
  if (timed_out) {
    if (!result.err.empty() && result.err.back() != '\n') result.err += "\n";
    result.err += "[harness: timeout]";
  }
  return result;
}

std::string detour_bin() {
  return DETOUR_BIN;
}
std::string mock_bin() {
  return DETOUR_MOCK_BIN;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    fail("bind 127.0.0.1:0");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

TempDir::TempDir() : path_(make_temp_dir()) {}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::file(const std::string& name) const {
  return path_ + "/" + name;
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  std::string p = file(name);
  std::filesystem::create_directories(std::filesystem::path(p).parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << content;
  if (!f.flush()) throw std::runtime_error("harness: cannot write " + p);
  return p;
}

std::string TempDir::read(const std::string& name) const {
  std::ifstream f(file(name), std::ios::binary);
  if (!f) throw std::runtime_error("harness: cannot read " + file(name));
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// ---- MockServer ----

namespace {

httplib::Client control_client(int port) {
  // One connection per call (httplib's default): an idle keep-alive connection would make
  // the mock's shutdown wait for it.
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(5);
  cli.set_read_timeout(10);
  cli.set_write_timeout(10);
  return cli;
}

nlohmann::json control_json(const httplib::Result& res, const std::string& what) {
  if (!res)
    throw std::runtime_error("harness: mock " + what + ": " + httplib::to_string(res.error()));
  if (res->status != 200)
    throw std::runtime_error("harness: mock " + what + ": HTTP " + std::to_string(res->status) +
                             ": " + res->body);
  return nlohmann::json::parse(res->body);
}

}  // namespace

MockServer::MockServer(const nlohmann::json& scenario, std::vector<std::string> extra_args) {
  std::vector<std::string> args = {mock_bin(), "--port", "0"};
  if (!scenario.is_null()) {
    char templ[] = "/tmp/detour-mock-scenario-XXXXXX";
    int fd = mkstemp(templ);
    if (fd < 0) fail("mkstemp");
    std::string text = scenario.dump();
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    close(fd);
    scenario_file_ = templ;
    if (!ok) fail("write " + scenario_file_);
    args.push_back("--scenario");
    args.push_back(scenario_file_);
  }
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    env.emplace_back(*e);
  auto c_args = c_strings(args);
  auto c_env = c_strings(env);
  int out[2];
  make_pipe(out);
  pid_ = fork();
  if (pid_ < 0) fail("fork");
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a crashed test process
    int null_in = open("/dev/null", O_RDONLY);
    dup2(null_in, 0);
    dup2(out[1], 1);
    close_range(3, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, nullptr);
    execve(c_args[0], c_args.data(), c_env.data());
    const char msg[] = "harness: cannot exec detour-mock\n";
    (void)!::write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  close(out[1]);
  stdout_fd_ = out[0];

  // The mock prints "port=N" once it is listening.
  std::string line;
  auto end = Clock::now() + milliseconds(10000);
  while (line.find('\n') == std::string::npos && Clock::now() < end) {
    pollfd p{stdout_fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[256];
    ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<std::size_t>(n));
  }
  if (line.rfind("port=", 0) == 0) port_ = std::atoi(line.c_str() + 5);
  if (port_ <= 0) {
    kill(pid_, SIGKILL);
    auto code = wait_for(pid_, milliseconds(5000));
    pid_ = -1;
    close_fd(stdout_fd_);
    if (!scenario_file_.empty()) unlink(scenario_file_.c_str());
    throw std::runtime_error("harness: detour-mock did not report its port (got \"" + line +
                             "\", exit " + std::to_string(code.value_or(-1)) + ")");
  }
}

MockServer::~MockServer() {
  if (!scenario_file_.empty()) unlink(scenario_file_.c_str());
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    auto code = wait_for(pid_, milliseconds(5000));
    if (!code) {
      kill(pid_, SIGKILL);
      code = wait_for(pid_, milliseconds(5000));
      std::fprintf(stderr, "[harness] detour-mock did not stop on SIGTERM within 5 s\n");
    } else if (*code != 0) {
      std::fprintf(stderr, "[harness] detour-mock exited with %d\n", *code);
    }
  }
  close_fd(stdout_fd_);
}

std::string MockServer::url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

void MockServer::set_scenario(const nlohmann::json& scenario) {
  auto cli = control_client(port_);
  control_json(cli.Post("/_mock/scenario", scenario.dump(), "application/json"), "set_scenario");
}

nlohmann::json MockServer::scenario() {
  auto cli = control_client(port_);
  return control_json(cli.Get("/_mock/scenario"), "scenario");
}

nlohmann::json MockServer::stats() {
  auto cli = control_client(port_);
  return control_json(cli.Get("/_mock/stats"), "stats");
}

void MockServer::reset_stats() {
  auto cli = control_client(port_);
  control_json(cli.Post("/_mock/stats/reset", "", "application/json"), "reset_stats");
}

}  // namespace detour::testing
