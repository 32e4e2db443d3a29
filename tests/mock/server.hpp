#pragma once
// The detour-mock HTTP server: routes, control endpoints (/_mock/...), and the request
// pipeline shared by the protocols (auth, limits, latency, faults, delivery). Azure OpenAI's
// routes are in azure.hpp.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <httplib.h>

#include "limits.hpp"
#include "protocols.hpp"
#include "scenario.hpp"
#include "stats.hpp"

namespace detour::mock {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                        // 0: any free port
  std::optional<std::string> api_key;  // --api-key; the scenario's api_key overrides it
  bool verbose = false;                // one line per request on stderr
};

// Everything the handlers share. Each member guards itself.
class Shared {
 public:
  Shared(ServerOptions options, Scenario scenario);

  const ServerOptions options;
  ScenarioState scenario;
  RateLimiter limiter;
  Stats stats;

  // Replaces the scenario and resets the limiter to its limits.
  void replace_scenario(Scenario scenario);
  // The key requests must carry, if any.
  std::optional<std::string> api_key();
  // The default model set plus every model the scenario names, sorted.
  std::vector<std::string> known_models();
  std::string next_request_id();

  // Sleeps, but returns false at once when the server is stopping, so SIGTERM never waits
  // for a slow stream to finish.
  bool sleep_ms(int ms);
  void begin_stop();

 private:
  std::atomic<std::uint64_t> next_id_{1};
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
};

// POST chat endpoints of all three protocols (exchange.cpp).
void handle_chat(Shared& shared, Protocol protocol, const httplib::Request& req,
                 httplib::Response& res, const GeminiTarget& gemini);
// GET model listings, or one model when `one` is set (exchange.cpp).
void handle_models(Shared& shared, Protocol protocol, const httplib::Request& req,
                   httplib::Response& res, const std::optional<std::string>& one);
// Any other method and path: the protocol's JSON 404, never an empty one (exchange.cpp).
void handle_no_route(Shared& shared, Protocol protocol, const httplib::Request& req,
                     httplib::Response& res);

class Server {
 public:
  Server(ServerOptions options, Scenario scenario);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket. Returns the bound port, or -1.
  int bind();
  // Serves until stop(). Returns false when it could not serve at all.
  bool serve();
  // Thread-safe; not async-signal-safe (call it from a signal-waiting thread).
  void stop();

 private:
  void add_routes();

  Shared shared_;
  httplib::Server http_;
  int port_ = -1;
};

}  // namespace detour::mock
