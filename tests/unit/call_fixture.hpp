#pragma once
// A chain of fake OpenAI-protocol targets, the engine's shared state in memory, and helpers to
// script replies: what every Call test starts from.
#include <catch2/catch.hpp>

#include "engine/call.hpp"
#include "fakes.hpp"
#include "state/store.hpp"

namespace detour::testing::call {

struct Recorder : engine::CallObserver {
  std::string text;
  std::vector<std::string> decisions;  // per attempt
  std::vector<std::string> notes;      // on_decision
  void on_text(std::string_view t) override { text += t; }
  void on_attempt_end(const engine::AttemptRecord&, std::string_view decision) override {
    decisions.emplace_back(decision);
  }
  void on_decision(std::string_view what) override { notes.emplace_back(what); }
};

struct Fixture {
  config::ProviderConfig provider = [] {
    config::ProviderConfig p;
    p.name = "mock";
    p.protocol = "openai";
    p.base_url = "http://mock/v1";
    p.api_key_env = "MOCK_KEY";
    return p;
  }();
  config::Chain chain;
  std::unique_ptr<state::Store> store = state::make_memory_store();
  std::unique_ptr<engine::SharedState> state;
  std::mt19937_64 rng{42};

  explicit Fixture(std::vector<std::string> models, std::vector<int> tiers = {},
                   engine::BreakerConfig breaker = {}) {
    state = std::make_unique<engine::SharedState>(*store, breaker);
    for (size_t i = 0; i < models.size(); ++i) {
      config::ResolvedTarget t;
      t.target = {"mock", models[i]};
      t.provider = &provider;
      t.api_key = "sk-secret-key-123456";
      if (i < tiers.size()) t.model.tier = tiers[i];
      t.model.input_cost = 1.0;
      t.model.output_cost = 2.0;
      chain.targets.push_back(t);
    }
  }

  // Retries are off unless a test turns them on, so failover tests see one attempt per target.
  engine::CallSpec spec(bool stream = false) {
    engine::CallSpec s;
    s.request.messages = {{"user", "hi"}};
    s.chain = chain;
    s.stream = stream;
    s.timeout = Millis(1000);
    s.deadline = Millis(5000);
    s.retries = 0;
    return s;
  }

  engine::CallResult run(FakeTransport& transport, FakeClock& clock, engine::CallSpec spec,
                         engine::CallObserver& observer) {
    auto result = engine::run_call({transport, clock, *state, rng}, std::move(spec), observer);
    state->flush();  // as `ask` does once it has printed
    return result;
  }
};

inline std::string model_of(const net::HttpRequest& request) {
  return nlohmann::json::parse(request.body).at("model").get<std::string>();
}

inline FakeReply ok_reply(const std::string& content, std::string finish_reason = "stop") {
  nlohmann::json body = {
      {"id", "chatcmpl-1"},
      {"object", "chat.completion"},
      {"model", "m"},
      {"choices",
       {{{"index", 0},
         {"message", {{"role", "assistant"}, {"content", content}}},
         {"finish_reason", finish_reason}}}},
      {"usage", {{"prompt_tokens", 1000}, {"completion_tokens", 500}, {"total_tokens", 1500}}}};
  return FakeReply{net::TransportStatus::ok, 200, {}, {body.dump()}, Millis(20)};
}

inline FakeReply error_reply(int status, const std::string& type, const std::string& code,
                             const std::string& message, net::Headers headers = {}) {
  nlohmann::json body = {
      {"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", code}}}};
  return FakeReply{net::TransportStatus::ok, status, std::move(headers), {body.dump()}, Millis(5)};
}

inline FakeReply refused() {
  return FakeReply{net::TransportStatus::connect_failed, 0, {}, {}, Millis(1)};
}

// A streamed OpenAI reply whose text arrives in one chunk at `first` and ends at `end`.
inline FakeReply stream_reply(const std::string& text, Millis first, Millis end) {
  FakeReply r{net::TransportStatus::ok,
              200,
              {},
              {"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + text +
                   "\"},\"finish_reason\":\"stop\"}]}\n\n",
               "data: [DONE]\n\n"},
              end};
  r.first_chunk_at = first;
  return r;
}

}  // namespace detour::testing::call
