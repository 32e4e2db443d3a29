#pragma once
// A real redis-server (Debian's redis-server package; scripts/deps installs it) on a free
// loopback port for the lifetime of the object, for the tests of the redis:// state store.
// Nothing is saved to disk. stop() and start() kill and restart it on the same port, as an
// outage would; cli() runs redis-cli against it. Given a directory of certificates
// (certificates.hpp), it speaks only TLS, with server.pem and server.key, and url() is rediss://.
//
//   RedisServer redis;                       // or RedisServer redis("s3cret") for a password
//   auto store = open_store(redis.url(), ...);
//   redis.cli({"FLUSHALL"});
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

namespace detour::testing {

class RedisServer {
 public:
  // `client_certificates`: a TLS server that refuses clients without a certificate from
  // tls_dir/ca.pem (Redis's own default for its TLS port).
  explicit RedisServer(std::string password = "", std::string tls_dir = "",
                       bool client_certificates = false)
      : password_(std::move(password)),
        tls_dir_(std::move(tls_dir)),
        client_certificates_(client_certificates) {
    port_ = free_port();
    start();
  }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  // redis://127.0.0.1:PORT, with ":PASSWORD@" when the server has one; for a TLS server
  // rediss://...?ca_bundle=DIR/ca.pem, or without the query when `trusted` is false.
  std::string url(bool trusted = true) const {
    std::string out = std::string(tls_dir_.empty() ? "redis://" : "rediss://") +
                      (password_.empty() ? "" : ":" + password_ + "@") +
                      "127.0.0.1:" + std::to_string(port_);
    if (!tls_dir_.empty() && trusted) out += "?ca_bundle=" + tls_dir_ + "/ca.pem";
    return out;
  }

  // Starts the server (again) on its port and waits until it answers PING.
  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> args{"redis-server",
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "no",
                                  "--dir",
                                  dir_.path(),
                                  "--loglevel",
                                  "warning"};
    if (!password_.empty()) {
      args.push_back("--requirepass");
      args.push_back(password_);
    }
    if (!tls_dir_.empty()) {
      args[2] = "0";  // no plain port
      args.insert(args.end(), {"--tls-port", std::to_string(port_), "--tls-cert-file",
                               tls_dir_ + "/server.pem", "--tls-key-file", tls_dir_ + "/server.key",
                               "--tls-ca-cert-file", tls_dir_ + "/ca.pem", "--tls-auth-clients",
                               client_certificates_ ? "yes" : "no"});
    }
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("RedisServer: fork failed");
    if (pid_ == 0) {
      // Its start-up banner and warnings (memory overcommit) are not the test's output.
      const int null_fd = ::open("/dev/null", O_WRONLY);
      ::dup2(null_fd, 1);
      ::dup2(null_fd, 2);
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (cli({"PING"}).out == "PONG\n") return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("RedisServer: redis-server exited at start");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("RedisServer: redis-server did not answer PING within 10 s");
  }

  // Kills the server at once (SIGKILL: no goodbye to its clients) and waits for it.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // redis-cli -p PORT [-a PASSWORD] args...; `out` is its reply as redis-cli prints it.
  RunResult cli(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port_)};
    if (!tls_dir_.empty()) {
      argv.push_back("--tls");
      argv.push_back("--cacert");
      argv.push_back(tls_dir_ + "/ca.pem");
      argv.insert(argv.end(),
                  {"--cert", tls_dir_ + "/client.pem", "--key", tls_dir_ + "/client.key"});
    }
    if (!password_.empty()) {
      argv.push_back("--no-auth-warning");
      argv.push_back("-a");
      argv.push_back(password_);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions opts;
    opts.timeout = std::chrono::milliseconds(5000);
    return run(argv, opts);
  }

 private:
  std::string password_;
  std::string tls_dir_;
  bool client_certificates_ = false;
  int port_ = 0;
  pid_t pid_ = -1;
  TempDir dir_;
};

}  // namespace detour::testing
