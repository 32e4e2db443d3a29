#pragma once
// Small HTTP helpers for the detour-mock tests: request bodies per protocol, calls, and SSE
// parsing. Header-only; used by test_mock*.cpp.
#include <httplib.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness.hpp"

namespace detour::testing::mock_util {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

inline long long elapsed_ms(Clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
}

inline httplib::Client client(const MockServer& mock) {
  httplib::Client c("127.0.0.1", mock.port());
  c.set_read_timeout(10);
  return c;
}

inline json openai_body(const std::string& prompt, json extra = json::object()) {
  json b = {{"model", "gpt-4o-mini"}, {"messages", {{{"role", "user"}, {"content", prompt}}}}};
  b.update(extra);
  return b;
}

inline json anthropic_body(const std::string& prompt, json extra = json::object()) {
  json b = {{"model", "claude-sonnet-4-5"},
            {"max_tokens", 100},
            {"messages", {{{"role", "user"}, {"content", prompt}}}}};
  b.update(extra);
  return b;
}

inline json gemini_body(const std::string& prompt, json extra = json::object()) {
  json b = {{"contents", {{{"role", "user"}, {"parts", {{{"text", prompt}}}}}}}};
  b.update(extra);
  return b;
}

inline httplib::Result openai(MockServer& m, const json& body, httplib::Headers h = {}) {
  return client(m).Post("/v1/chat/completions", h, body.dump(), "application/json");
}

inline httplib::Result anthropic(MockServer& m, const json& body, httplib::Headers h = {}) {
  h.emplace("anthropic-version", "2023-06-01");
  return client(m).Post("/v1/messages", h, body.dump(), "application/json");
}

inline httplib::Result gemini(MockServer& m, const json& body, bool stream = false,
                              const std::string& model = "gemini-2.0-flash",
                              httplib::Headers h = {}) {
  std::string path =
      "/v1beta/models/" + model + (stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
  return client(m).Post(path, h, body.dump(), "application/json");
}

// The JSON payloads of the "data:" lines of an SSE body ("[DONE]" kept as a string).
inline std::vector<json> sse_data(const std::string& body) {
  std::vector<json> out;
  std::size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    std::size_t end = body.find_first_of("\r\n", pos);
    std::string payload = body.substr(pos + 6, end - pos - 6);
    out.push_back(payload == "[DONE]" ? json("[DONE]") : json::parse(payload));
    pos = end;
  }
  return out;
}

inline std::vector<std::string> sse_event_names(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = body.find("event: ", pos)) != std::string::npos) {
    std::size_t end = body.find('\n', pos);
    out.push_back(body.substr(pos + 7, end - pos - 7));
    pos = end;
  }
  return out;
}

inline std::string openai_stream_text(const std::vector<json>& chunks) {
  std::string text;
  for (const auto& c : chunks)
    if (c.is_object() && !c["choices"].empty() && c["choices"][0]["delta"].contains("content"))
      text += c["choices"][0]["delta"]["content"].get<std::string>();
  return text;
}

inline json body_json(const httplib::Result& r) {
  return json::parse(r->body);
}

// Stats once every reply is fully written: a request leaves in_flight a moment after the
// client has read its last byte.
inline json settled_stats(MockServer& mock) {
  auto end = Clock::now() + std::chrono::seconds(2);
  json s = mock.stats();
  while (s["in_flight"] != 0 && Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    s = mock.stats();
  }
  return s;
}

}  // namespace detour::testing::mock_util
