// detour-mock limits, auth, stats and control: enforced RPM/TPM with each provider's headers,
// API key checks, /_mock/stats counting, scenario replacement, and 64 concurrent clients.
#include <catch2/catch.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "test_mock_util.hpp"

using namespace detour::testing;
using namespace detour::testing::mock_util;
using nlohmann::json;

namespace {

const std::regex kGoDuration(R"(^(\d+h)?(\d+m)?\d+(\.\d+)?s$|^\d+ms$)");
const std::regex kRfc3339(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$)");
const std::regex kInteger(R"(^\d+$)");

}  // namespace

TEST_CASE("RPM is enforced with a one-second burst and 429 + retry-after", "[mock]") {
  MockServer mock({{"limits", {{"rpm", 60}, {"burst", 2}}}});
  CHECK(openai(mock, openai_body("1"))->status == 200);
  CHECK(openai(mock, openai_body("2"))->status == 200);
  auto r = openai(mock, openai_body("3"));
  REQUIRE(r->status == 429);
  CHECK(r->get_header_value("retry-after") == "1");
  int ms = std::stoi(r->get_header_value("retry-after-ms"));
  CHECK(ms > 0);
  CHECK(ms <= 1000);
  CHECK(body_json(r)["error"]["type"] == "requests");
  CHECK(body_json(r)["error"]["code"] == "rate_limit_exceeded");
  CHECK(r->get_header_value("x-ratelimit-remaining-requests") == "0");

  mock.set_scenario({{"limits", {{"rpm", 60}}}});  // default burst: one request per second
  CHECK(anthropic(mock, anthropic_body("1"))->status == 200);
  auto a = anthropic(mock, anthropic_body("2"));
  CHECK(a->status == 429);
  CHECK(body_json(a)["error"]["type"] == "rate_limit_error");
  CHECK(a->get_header_value("retry-after") == "1");
  auto g = gemini(mock, gemini_body("3"));
  CHECK(g->status == 429);
  CHECK(body_json(g)["error"]["status"] == "RESOURCE_EXHAUSTED");
  CHECK(mock.stats()["rate_limited"] == 3);

  // The bucket refills at the sustained rate: wait what the mock said, and it admits again.
  mock.set_scenario({{"limits", {{"rpm", 600}, {"burst", 1}}}});
  CHECK(openai(mock, openai_body("1"))->status == 200);
  auto again = openai(mock, openai_body("2"));
  REQUIRE(again->status == 429);
  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::stoi(again->get_header_value("retry-after-ms")) + 5));
  CHECK(openai(mock, openai_body("3"))->status == 200);
}

TEST_CASE("TPM counts input estimate plus max tokens", "[mock]") {
  MockServer mock({{"limits", {{"tpm", 6000}}}});  // a 100-token burst
  CHECK(openai(mock, openai_body("x", {{"max_tokens", 90}}))->status == 200);
  auto r = openai(mock, openai_body("x", {{"max_tokens", 90}}));
  REQUIRE(r->status == 429);
  CHECK(body_json(r)["error"]["type"] == "tokens");
  CHECK(r->has_header("retry-after"));
  // A request above the whole per-minute limit can never pass: "Request too large".
  auto big = openai(mock, openai_body("x", {{"max_tokens", 7000}}));
  CHECK(big->status == 429);
  CHECK(body_json(big)["error"]["message"].get<std::string>().rfind("Request too large", 0) == 0);
  CHECK_FALSE(big->has_header("retry-after"));
}

TEST_CASE("rate-limit headers in each provider's real format", "[mock]") {
  MockServer mock({{"limits", {{"rpm", 60}, {"tpm", 60000}, {"burst", 5}}}});
  auto o = openai(mock, openai_body("x", {{"max_tokens", 10}}));
  REQUIRE(o->status == 200);
  CHECK(o->get_header_value("x-ratelimit-limit-requests") == "60");
  CHECK(o->get_header_value("x-ratelimit-remaining-requests") == "4");
  CHECK(o->get_header_value("x-ratelimit-limit-tokens") == "60000");
  CHECK(std::regex_match(o->get_header_value("x-ratelimit-remaining-tokens"), kInteger));
  CHECK(std::regex_match(o->get_header_value("x-ratelimit-reset-requests"), kGoDuration));
  CHECK(std::regex_match(o->get_header_value("x-ratelimit-reset-tokens"), kGoDuration));
  INFO("reset-requests " << o->get_header_value("x-ratelimit-reset-requests"));
  auto a = anthropic(mock, anthropic_body("x"));
  REQUIRE(a->status == 200);
  CHECK(a->get_header_value("anthropic-ratelimit-requests-limit") == "60");
  CHECK(a->get_header_value("anthropic-ratelimit-requests-remaining") == "3");
  CHECK(std::regex_match(a->get_header_value("anthropic-ratelimit-requests-reset"), kRfc3339));
  CHECK(a->get_header_value("anthropic-ratelimit-tokens-limit") == "60000");
  CHECK(std::regex_match(a->get_header_value("anthropic-ratelimit-tokens-reset"), kRfc3339));
  CHECK_FALSE(a->has_header("x-ratelimit-limit-requests"));
  auto g = gemini(mock, gemini_body("x"));
  CHECK_FALSE(g->has_header("x-ratelimit-limit-requests"));
  CHECK_FALSE(g->has_header("anthropic-ratelimit-requests-limit"));

  mock.set_scenario(json::object());  // unlimited: no limit headers at all
  CHECK_FALSE(openai(mock, openai_body("x"))->has_header("x-ratelimit-limit-requests"));
}

TEST_CASE("API key checks answer each provider's auth error", "[mock]") {
  MockServer mock(json::object(), {"--api-key", "sekrit"});
  auto none = openai(mock, openai_body("x"));
  CHECK(none->status == 401);
  auto wrong = openai(mock, openai_body("x"), {{"Authorization", "Bearer nope"}});
  CHECK(wrong->status == 401);
  CHECK(body_json(wrong)["error"]["code"] == "invalid_api_key");
  CHECK(openai(mock, openai_body("x"), {{"Authorization", "Bearer sekrit"}})->status == 200);
  auto a = anthropic(mock, anthropic_body("x"), {{"x-api-key", "nope"}});
  CHECK(a->status == 401);
  CHECK(body_json(a)["error"]["type"] == "authentication_error");
  CHECK(anthropic(mock, anthropic_body("x"), {{"x-api-key", "sekrit"}})->status == 200);
  auto g = gemini(mock, gemini_body("x"), false, "gemini-2.0-flash", {{"x-goog-api-key", "nope"}});
  CHECK(g->status == 400);
  CHECK(body_json(g)["error"]["details"][0]["reason"] == "API_KEY_INVALID");
  CHECK(gemini(mock, gemini_body("x"), false, "gemini-2.0-flash", {{"x-goog-api-key", "sekrit"}})
            ->status == 200);
  CHECK(client(mock)
            .Post("/v1beta/models/g:generateContent?key=sekrit", gemini_body("x").dump(),
                  "application/json")
            ->status == 200);
  CHECK(client(mock).Get("/v1/models", {{"Authorization", "Bearer nope"}})->status == 401);
  CHECK(client(mock).Get("/v1/models", {{"Authorization", "Bearer sekrit"}})->status == 200);

  auto stats = mock.stats();
  CHECK(stats.dump().find("sekrit") == std::string::npos);  // presence only, never the key
  CHECK(stats["received"][0]["auth"].is_null());
  CHECK(stats["received"][1]["auth"] == "bearer");
  CHECK(stats["received"][3]["auth"] == "x-api-key");

  mock.set_scenario({{"api_key", "other"}});  // the scenario's key wins over --api-key
  CHECK(openai(mock, openai_body("x"), {{"Authorization", "Bearer sekrit"}})->status == 401);
  CHECK(openai(mock, openai_body("x"), {{"Authorization", "Bearer other"}})->status == 200);
}

TEST_CASE("/_mock/stats counts what was received; reset zeros it", "[mock]") {
  MockServer mock({{"models", {{"bad", {{"fault", "server_error"}, {"times", 1}}}}}});
  openai(mock, openai_body("first prompt", {{"max_tokens", 50}}));
  openai(mock, openai_body("x", {{"model", "bad"}}));
  anthropic(mock, anthropic_body("s", {{"stream", true}}));
  gemini(mock, gemini_body("g"));
  client(mock).Get("/v1/models");
  auto s = settled_stats(mock);
  CHECK(s["requests"] == 5);
  CHECK(s["by_status"]["200"] == 4);
  CHECK(s["by_status"]["500"] == 1);
  CHECK(s["by_model"]["gpt-4o-mini"] == 1);
  CHECK(s["by_model"]["bad"] == 1);
  CHECK(s["by_model"]["gemini-2.0-flash"] == 1);
  CHECK(s["by_path"]["/v1/chat/completions"] == 2);
  CHECK(s["by_path"]["/v1/messages"] == 1);
  CHECK(s["by_path"]["/v1/models"] == 1);
  CHECK(s["faults"] == 1);
  CHECK(s["rate_limited"] == 0);
  CHECK(s["in_flight"] == 0);
  REQUIRE(s["received"].size() == 5);
  const auto& first = s["received"][0];
  CHECK(first["path"] == "/v1/chat/completions");
  CHECK(first["model"] == "gpt-4o-mini");
  CHECK(first["prompt"] == "first prompt");
  CHECK(first["stream"] == false);
  CHECK(first["status"] == 200);
  CHECK(first["max_tokens"] == 50);
  CHECK(first["t_ms"].is_number());
  CHECK(s["received"][1]["fault"] == "server_error");
  CHECK(s["received"][2]["stream"] == true);
  mock.reset_stats();
  auto z = mock.stats();
  CHECK(z["requests"] == 0);
  CHECK(z["received"].empty());
  CHECK(z["by_status"].empty());
}

TEST_CASE("scenario: loaded from file, replaced wholesale, validated", "[mock]") {
  MockServer mock({{"default", {{"latency_ms", 1}}}, {"models", {{"m1", {{"fault", "empty"}}}}}});
  auto s = mock.scenario();
  CHECK(s["default"]["latency_ms"] == 1);
  CHECK(s["models"]["m1"]["fault"] == "empty");
  CHECK(s["limits"]["rpm"] == 0);
  mock.set_scenario({{"models", {{"m2", {{"fault", "refusal"}}}}}});
  s = mock.scenario();
  CHECK_FALSE(s["models"].contains("m1"));
  CHECK(s["default"]["latency_ms"] == 0);
  mock.set_scenario(s);  // what GET returns is accepted back
  CHECK(mock.scenario() == s);

  CHECK_THROWS_WITH(mock.set_scenario({{"default", {{"latncy_ms", 5}}}}),
                    Catch::Contains("scenario.default.latncy_ms"));
  CHECK_THROWS_WITH(mock.set_scenario({{"default", {{"fault", "explode"}}}}),
                    Catch::Contains("rate_limit"));
  CHECK_THROWS(mock.set_scenario({{"default", {{"fault", "status"}, {"status", 99}}}}));
  CHECK_THROWS(mock.set_scenario({{"limits", {{"rpm", -1}}}}));
  auto bad = client(mock).Post("/_mock/scenario", "{not json", "application/json");
  CHECK(bad->status == 400);
  CHECK(mock.scenario()["models"].contains("m2"));  // a rejected scenario changes nothing
}

TEST_CASE("64 concurrent streaming clients are served in parallel", "[mock]") {
  MockServer mock({{"default", {{"ttft_ms", 300}, {"token_delay_ms", 5}}}});
  constexpr int kClients = 64;
  std::vector<std::string> replies(kClients);
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      auto r = openai(mock, openai_body("prompt " + std::to_string(i), {{"stream", true}}));
      if (r && r->status == 200) replies[i] = openai_stream_text(sse_data(r->body));
    });
  }
  for (auto& t : threads)
    t.join();
  auto took = elapsed_ms(start);
  for (int i = 0; i < kClients; ++i)
    CHECK(replies[i] == "mock reply to: prompt " + std::to_string(i));
  CHECK(took < 10000);  // serially it would be 64 * 0.3 s
  auto s = settled_stats(mock);
  CHECK(s["max_in_flight"] >= kClients / 2);
  CHECK(s["in_flight"] == 0);
}
