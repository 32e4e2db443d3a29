#pragma once
// For test_secrets.cpp: a provider that echoes the API key it was sent back in every kind of
// reply detour reports (error bodies, HTML pages, replies cut where detour cuts its quotes,
// mid-stream errors), in each protocol's shape, and records the keys it saw.
#include <map>
#include <mutex>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "transport_test_server.hpp"

namespace detour::testing::secrets {

using nlohmann::json;
using transport::TestServer;

enum class Proto { openai, anthropic, gemini };

// What each echo model does; every reply quotes the key the request carried.
//   echo-auth         401 "Incorrect API key provided: KEY" (403 for Gemini)
//   echo-server       500 with the key in the message
//   echo-bad-request  400 with the key in the message (detour adds an excerpt of the body)
//   echo-cut-400      400 whose body has the key right where that 300-byte excerpt ends
//   echo-html         502 HTML page quoting the key
//   echo-cut-html     502 HTML with the key where detour's 200-byte snippet of it ends
//   echo-in-200       200 whose body is an error object quoting the key
//   echo-not-json     200 plain text quoting the key
//   echo-stream       (streamed) the protocol's mid-stream error, quoting the key
//   echo-stream-junk  (streamed) a line that is not JSON, quoting the key
//   echo-stream-cut   (streamed) the same, the key where detour's 80-byte snippet of it ends
//   model listings    401 quoting the key
const char* const kEchoChat[] = {"echo-auth", "echo-server",   "echo-bad-request", "echo-cut-400",
                                 "echo-html", "echo-cut-html", "echo-in-200",      "echo-not-json"};
const char* const kEchoStopping[] = {"echo-bad-request", "echo-cut-400"};
const char* const kEchoStream[] = {"echo-stream", "echo-stream-junk", "echo-stream-cut"};

// How much of a key stands before the place where detour cuts a text short, in the echo-cut
// replies: more than the 12-byte piece test_secrets.cpp searches for, so a key cut there is a
// leak the search sees.
constexpr std::size_t kBeforeCut = 20;

inline std::string error_json(Proto p, int status, const std::string& type,
                              const std::string& message, const std::string& extra = "") {
  json body;
  if (p == Proto::openai) {
    body = {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", type}}}};
    if (!extra.empty()) body["error"]["param"] = extra;
  } else if (p == Proto::anthropic) {
    body = {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
    if (!extra.empty()) body["request_id"] = extra;
  } else {
    body = {{"error", {{"code", status}, {"message", message}, {"status", type}}}};
    if (!extra.empty()) body["error"]["details"] = json::array({{{"reason", extra}}});
  }
  return body.dump();
}

// The body `make(filler)`, with filler long enough that `key` starts `before_cut` bytes before
// offset `cut` of it.
template <typename Make>
std::string with_key_at(const std::string& key, std::size_t cut, std::size_t before_cut,
                        Make make) {
  const std::string probe = make("");
  const std::size_t at = probe.find(key);
  const std::size_t want = cut - before_cut;
  return make(std::string(want > at ? want - at : 0, 'x'));
}

class EchoServer {
 public:
  EchoServer() {
    server_->Post(R"(/v1/chat/completions)", [this](const auto& req, auto& res) {
      const json body = json::parse(req.body, nullptr, false);
      reply(Proto::openai, key_of(req, Proto::openai), model_of(body),
            body.is_object() && body.value("stream", false), res);
    });
    server_->Post(R"(/v1/messages)", [this](const auto& req, auto& res) {
      const json body = json::parse(req.body, nullptr, false);
      reply(Proto::anthropic, key_of(req, Proto::anthropic), model_of(body),
            body.is_object() && body.value("stream", false), res);
    });
    server_->Post(R"(/v1beta/models/([^:]+):(\w+))", [this](const auto& req, auto& res) {
      reply(Proto::gemini, key_of(req, Proto::gemini), req.matches[1],
            req.matches[2] == "streamGenerateContent", res);
    });
    auto listing = [this](const httplib::Request& req, httplib::Response& res, Proto p) {
      const std::string key = key_of(req, p);
      res.status = 401;
      res.set_content(error_json(p, 401, p == Proto::gemini ? "UNAUTHENTICATED" : "invalid_api_key",
                                 "Incorrect API key provided: " + key + "."),
                      "application/json");
      count_echo(p);
    };
    server_->Get("/v1/models", [listing](const auto& req, auto& res) {
      listing(req, res, req.has_header("anthropic-version") ? Proto::anthropic : Proto::openai);
    });
    server_->Get("/v1beta/models",
                 [listing](const auto& req, auto& res) { listing(req, res, Proto::gemini); });
    server_.start();
  }

  std::string url(const std::string& path = "") const { return server_.url(path); }

  // The keys each protocol's requests carried, and how many replies quoted one.
  std::set<std::string> keys_seen(Proto p) {
    std::lock_guard lock(mutex_);
    return keys_[p];
  }
  int echoes(Proto p) {
    std::lock_guard lock(mutex_);
    return echoes_[p];
  }
  std::set<std::string> models_seen() {
    std::lock_guard lock(mutex_);
    return models_;
  }

 private:
  static std::string model_of(const json& body) {
    return body.is_object() ? body.value("model", "") : "";
  }

  std::string key_of(const httplib::Request& req, Proto p) {
    std::string key;
    if (p == Proto::openai) {
      key = req.get_header_value("Authorization");
      if (key.rfind("Bearer ", 0) == 0) key = key.substr(7);
    } else {
      key = req.get_header_value(p == Proto::anthropic ? "x-api-key" : "x-goog-api-key");
    }
    std::lock_guard lock(mutex_);
    keys_[p].insert(key);
    return key;
  }

  void count_echo(Proto p) {
    std::lock_guard lock(mutex_);
    ++echoes_[p];
  }

  void reply(Proto p, const std::string& key, const std::string& model, bool stream,
             httplib::Response& res) {
    {
      std::lock_guard lock(mutex_);
      models_.insert(model);
    }
    count_echo(p);
    const char* const bad = p == Proto::openai      ? "invalid_request_error"
                            : p == Proto::anthropic ? "invalid_request_error"
                                                    : "INVALID_ARGUMENT";
    auto json_reply = [&](int status, const std::string& body) {
      res.status = status;
      res.set_content(body, "application/json");
    };
    if (model == "echo-auth") {
      const int status = p == Proto::gemini ? 403 : 401;
      const char* type = p == Proto::openai      ? "invalid_api_key"
                         : p == Proto::anthropic ? "authentication_error"
                                                 : "PERMISSION_DENIED";
      json_reply(status, error_json(p, status, type, "Incorrect API key provided: " + key + "."));
    } else if (model == "echo-server") {
      json_reply(500, error_json(p, 500, p == Proto::gemini ? "INTERNAL" : "api_error",
                                 "Internal error while checking key " + key));
    } else if (model == "echo-bad-request") {
      json_reply(400, error_json(p, 400, bad, "Invalid header value: " + key));
    } else if (model == "echo-cut-400") {
      // A short message, and the key in another field of the body, cut by the excerpt.
      json_reply(400, with_key_at(key, 300, kBeforeCut, [&](const std::string& filler) {
                   return error_json(p, 400, bad, "Invalid header value", filler + key);
                 }));
    } else if (model == "echo-html") {
      res.status = 502;
      res.set_content(
          "<html><body><h1>502 Bad Gateway</h1>upstream rejected key " + key + "</body></html>",
          "text/html");
    } else if (model == "echo-cut-html") {
      res.status = 502;
      res.set_content(with_key_at(key, 200, kBeforeCut,
                                  [&](const std::string& filler) {
                                    return "<html><body><h1>502 Bad Gateway</h1>" + filler +
                                           " key " + key + "</body></html>";
                                  }),
                      "text/html");
    } else if (model == "echo-in-200") {
      json_reply(200, error_json(p, 500, p == Proto::gemini ? "INTERNAL" : "server_error",
                                 "upstream refused key " + key));
    } else if (model == "echo-not-json") {
      res.status = 200;
      res.set_content("upstream refused key " + key, "text/plain");
    } else if (model == "echo-stream" && stream) {
      std::string event;
      if (p == Proto::openai) {
        event =
            "data: " + error_json(p, 500, "server_error", "stream failed for key " + key) + "\n\n";
      } else if (p == Proto::anthropic) {
        event = "event: error\ndata: " +
                error_json(p, 500, "api_error", "stream failed for key " + key) + "\n\n";
      } else {
        event = error_json(p, 500, "INTERNAL", "stream failed for key " + key) + "\n";
      }
      res.set_content(event, "text/event-stream");
    } else if (model == "echo-stream-junk" && stream) {
      res.set_content(p == Proto::gemini ? "upstream refused key " + key + "\n"
                                         : "data: upstream refused key " + key + "\n\n",
                      "text/event-stream");
    } else if (model == "echo-stream-cut" && stream) {
      const std::string line = with_key_at(key, 80, kBeforeCut, [&](const std::string& filler) {
        return "upstream " + filler + " refused key " + key;
      });
      res.set_content(p == Proto::gemini ? line + "\n" : "data: " + line + "\n\n",
                      "text/event-stream");
    } else {
      json_reply(404, error_json(p, 404, "not_found", "no such echo model: " + model));
    }
  }

  TestServer server_;
  std::mutex mutex_;
  std::map<Proto, std::set<std::string>> keys_;
  std::map<Proto, int> echoes_;
  std::set<std::string> models_;
};

}  // namespace detour::testing::secrets
