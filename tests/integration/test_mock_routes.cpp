// detour-mock: Anthropic's paged model listing, and the JSON 404 every unknown endpoint gets.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness.hpp"
#include "test_mock_util.hpp"

using namespace detour::testing;
using namespace detour::testing::mock_util;
using nlohmann::json;

namespace {

const httplib::Headers kAnthropic = {{"anthropic-version", "2023-06-01"}};

json anthropic_models(MockServer& mock, const std::string& query) {
  auto r = client(mock).Get("/v1/models" + query, kAnthropic);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  return body_json(r);
}

std::vector<std::string> ids(const json& page) {
  std::vector<std::string> out;
  for (const auto& m : page["data"])
    out.push_back(m["id"]);
  return out;
}

}  // namespace

TEST_CASE("Anthropic model listing pages with limit, after_id and before_id", "[mock]") {
  // GET /v1/models (platform.claude.com "List Models"): limit defaults to 20 and ranges
  // 1..1000; after_id / before_id give the page right after / before that id; has_more says
  // whether there are more in the direction asked; first_id / last_id are the page's ends.
  json models = json::object();
  for (int i = 10; i < 30; ++i)
    models["extra-" + std::to_string(i)] = json::object();
  MockServer mock({{"models", models}});  // 8 default models + 20 = 28
  auto all = ids(anthropic_models(mock, "?limit=1000"));
  REQUIRE(all.size() == 28);

  auto first = anthropic_models(mock, "");
  CHECK(first["data"].size() == 20);  // the default limit
  CHECK(first["has_more"] == true);
  CHECK(first["first_id"] == all.front());
  CHECK(first["last_id"] == all[19]);
  CHECK(first["data"][0]["type"] == "model");

  // Walking forward with after_id visits every model once.
  std::vector<std::string> walked;
  json page = anthropic_models(mock, "?limit=6");
  while (true) {
    for (const auto& id : ids(page))
      walked.push_back(id);
    if (!page["has_more"].get<bool>()) break;
    page = anthropic_models(mock, "?limit=6&after_id=" + page["last_id"].get<std::string>());
  }
  CHECK(walked == all);
  CHECK(page["data"].size() == 4);  // 28 = 4 pages of 6, then 4

  // Backward: the page right before the cursor; has_more looks further back.
  auto back = anthropic_models(mock, "?limit=3&before_id=" + all[5]);
  CHECK(ids(back) == std::vector<std::string>(all.begin() + 2, all.begin() + 5));
  CHECK(back["has_more"] == true);
  back = anthropic_models(mock, "?limit=3&before_id=" + all[3]);
  CHECK(ids(back) == std::vector<std::string>(all.begin(), all.begin() + 3));
  CHECK(back["has_more"] == false);
  // Past the end: an empty page with null ends.
  auto end = anthropic_models(mock, "?after_id=" + all.back());
  CHECK(end["data"].empty());
  CHECK(end["has_more"] == false);
  CHECK(end["first_id"].is_null());
  CHECK(end["last_id"].is_null());

  // Out-of-range or malformed parameters: Anthropic's 400 invalid_request_error.
  for (std::string q :
       {"?limit=0", "?limit=1001", "?limit=many", "?limit=5x", "?after_id=a&before_id=z"}) {
    INFO(q);
    auto bad = client(mock).Get("/v1/models" + q, kAnthropic);
    REQUIRE(bad);
    CHECK(bad->status == 400);
    CHECK(body_json(bad)["type"] == "error");
    CHECK(body_json(bad)["error"]["type"] == "invalid_request_error");
  }
  CHECK(body_json(client(mock).Get("/v1/models?limit=0", kAnthropic))["error"]["message"] ==
        "limit: Input should be greater than or equal to 1");
  // OpenAI's listing has no paging: everything, whatever the query says.
  auto o = body_json(client(mock).Get("/v1/models?limit=1"));
  CHECK(o["data"].size() == 28);
  CHECK_FALSE(o.contains("has_more"));
}

TEST_CASE("unknown endpoints get the protocol's JSON 404, never an empty one", "[mock]") {
  MockServer mock;
  // OpenAI: "Invalid URL (METHOD /path)", the body api.openai.com sends for unknown routes.
  auto o = client(mock).Post("/v1/foo", "{}", "application/json");
  REQUIRE(o);
  CHECK(o->status == 404);
  CHECK(o->has_header("x-request-id"));
  CHECK(body_json(o) == json::parse(R"j({"error":{"message":"Invalid URL (POST /v1/foo)",
      "type":"invalid_request_error","param":null,"code":null}})j"));
  auto wrong_method = client(mock).Get("/v1/chat/completions");
  CHECK(wrong_method->status == 404);
  CHECK(body_json(wrong_method)["error"]["message"] == "Invalid URL (GET /v1/chat/completions)");
  CHECK(client(mock).Delete("/nothing/here")->status == 404);

  // Anthropic (the request carries anthropic-version): its error envelope, not_found_error.
  auto a = client(mock).Post("/v1/complete", kAnthropic, "{}", "application/json");
  CHECK(a->status == 404);
  CHECK(a->has_header("request-id"));
  auto aj = body_json(a);
  CHECK(aj["type"] == "error");
  CHECK(aj["error"] == json{{"type", "not_found_error"}, {"message", "Not Found"}});
  CHECK(aj["request_id"].is_string());

  // Gemini paths, method suffixes and keys: google.rpc's NOT_FOUND.
  for (std::string path : {"/v1beta/models/gemini-2.0-flash:countTokens", "/v1beta/files",
                           "/v1/models/gemini-2.0-flash:embedContent"}) {
    INFO(path);
    auto g = client(mock).Post(path, "{}", "application/json");
    CHECK(g->status == 404);
    auto ge = body_json(g)["error"];
    CHECK(ge["code"] == 404);
    CHECK(ge["status"] == "NOT_FOUND");
    CHECK(ge["message"].is_string());
  }
  auto keyed = client(mock).Get("/v2/anything?key=k");
  CHECK(body_json(keyed)["error"]["status"] == "NOT_FOUND");

  // The control API's own shape; known routes are unchanged.
  auto c = client(mock).Get("/_mock/nope");
  CHECK(c->status == 404);
  CHECK(body_json(c)["error"] == "no such control endpoint: GET /_mock/nope");
  CHECK(client(mock).Get("/_mock/health")->status == 200);
  CHECK(body_json(client(mock).Get("/v1/models/nope"))["error"]["code"] == "model_not_found");

  // Counted like any API request, so a test can see a client used the wrong path.
  auto s = mock.stats();
  CHECK(s["by_path"]["/v1/foo"] == 1);
  CHECK(s["by_status"]["404"] == 9);
  CHECK_FALSE(s["by_path"].contains("/_mock/nope"));
}

// A model name taken from the URL is the one request text no JSON parser checks: the mock
// answers a name that is not UTF-8 with a 400, and /_mock/stats stays readable (found by
// tests/fuzz/fuzz_mock_request; before, the reply body's JSON dump threw and every later stats
// read was a 500).
TEST_CASE("a request detour-mock cannot take gets a 400 and the mock carries on", "[mock]") {
  MockServer mock;
  auto bad = client(mock).Post("/v1beta/models/gem%FF%A0:generateContent", gemini_body("hi").dump(),
                               "application/json");
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(body_json(bad)["error"]["status"] == "INVALID_ARGUMENT");
  CHECK(body_json(bad)["error"]["message"].get<std::string>().find("UTF-8") != std::string::npos);

  // A prompt whose first 1000 bytes end inside a two-byte character: the recorded prompt is cut
  // before it, not through it.
  const std::string prompt = "a" + [] {
    std::string s;
    for (int i = 0; i < 600; ++i)
      s += "\xC3\xA9";  // é
    return s;
  }();
  auto ok = openai(mock, openai_body(prompt));
  REQUIRE(ok);
  CHECK(ok->status == 200);
  auto odd_auth = openai(mock, openai_body("x"), {{"Authorization", "Bearer \xFF\xFE"}});
  REQUIRE(odd_auth);

  auto stats = client(mock).Get("/_mock/stats");
  REQUIRE(stats);
  REQUIRE(stats->status == 200);
  auto s = body_json(stats);
  CHECK(s["by_status"]["400"] == 1);
  const auto& received = s["received"];
  REQUIRE(received.size() == 3);
  CHECK(received[1]["prompt"].get<std::string>().size() == 999);
}
