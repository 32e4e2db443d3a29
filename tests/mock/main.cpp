// detour-mock: a fault-injecting stand-in for the OpenAI, Anthropic, Gemini and Azure OpenAI
// APIs, on loopback only. See tests/mock/README.md for the flags and the scenario format.
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "server.hpp"

namespace {

constexpr const char* kUsage =
    "usage: detour-mock [--port N] [--host 127.0.0.1] [--scenario FILE.json] [--api-key KEY] [-v]\n"
    "  --port N         port to listen on; 0 (default) picks a free one\n"
    "  --host ADDR      loopback address to bind (127.0.0.0/8, ::1 or localhost)\n"
    "  --scenario FILE  initial scenario (JSON); POST /_mock/scenario replaces it\n"
    "  --api-key KEY    require this key (the scenario's api_key overrides it)\n"
    "  -v, --verbose    one line per request on stderr\n"
    "Prints \"port=N\" on stdout once listening; SIGTERM or SIGINT stops it.\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "detour-mock: error: %s\n%s", message.c_str(), kUsage);
  return 2;
}

// The mock can serve any fault to anyone who reaches it, so it never leaves the machine.
bool is_loopback(std::string& host) {
  if (host == "localhost") host = "127.0.0.1";
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  using detour::mock::Scenario;
  detour::mock::ServerOptions options;
  std::string scenario_file;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_inline = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    auto take = [&](std::string& out) {
      if (has_inline) return out = value, true;
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "-v" || arg == "--verbose") {
      options.verbose = true;
    } else if (arg == "--port") {
      if (!take(value)) return usage_error("--port needs a value");
      char* end = nullptr;
      long port = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || port < 0 || port > 65535)
        return usage_error("--port: \"" + value + "\" is not a port number (0-65535)");
      options.port = static_cast<int>(port);
    } else if (arg == "--host") {
      if (!take(options.host)) return usage_error("--host needs a value");
    } else if (arg == "--scenario") {
      if (!take(scenario_file)) return usage_error("--scenario needs a file name");
    } else if (arg == "--api-key") {
      std::string key;
      if (!take(key)) return usage_error("--api-key needs a value");
      options.api_key = key;
    } else {
      return usage_error("unknown argument \"" + arg + "\"");
    }
  }
  if (!is_loopback(options.host))
    return usage_error("--host: refusing to bind non-loopback address \"" + options.host +
                       "\" (detour-mock only listens on 127.0.0.0/8 or ::1)");

  Scenario scenario;
  if (!scenario_file.empty()) {
    std::ifstream in(scenario_file);
    if (!in)
      return usage_error("--scenario: cannot read " + scenario_file + ": " + std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    auto json = nlohmann::json::parse(text.str(), nullptr, false);
    if (json.is_discarded())
      return usage_error("--scenario: " + scenario_file + " is not valid JSON");
    try {
      scenario = detour::mock::parse_scenario(json);
    } catch (const std::exception& e) {
      return usage_error("--scenario: " + scenario_file + ": " + e.what());
    }
  }

  // Block the stop signals in every thread (the pool inherits the mask); one thread waits for
  // them with sigwait and stops the server outside of signal context.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client hanging up mid-stream is normal here

  detour::mock::Server server(options, std::move(scenario));
  int port = server.bind();
  if (port <= 0) {
    std::fprintf(stderr, "detour-mock: error: cannot bind %s:%d\n", options.host.c_str(),
                 options.port);
    return 1;
  }
  std::printf("port=%d\n", port);
  std::fflush(stdout);

  std::atomic<bool> served{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    // A signal right after the port line can come before the accept loop runs, when stop()
    // is still a no-op: repeat until serving has really ended.
    while (!served) {
      server.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  bool ok = server.serve();
  served = true;
  // serve() can also end on its own (listen failure): wake the waiter so it can be joined.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return ok ? 0 : 1;
}
