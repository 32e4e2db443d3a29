// Requests a provider rejects, end to end: a content filter stops the call with exit 4 on
// every protocol unless the route says `on_content_filter = "next"`, and --truncate shrinks a
// prompt too long for the chain's smallest context window instead of failing, and says so.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness.hpp"
#include "resilience_util.hpp"

using detour::testing::resilience::count_lines;
using detour::testing::resilience::Env;
using detour::testing::resilience::parse_json;
using detour::testing::resilience::providers_toml;
using nlohmann::json;

namespace {

// Env's providers plus a Gemini one, `ge`, on the same mock.
void add_gemini(Env& env, const std::string& extra_toml = "") {
  env.config = env.dir.write("config.toml", providers_toml(env.mock) +
                                                "[providers.ge]\nprotocol = \"gemini\"\n"
                                                "base_url = \"" +
                                                env.mock.url() +
                                                "\"\napi_key_env = \"TEST_KEY\"\n\n" + extra_toml);
}

// The filtered target of `provider` (oa, an, ge) stops the call with exit 4 and the class
// content_filter, without a retry and without trying the next target; a route that says
// on_content_filter = "next" moves on to the next target instead.
void check_content_filter(const std::string& provider) {
  Env env(json{{"models", {{"filtered", {{"fault", "content_filter"}}}}}});
  const std::string target = provider + "/filtered";
  add_gemini(env, "[routes.lenient]\ntargets = [\"" + target +
                      "\", \"an/clean\"]\non_content_filter = \"next\"\n");
  auto r = env.ask({"--json", "--retries", "2", "-m", target, "-m", "oa/clean", "hi"});
  INFO(r.err);
  CHECK(r.exit_code == 4);
  auto j = parse_json(r);
  CHECK(j["ok"] == false);
  CHECK(j["error"]["class"] == "content_filter");
  REQUIRE(j["attempts"].size() == 1);
  CHECK(j["attempts"][0]["error"] == "content_filter");
  CHECK(env.requests("filtered") == 1);  // never retried
  CHECK(env.requests("clean") == 0);     // and the chain stops

  // Without --json: the error on stderr, nothing on stdout, the same exit code.
  r = env.ask({"-m", target, "hi"});
  CHECK(r.exit_code == 4);
  CHECK(r.out.empty());
  CHECK(count_lines(r.err, "detour: error: content_filter") == 1);

  env.mock.reset_stats();
  auto lenient = env.ask({"-v", "--json", "-m", "lenient", "hi"});
  INFO(lenient.err);
  REQUIRE(lenient.exit_code == 0);
  j = parse_json(lenient);
  CHECK(j["model"] == "clean");
  CHECK(j["route"] == "lenient");
  CHECK(j["content"] == "mock reply to: hi");
  REQUIRE(j["attempts"].size() == 2);
  CHECK(j["attempts"][0]["model"] == "filtered");
  CHECK(j["attempts"][0]["error"] == "content_filter");
  CHECK(env.requests("filtered") == 1);
  CHECK(env.requests("clean") == 1);
  CHECK(count_lines(lenient.err, "attempt 1: " + target + ": ") == 1);
  CHECK(count_lines(lenient.err, " content_filter (") == 1);
}

}  // namespace

TEST_CASE("rejection e2e: a content filter stops the chain with exit 4 (OpenAI)", "[rejection]") {
  check_content_filter("oa");
}

// Anthropic reports its filter as a 400 invalid_request_error "Output blocked by content
// filtering policy": only the words make it content_filter.
TEST_CASE("rejection e2e: a content filter stops the chain with exit 4 (Anthropic)",
          "[rejection]") {
  check_content_filter("an");
}

// Gemini blocks a prompt with a 200: promptFeedback.blockReason and no candidates.
TEST_CASE("rejection e2e: a content filter stops the chain with exit 4 (Gemini)", "[rejection]") {
  check_content_filter("ge");
}

TEST_CASE("rejection e2e: without on_content_filter a route stops at a content filter",
          "[rejection]") {
  Env env(json{{"models", {{"filtered", {{"fault", "content_filter"}}}}}},
          "[routes.strict]\ntargets = [\"oa/filtered\", \"an/clean\"]\n");
  auto strict = env.ask({"--json", "-m", "strict", "hi"});
  CHECK(strict.exit_code == 4);
  CHECK(parse_json(strict)["error"]["class"] == "content_filter");
  CHECK(env.requests("clean") == 0);
}

TEST_CASE("rejection e2e: --truncate cuts the prompt to the smallest window and warns",
          "[rejection]") {
  // Both the mock and the config say `small` takes 200 tokens; the prompt is about 600.
  Env env(json{{"models", {{"small", {{"context_window", 200}}}}}},
          "[models.\"oa/small\"]\ncontext_window = 200\n");
  std::string prompt;
  for (int i = 1; i <= 400; ++i) {
    const std::string n = std::to_string(i);
    prompt += "w" + std::string(4 - n.size(), '0') + n + (i < 400 ? " " : "");
  }

  auto refused = env.ask({"--json", "-m", "oa/small", prompt});
  CHECK(refused.exit_code == 4);
  CHECK(parse_json(refused)["error"]["class"] == "context_length");

  env.mock.reset_stats();
  auto r = env.ask({"--truncate", "-m", "oa/small", prompt});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(count_lines(r.err,
                    "detour: warning: --truncate: dropped 0 oldest message(s) and the "
                    "start of the prompt to fit the smallest context window") == 1);
  CHECK(count_lines(r.err, "detour: ") == 1);
  const json stats = env.mock.stats();
  REQUIRE(stats["received"].size() == 1);
  const std::string sent = stats["received"][0]["prompt"];
  CHECK(sent.size() < prompt.size() / 2);
  // The start goes, the end (usually the question) stays.
  CHECK(sent.find("w0001 ") == std::string::npos);
  CHECK(sent.size() >= 5);
  CHECK(sent.substr(sent.size() - 5) == "w0400");
  CHECK(r.out == "mock reply to: " + sent + "\n");

  // -q keeps warnings off stderr; the answer is the same.
  auto quiet = env.ask({"-q", "--truncate", "-m", "oa/small", prompt});
  CHECK(quiet.exit_code == 0);
  CHECK(quiet.err.empty());
  CHECK(quiet.out == r.out);
}
