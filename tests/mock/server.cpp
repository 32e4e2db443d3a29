#include "server.hpp"

#include "azure.hpp"
#include "sockets.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace detour::mock {

namespace {

using nlohmann::json;

// Models every mock lists, so a zero-config detour finds the usual names.
const std::vector<std::string> kDefaultModels = {
    "mock-1",           "mock-2",           "gpt-4o",           "gpt-4o-mini", "claude-sonnet-4-5",
    "claude-haiku-4-5", "gemini-2.0-flash", "gemini-2.5-flash",
};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Recorded paths and auth headers are whatever a client sent; replacing bytes that are not
  // UTF-8 keeps one odd request from turning /_mock/stats into a 500 for the rest of the run.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// Which API a request no route matched was meant for, from the marks each one's clients leave:
// Gemini's paths, key and method suffixes (":countTokens"), then Anthropic's version header.
Protocol guess_protocol(const httplib::Request& req) {
  if (req.path.rfind("/v1beta/", 0) == 0 || req.path.find(':') != std::string::npos ||
      req.has_header("x-goog-api-key") || req.has_param("key"))
    return Protocol::gemini;
  return req.has_header("anthropic-version") ? Protocol::anthropic : Protocol::openai;
}

}  // namespace

Shared::Shared(ServerOptions opts, Scenario s) : options(std::move(opts)), scenario(s) {
  limiter.configure(s.limits);
}

void Shared::replace_scenario(Scenario s) {
  limiter.configure(s.limits);
  scenario.replace(std::move(s));
}

std::optional<std::string> Shared::api_key() {
  auto key = scenario.api_key();
  return key ? key : options.api_key;
}

std::vector<std::string> Shared::known_models() {
  std::set<std::string> names(kDefaultModels.begin(), kDefaultModels.end());
  for (const auto& [name, b] : scenario.current().models)
    names.insert(name);
  return {names.begin(), names.end()};
}

std::string Shared::next_request_id() {
  char buf[40];
  std::snprintf(buf, sizeof buf, "mock%020llu",
                static_cast<unsigned long long>(next_id_.fetch_add(1)));
  return buf;
}

bool Shared::sleep_ms(int ms) {
  std::unique_lock lock(stop_mutex_);
  if (ms > 0) stop_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
  return !stopping_;
}

void Shared::begin_stop() {
  std::lock_guard lock(stop_mutex_);
  stopping_ = true;
  stop_cv_.notify_all();
}

Server::Server(ServerOptions options, Scenario scenario)
    : shared_(std::move(options), std::move(scenario)) {
  // Each keep-alive connection holds a worker while idle: leave room for 64 busy clients
  // plus the control calls of a test.
  http_.new_task_queue = [] { return new httplib::ThreadPool(128); };
  http_.set_keep_alive_max_count(1'000'000);
  http_.set_keep_alive_timeout(5);
  // Headers and body go out in separate writes; with Nagle on, a reply on a reused
  // connection waits ~40 ms for the client's delayed ACK.
  http_.set_tcp_nodelay(true);
  http_.set_read_timeout(30);
  http_.set_write_timeout(30);
  http_.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_json(res, 500, {{"error", {{"message", "detour-mock internal error: " + what}}}});
      });
  add_routes();
}

void Server::add_routes() {
  Shared& sh = shared_;
  auto chat = [&sh](Protocol p) {
    return [&sh, p](const httplib::Request& req, httplib::Response& res) {
      handle_chat(sh, p, req, res, {});
    };
  };
  http_.Post("/v1/chat/completions", chat(Protocol::openai));
  http_.Post("/chat/completions", chat(Protocol::openai));
  http_.Post("/v1/messages", chat(Protocol::anthropic));
  // Azure OpenAI: the deployment in the path names the model (tests/mock/README.md).
  http_.Post(R"(/openai/deployments/([^/]+)/chat/completions)",
             [&sh](const httplib::Request& req, httplib::Response& res) {
               handle_azure_chat(sh, req, res, std::string(req.matches[1]));
             });
  http_.Get("/openai/models", [&sh](const httplib::Request& req, httplib::Response& res) {
    handle_azure_listing(sh, req, res, std::nullopt);
  });
  http_.Get(R"(/openai/deployments/([^/]+))",
            [&sh](const httplib::Request& req, httplib::Response& res) {
              handle_azure_listing(sh, req, res, std::string(req.matches[1]));
            });
  http_.Post(R"(/(?:v1beta|v1)/models/([^/:]+):(generateContent|streamGenerateContent))",
             [&sh](const httplib::Request& req, httplib::Response& res) {
               GeminiTarget target{req.matches[1], req.matches[2] == "streamGenerateContent",
                                   req.get_param_value("alt") == "sse"};
               handle_chat(sh, Protocol::gemini, req, res, target);
             });

  // OpenAI and Anthropic share GET /v1/models; Anthropic clients always send anthropic-version.
  auto list_protocol = [](const httplib::Request& req) {
    return req.has_header("anthropic-version") ? Protocol::anthropic : Protocol::openai;
  };
  auto list = [&sh, list_protocol](const httplib::Request& req, httplib::Response& res) {
    handle_models(sh, list_protocol(req), req, res, std::nullopt);
  };
  http_.Get("/v1/models", list);
  http_.Get("/models", list);
  http_.Get(R"(/v1/models/(.+))",
            [&sh, list_protocol](const httplib::Request& req, httplib::Response& res) {
              handle_models(sh, list_protocol(req), req, res, std::string(req.matches[1]));
            });
  http_.Get("/v1beta/models", [&sh](const httplib::Request& req, httplib::Response& res) {
    handle_models(sh, Protocol::gemini, req, res, std::nullopt);
  });
  http_.Get(R"(/v1beta/models/([^/:]+))",
            [&sh](const httplib::Request& req, httplib::Response& res) {
              handle_models(sh, Protocol::gemini, req, res, std::string(req.matches[1]));
            });

  http_.Get("/_mock/scenario", [&sh](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, to_json(sh.scenario.current()));
  });
  http_.Post("/_mock/scenario", [&sh](const httplib::Request& req, httplib::Response& res) {
    json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
    if (body.is_discarded())
      return send_json(res, 400, {{"error", "scenario: body is not valid JSON"}});
    try {
      Scenario s = parse_scenario(body);
      sh.replace_scenario(s);
      send_json(res, 200, to_json(s));
    } catch (const std::exception& e) {
      send_json(res, 400, {{"error", e.what()}});
    }
  });
  http_.Get("/_mock/stats", [&sh](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, sh.stats.to_json());
  });
  http_.Post("/_mock/stats/reset", [&sh](const httplib::Request&, httplib::Response& res) {
    sh.stats.reset();
    send_json(res, 200, sh.stats.to_json());
  });
  http_.Get("/_mock/health", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"ok", true}});
  });

  // Last, so they match only what nothing above did: a client with a wrong base URL gets the
  // provider's JSON 404 (and shows up in the stats), not an empty body it cannot classify.
  auto no_route = [&sh](const httplib::Request& req, httplib::Response& res) {
    if (req.path.rfind("/_mock/", 0) == 0)
      return send_json(res, 404,
                       {{"error", "no such control endpoint: " + req.method + " " + req.path}});
    // Every Azure OpenAI path is under /openai/; nothing else the mock speaks uses that prefix.
    if (req.path == "/openai" || req.path.rfind("/openai/", 0) == 0)
      return handle_azure_no_route(sh, req, res);
    handle_no_route(sh, guess_protocol(req), req, res);
  };
  http_.Get(".*", no_route);
  http_.Post(".*", no_route);
  http_.Put(".*", no_route);
  http_.Patch(".*", no_route);
  http_.Delete(".*", no_route);
  http_.Options(".*", no_route);
}

int Server::bind() {
  const auto& o = shared_.options;
  port_ = o.port == 0 ? http_.bind_to_any_port(o.host)
                      : (http_.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port_ > 0) raise_backlog(port_);
  return port_;
}

bool Server::serve() {
  return port_ > 0 && http_.listen_after_bind();
}

void Server::stop() {
  shared_.begin_stop();
  http_.stop();
  // httplib's workers wait out keep-alive idles (5 s) before they notice the stop.
  shutdown_connections();
}

}  // namespace detour::mock
