#include <catch2/catch.hpp>

#include "cli/ask.hpp"
#include "core/error.hpp"

using namespace detour;

namespace {

engine::AttemptRecord attempt(const char* model, int status, engine::ErrorClass error,
                              Millis latency, Millis waited) {
  engine::AttemptRecord a;
  a.provider = "openai";
  a.model = model;
  a.status = status;
  a.error = error;
  a.latency = latency;
  a.waited = waited;
  return a;
}

}  // namespace

TEST_CASE("-o values are JSON when they parse, strings otherwise", "[ask]") {
  auto extra = cli::parse_extra_params(
      {"top_p=0.5", "seed=7", "stop=[\"x\"]", "user=alice", "logprobs=true", "note=a=b"});
  CHECK(extra["top_p"] == 0.5);
  CHECK(extra["seed"] == 7);
  CHECK(extra["stop"] == nlohmann::json::array({"x"}));
  CHECK(extra["user"] == "alice");
  CHECK(extra["logprobs"] == true);
  CHECK(extra["note"] == "a=b");
  CHECK_THROWS_AS(cli::parse_extra_params({"novalue"}), UsageError);
  CHECK_THROWS_WITH(cli::parse_extra_params({"=1"}), Catch::Contains("-o =1"));
}

TEST_CASE("-o refuses the fields detour owns, naming the flag to use", "[ask]") {
  struct Row {
    const char* param;
    const char* instead;
  };
  const Row rows[] = {
      {"model=gpt-4o", "-m"},
      {"messages=[]", "the prompt"},
      {"contents=[]", "the prompt"},
      {"system=be brief", "-s"},
      {"systemInstruction={}", "-s"},
      {"stream=true", "--stream"},
      {"stream_options={\"include_usage\":false}", "--stream"},
      {"max_tokens=10", "--max-tokens"},
      {"max_completion_tokens=10", "--max-tokens"},
      {"maxOutputTokens=10", "--max-tokens"},
      {"max_output_tokens=10", "--max-tokens"},
      // Gemini's generationConfig is merged into detour's: its token limit is detour's too.
      {"generationConfig={\"maxOutputTokens\":10,\"topK\":3}", "--max-tokens"},
  };
  for (const auto& row : rows) {
    INFO(row.param);
    CHECK_THROWS_AS(cli::parse_extra_params({row.param}), UsageError);
    CHECK_THROWS_WITH(
        cli::parse_extra_params({row.param}),
        Catch::Contains(std::string("-o ") + row.param) && Catch::Contains(row.instead));
  }
  // What detour does not own still goes through.
  auto extra = cli::parse_extra_params({"generationConfig={\"topK\":3}", "response_format={}"});
  CHECK(extra["generationConfig"]["topK"] == 3);
}

TEST_CASE("--json carries every documented field", "[ask]") {
  config::ProviderConfig provider;
  provider.name = "openai";
  provider.protocol = "openai";
  provider.base_url = "http://x/v1";
  config::Chain chain;
  chain.route = "smart";
  config::ResolvedTarget first, second;
  first.target = {"openai", "gpt-4o"};
  first.provider = &provider;
  second.target = {"openai", "gpt-4o-mini"};
  second.provider = &provider;
  chain.targets = {first, second};

  engine::CallResult ok;
  ok.ok = true;
  ok.target = chain.targets[1];
  ok.degraded = true;
  ok.reply.content = "hello";
  ok.reply.finish_reason = "stop";
  ok.reply.served_model = "gpt-4o-mini-2024-07-18";
  ok.reply.usage = {12, 34, std::nullopt};
  ok.cost_usd = 0.000022;
  ok.latency = Millis(812);
  ok.attempts = {attempt("gpt-4o", 429, engine::ErrorClass::rate_limited, Millis(120), Millis(0)),
                 attempt("gpt-4o-mini", 200, engine::ErrorClass::none, Millis(690), Millis(0))};
  auto j = cli::result_to_json(ok, chain);
  CHECK(j["ok"] == true);
  CHECK(j["content"] == "hello");
  CHECK(j["provider"] == "openai");
  CHECK(j["model"] == "gpt-4o-mini");
  CHECK(j["served_model"] == "gpt-4o-mini-2024-07-18");
  CHECK(j["route"] == "smart");
  CHECK(j["degraded"] == true);
  CHECK(j["finish_reason"] == "stop");
  CHECK(j["usage"]["input_tokens"] == 12);
  CHECK(j["usage"]["output_tokens"] == 34);
  CHECK(j["cost_usd"] == Approx(0.000022));
  CHECK(j["latency_ms"] == 812);
  REQUIRE(j["attempts"].size() == 2);
  CHECK(j["attempts"][0] == nlohmann::ordered_json{{"provider", "openai"},
                                                   {"model", "gpt-4o"},
                                                   {"status", 429},
                                                   {"error", "rate_limited"},
                                                   {"latency_ms", 120},
                                                   {"waited_ms", 0}});
  CHECK(j["attempts"][1]["error"].is_null());

  engine::CallResult failed;
  failed.error = engine::ErrorClass::overloaded;
  failed.status = 503;
  failed.message = "openai/gpt-4o: busy";
  failed.attempts = {ok.attempts[0]};
  chain.route.reset();
  auto f = cli::result_to_json(failed, chain);
  CHECK(f["ok"] == false);
  CHECK(f["error"] == nlohmann::ordered_json{{"class", "overloaded"},
                                             {"status", 503},
                                             {"message", "openai/gpt-4o: busy"}});
  CHECK(f["route"].is_null());
  CHECK(f["attempts"].size() == 1);
  CHECK_FALSE(f.contains("content"));
}

// A failed chain's error line names what every target tried before the last one failed with, so
// a user sees that the primary was down without rerunning with -v.
TEST_CASE("ask: the error line of a failed chain names what the earlier targets failed with",
          "[ask]") {
  using engine::ErrorClass;
  const auto at = [](const char* provider, const char* model, std::optional<int> status,
                     ErrorClass error) {
    engine::AttemptRecord a;
    a.provider = provider;
    a.model = model;
    a.status = status;
    a.error = error;
    return a;
  };
  struct Row {
    std::vector<engine::AttemptRecord> attempts;
    std::string expected;
  };
  const std::vector<Row> rows = {
      {{}, "overloaded: an/claude: busy"},
      {{at("an", "claude", 529, ErrorClass::overloaded)}, "overloaded: an/claude: busy"},
      // Retries of the last target are not "before it".
      {{at("an", "claude", 529, ErrorClass::overloaded),
        at("an", "claude", 529, ErrorClass::overloaded)},
       "overloaded: an/claude: busy"},
      {{at("oa", "gpt", std::nullopt, ErrorClass::connection),
        at("an", "claude", 529, ErrorClass::overloaded)},
       "overloaded: an/claude: busy; before it: oa/gpt connection"},
      // Each earlier target once, in the order tried, with its latest failure.
      {{at("oa", "gpt", 503, ErrorClass::overloaded),
        at("gm", "flash", 429, ErrorClass::rate_limited),
        at("oa", "gpt", std::nullopt, ErrorClass::timeout),
        at("an", "claude", 529, ErrorClass::overloaded)},
       "overloaded: an/claude: busy; before it: oa/gpt timeout, gm/flash rate_limited (429)"},
      {{at("oa", "gpt", std::nullopt, ErrorClass::skipped_open),
        at("an", "claude", 529, ErrorClass::overloaded)},
       "overloaded: an/claude: busy; before it: oa/gpt skipped_open"},
  };
  for (const auto& row : rows) {
    engine::CallResult result;
    result.error = ErrorClass::overloaded;
    result.message = "an/claude: busy";
    result.attempts = row.attempts;
    CHECK(cli::failure_text(result) == row.expected);
  }
}
