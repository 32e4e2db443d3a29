// detour-mock as Azure OpenAI (tests/mock/README.md, "Azure OpenAI"): chat on a deployment,
// api-key and Entra ID bearer auth, the api-version rule, DeploymentNotFound, streams with
// content-filter annotations, the content filter's two forms, rate limits, the deployment and
// model GETs; and the request headers and query every recorded request now carries.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness.hpp"
#include "test_mock_util.hpp"

using namespace detour::testing;
using namespace detour::testing::mock_util;
using nlohmann::json;

namespace {

const std::string kKey = "azure-sekrit-key";
const std::string kVersion = "2024-10-21";

// The expected bodies are written out whole, as Azure sends them (tests/mock/README.md, "Azure
// OpenAI"; Microsoft Learn, "Azure OpenAI in Azure AI Foundry Models REST API reference").
json access_denied() {
  return {{"error",
           {{"code", "401"},
            {"message",
             "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
             "provide a valid key for an active subscription and use a correct regional API "
             "endpoint for your resource."}}}};
}

json deployment_not_found() {
  return {{"error",
           {{"code", "DeploymentNotFound"},
            {"message",
             "The API deployment for this resource does not exist. If you created the deployment "
             "within the last 5 minutes, please wait a moment and try again."}}}};
}

const json kResourceNotFound = {{"error", {{"code", "404"}, {"message", "Resource not found"}}}};
const json kVersionNotSupported = {
    {"error", {{"code", "BadRequest"}, {"message", "API version not supported"}}}};

json safe_results() {
  json safe = {{"filtered", false}, {"severity", "safe"}};
  return {{"hate", safe}, {"self_harm", safe}, {"sexual", safe}, {"violence", safe}};
}

json filtered_results() {
  json r = safe_results();
  r["hate"] = {{"filtered", true}, {"severity", "medium"}};
  return r;
}

std::string chat_path(const std::string& deployment, const std::string& query) {
  return "/openai/deployments/" + deployment + "/chat/completions" + query;
}

// The chat body Azure clients send: no model (the deployment names it).
json azure_body(const std::string& prompt, json extra = json::object()) {
  json b = {{"messages", {{{"role", "user"}, {"content", prompt}}}}};
  b.update(extra);
  return b;
}

httplib::Result azure(MockServer& m, const json& body, const std::string& deployment = "gpt-4o",
                      httplib::Headers h = {{"api-key", kKey}},
                      const std::string& query = "?api-version=" + kVersion) {
  return client(m).Post(chat_path(deployment, query), h, body.dump(), "application/json");
}

httplib::Result azure_get(MockServer& m, const std::string& path,
                          const std::string& query = "?api-version=" + kVersion,
                          httplib::Headers h = {{"api-key", kKey}}) {
  return client(m).Get(path + query, h);
}

}  // namespace

TEST_CASE("Azure OpenAI chat on a deployment, with api-key or an Entra ID bearer", "[mock]") {
  MockServer mock({{"models", {{"prod-chat", json::object()}}}}, {"--api-key", kKey});
  auto r = azure(mock, azure_body("hello azure"));
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->has_header("apim-request-id"));
  CHECK(r->has_header("x-request-id"));
  auto j = body_json(r);
  CHECK(j["object"] == "chat.completion");
  CHECK(j["model"] == "gpt-4o");  // the deployment's model
  CHECK(j["choices"][0]["message"]["content"] == "mock reply to: hello azure");
  CHECK(j["choices"][0]["finish_reason"] == "stop");
  CHECK(j["usage"]["completion_tokens"] == 5);
  // Azure's annotations: the prompt's, and each choice's.
  CHECK(j["choices"][0]["content_filter_results"] == safe_results());
  REQUIRE(j["prompt_filter_results"].size() == 1);
  CHECK(j["prompt_filter_results"][0]["prompt_index"] == 0);
  auto prompt = j["prompt_filter_results"][0]["content_filter_results"];
  CHECK(prompt["hate"] == json{{"filtered", false}, {"severity", "safe"}});
  CHECK(prompt["jailbreak"] == json{{"filtered", false}, {"detected", false}});

  // A Microsoft Entra ID token as a bearer; a `model` in the body is ignored.
  auto bearer = azure(mock, azure_body("hi", {{"model", "something-else"}}), "prod-chat",
                      {{"Authorization", "Bearer " + kKey}});
  REQUIRE(bearer);
  CHECK(bearer->status == 200);
  CHECK(body_json(bearer)["model"] == "prod-chat");

  auto s = settled_stats(mock);
  CHECK(s["by_model"]["gpt-4o"] == 1);
  CHECK(s["by_model"]["prod-chat"] == 1);
  CHECK(s["received"][0]["auth"] == "api-key");
  CHECK(s["received"][1]["auth"] == "bearer");
  CHECK_FALSE(s["received"][0]["params"].contains("model"));  // the body's own fields
  CHECK(s["received"][1]["params"]["model"] == "something-else");
}

TEST_CASE("Azure OpenAI answers key, api-version and deployment errors itself", "[mock]") {
  MockServer mock(json::object(), {"--api-key", kKey});
  // Missing or wrong key, either credential: 401 with Azure's body.
  for (const httplib::Headers& h : {httplib::Headers{}, httplib::Headers{{"api-key", "nope"}},
                                    httplib::Headers{{"Authorization", "Bearer nope"}},
                                    httplib::Headers{{"x-api-key", kKey}}}) {
    auto r = azure(mock, azure_body("x"), "gpt-4o", h);
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(body_json(r) == access_denied());
  }
  // No api-version: the route does not exist.
  auto missing = azure(mock, azure_body("x"), "gpt-4o", {{"api-key", kKey}}, "");
  CHECK(missing->status == 404);
  CHECK(body_json(missing) == kResourceNotFound);
  // Versions: YYYY-MM-DD[-preview], a real date, from 2023-05-15 on.
  for (std::string v : {"2022-12-01", "2023-05-14", "latest", "2024-13-01", "2024-02-30",
                        "2023-02-29", "2024-10-21-beta", "24-10-21", ""}) {
    INFO("api-version " << v);
    auto r = azure(mock, azure_body("x"), "gpt-4o", {{"api-key", kKey}}, "?api-version=" + v);
    CHECK(r->status == 400);
    CHECK(body_json(r) == kVersionNotSupported);
  }
  for (std::string v : {"2023-05-15", "2024-02-01", "2024-02-29", "2024-06-01", "2024-10-21",
                        "2024-12-01-preview", "2025-01-01-preview", "2025-04-01-preview"}) {
    INFO("api-version " << v);
    CHECK(
        azure(mock, azure_body("x"), "gpt-4o", {{"api-key", kKey}}, "?api-version=" + v)->status ==
        200);
  }
  // Deployments are the models the mock lists: the default set plus the scenario's.
  auto unknown = azure(mock, azure_body("x"), "no-such-deployment");
  CHECK(unknown->status == 404);
  CHECK(body_json(unknown) == deployment_not_found());
  mock.set_scenario({{"api_key", kKey}, {"models", {{"no-such-deployment", json::object()}}}});
  CHECK(azure(mock, azure_body("x"), "no-such-deployment")->status == 200);

  // Body errors come from the model behind the deployment, in OpenAI's shape.
  auto bad = client(mock).Post(chat_path("gpt-4o", "?api-version=" + kVersion), {{"api-key", kKey}},
                               "{not json", "application/json");
  CHECK(bad->status == 400);
  CHECK(body_json(bad)["error"]["type"] == "invalid_request_error");
  auto no_messages = azure(mock, json::object());
  CHECK(no_messages->status == 400);
  CHECK(body_json(no_messages)["error"]["message"] == "Missing required parameter: 'messages'.");

  // Unknown paths under /openai/ are Azure's, whatever else the request looks like.
  for (auto path : {"/openai/deployments/gpt-4o/embeddings?api-version=2024-10-21",
                    "/openai/v1/chat/completions", "/openai/foo?key=k"}) {
    INFO(path);
    auto r = client(mock).Post(path, {{"api-key", kKey}}, "{}", "application/json");
    CHECK(r->status == 404);
    CHECK(body_json(r) == kResourceNotFound);
    CHECK(r->has_header("apim-request-id"));
  }
  auto wrong_method = azure_get(mock, chat_path("gpt-4o", ""));
  CHECK(wrong_method->status == 404);
  CHECK(body_json(wrong_method) == kResourceNotFound);
  CHECK(mock.stats()["by_path"]["/openai/foo"] == 1);
}

TEST_CASE("Azure OpenAI streams OpenAI's chunks with content-filter annotations", "[mock]") {
  MockServer mock;
  auto r = azure(mock, azure_body("stream to me", {{"stream", true},
                                                   {"stream_options", {{"include_usage", true}}}}));
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type").find("text/event-stream") == 0);
  auto chunks = sse_data(r->body);
  REQUIRE(chunks.size() >= 5);
  // First: the prompt's annotations in a chunk with no choices and empty id, model and object
  // (Microsoft Learn, "Content filtering": clients reading choices[0] blindly break here).
  const json& first = chunks.front();
  CHECK(first["choices"].empty());
  CHECK(first["id"] == "");
  CHECK(first["model"] == "");
  CHECK(first["object"] == "");
  CHECK(first["created"] == 0);
  CHECK(first["prompt_filter_results"][0]["content_filter_results"]["violence"]["filtered"] ==
        false);
  CHECK(openai_stream_text(chunks) == "mock reply to: stream to me");
  CHECK(chunks.back() == "[DONE]");
  // Text chunks carry the output's annotations; the role and finish chunks an empty object.
  CHECK(chunks[1]["choices"][0]["delta"]["role"] == "assistant");
  CHECK(chunks[1]["choices"][0]["content_filter_results"] == json::object());
  CHECK(chunks[2]["choices"][0]["content_filter_results"] == safe_results());
  const json& finish = chunks[chunks.size() - 3];
  CHECK(finish["choices"][0]["finish_reason"] == "stop");
  CHECK(finish["choices"][0]["content_filter_results"] == json::object());
  const json& usage = chunks[chunks.size() - 2];
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["completion_tokens"] == 6);  // "mock reply to: stream to me"
}

TEST_CASE("Azure content filter: the prompt's 400 and a completion filtered on output", "[mock]") {
  MockServer mock({{"models",
                    {{"filtered-prompt", {{"fault", "content_filter"}}},
                     {"filtered-output", {{"fault", "finish_content_filter"}}}}}});
  const json expected = {
      {"error",
       {{"code", "content_filter"},
        {"message",
         "The response was filtered due to the prompt triggering Azure OpenAI's content "
         "management policy. Please modify your prompt and retry. To learn more about our "
         "content filtering policies please read our documentation: "
         "https://go.microsoft.com/fwlink/?linkid=2198766"},
        {"param", "prompt"},
        {"type", nullptr},
        {"status", 400},
        {"innererror",
         {{"code", "ResponsibleAIPolicyViolation"},
          {"content_filter_result", filtered_results()}}}}}};
  for (bool stream : {false, true}) {
    INFO("stream " << stream);
    auto r = azure(mock, azure_body("x", {{"stream", stream}}), "filtered-prompt");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(body_json(r) == expected);
  }
  // The same fault on the OpenAI route keeps OpenAI's form.
  auto o = openai(mock, openai_body("x", {{"model", "filtered-prompt"}}));
  CHECK(body_json(o)["error"]["code"] == "content_policy_violation");

  // Filtered on output: a 200 cut short, finish_reason content_filter, the category named.
  auto plain = azure(mock, azure_body("one two three four"), "filtered-output");
  REQUIRE(plain->status == 200);
  auto choice = body_json(plain)["choices"][0];
  CHECK(choice["finish_reason"] == "content_filter");
  CHECK(choice["content_filter_results"] == filtered_results());
  CHECK(choice["message"]["content"] == "mock reply to:");  // the first half of the words
  auto streamed = azure(mock, azure_body("one two", {{"stream", true}}), "filtered-output");
  REQUIRE(streamed->status == 200);
  auto chunks = sse_data(streamed->body);
  const json& last = chunks[chunks.size() - 2];
  CHECK(last["choices"][0]["finish_reason"] == "content_filter");
  CHECK(last["choices"][0]["content_filter_results"] == filtered_results());
  CHECK(chunks.back() == "[DONE]");
  CHECK(mock.stats()["faults"] == 5);  // two prompts, the OpenAI one, two outputs
}

TEST_CASE("Azure rate limits: the 429 fault and the scenario's limits", "[mock]") {
  MockServer mock({{"models", {{"busy", {{"fault", "rate_limit"}, {"retry_after_s", 6}}}}}});
  auto r = azure(mock, azure_body("x"), "busy");
  REQUIRE(r);
  CHECK(r->status == 429);
  CHECK(r->get_header_value("retry-after") == "6");
  CHECK(r->get_header_value("retry-after-ms") == "6000");
  CHECK(body_json(r) ==
        json{{"error",
              {{"code", "429"},
               {"message",
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
                "2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing tier. "
                "Please retry after 6 seconds. Please go here: https://aka.ms/oai/quotaincrease if "
                "you would like to further increase the default rate limit."}}}});
  // The api-version the request named is the one the message names.
  auto preview =
      azure(mock, azure_body("x"), "busy", {{"api-key", kKey}}, "?api-version=2025-01-01-preview");
  CHECK(body_json(preview)["error"]["message"].get<std::string>().find(
            "API version 2025-01-01-preview have exceeded") != std::string::npos);

  // The limiter: one request a second, then a 429 naming the call limit, and only the
  // remaining-* headers on replies (Azure sends no limit or reset headers).
  mock.set_scenario({{"limits", {{"rpm", 60}}}});
  auto ok = azure(mock, azure_body("x"));
  CHECK(ok->status == 200);
  CHECK(ok->get_header_value("x-ratelimit-remaining-requests") == "0");
  CHECK_FALSE(ok->has_header("x-ratelimit-limit-requests"));
  CHECK_FALSE(ok->has_header("x-ratelimit-reset-requests"));
  auto limited = azure(mock, azure_body("x"));
  CHECK(limited->status == 429);
  CHECK(limited->has_header("retry-after"));
  CHECK(limited->has_header("retry-after-ms"));
  auto msg = body_json(limited)["error"]["message"].get<std::string>();
  CHECK(msg.find("exceeded call rate limit") != std::string::npos);
  CHECK(body_json(limited)["error"]["code"] == "429");

  // Tokens: the token bucket says no, and the message says token rate limit.
  mock.set_scenario({{"limits", {{"tpm", 600}}}});  // a 10-token bucket
  auto tokens_ok = azure(mock, azure_body("x", {{"max_tokens", 8}}));
  CHECK(tokens_ok->status == 200);
  CHECK(tokens_ok->has_header("x-ratelimit-remaining-tokens"));
  auto tokens_limited = azure(mock, azure_body("x", {{"max_tokens", 8}}));
  CHECK(tokens_limited->status == 429);
  CHECK(body_json(tokens_limited)["error"]["message"].get<std::string>().find(
            "exceeded token rate limit") != std::string::npos);
  CHECK(mock.stats()["rate_limited"] == 4);
}

TEST_CASE("Azure deployment and model GETs for health probes", "[mock]") {
  MockServer mock({{"models", {{"prod-chat", json::object()}}}}, {"--api-key", kKey});
  auto d = azure_get(mock, "/openai/deployments/prod-chat");
  REQUIRE(d);
  CHECK(d->status == 200);
  auto dj = body_json(d);
  CHECK(dj["id"] == "prod-chat");
  CHECK(dj["model"] == "prod-chat");
  CHECK(dj["status"] == "succeeded");
  CHECK(dj["object"] == "deployment");
  auto gone = azure_get(mock, "/openai/deployments/retired");
  CHECK(gone->status == 404);
  CHECK(body_json(gone) == deployment_not_found());
  CHECK(azure_get(mock, "/openai/deployments/gpt-4o", "")->status == 404);
  CHECK(azure_get(mock, "/openai/deployments/gpt-4o", "?api-version=2020-01-01")->status == 400);
  auto denied = azure_get(mock, "/openai/deployments/gpt-4o", "?api-version=" + kVersion,
                          {{"api-key", "nope"}});
  CHECK(denied->status == 401);
  CHECK(body_json(denied) == access_denied());

  auto models = azure_get(mock, "/openai/models", "?api-version=" + kVersion,
                          {{"Authorization", "Bearer " + kKey}});
  REQUIRE(models->status == 200);
  auto mj = body_json(models);
  CHECK(mj["object"] == "list");
  std::vector<std::string> ids;
  for (const auto& m : mj["data"]) {
    ids.push_back(m["id"]);
    CHECK(m["object"] == "model");
  }
  CHECK(std::find(ids.begin(), ids.end(), "gpt-4o") != ids.end());
  CHECK(std::find(ids.begin(), ids.end(), "prod-chat") != ids.end());
  CHECK(azure_get(mock, "/openai/models", "")->status == 404);

  // A deployment's HTTP-level faults reach its probe, then it recovers ("times").
  mock.set_scenario(
      {{"api_key", kKey}, {"models", {{"prod-chat", {{"fault", "overloaded"}, {"times", 1}}}}}});
  CHECK(azure_get(mock, "/openai/deployments/prod-chat")->status == 503);
  CHECK(azure_get(mock, "/openai/deployments/prod-chat")->status == 200);
  mock.set_scenario({{"api_key", kKey}, {"models", {{"prod-chat", {{"fault", "rate_limit"}}}}}});
  auto probe_limited = azure_get(mock, "/openai/deployments/prod-chat");
  CHECK(probe_limited->status == 429);
  CHECK(body_json(probe_limited)["error"]["message"].get<std::string>().rfind(
            "Requests to the Deployments_Get Operation", 0) == 0);
}

TEST_CASE("stats record Azure request headers and query, credentials redacted", "[mock]") {
  MockServer mock(json::object(), {"--api-key", kKey});
  httplib::Headers h = {{"api-key", kKey},
                        {"X-Team", "blue"},
                        {"x-ms-client-request-id", "abc-123"},
                        {"X-Repeat", "one"},
                        {"X-Repeat", "two"}};
  REQUIRE(azure(mock, azure_body("x"), "gpt-4o", h,
                "?api-version=" + kVersion + "&tag=a&tag=b&key=" + kKey + "&note=a%20b")
              ->status == 200);
  REQUIRE(azure_get(mock, "/openai/models", "?api-version=" + kVersion,
                    {{"Authorization", "Bearer " + kKey}, {"Ocp-Apim-Subscription-Key", kKey}})
              ->status == 200);
  auto s = settled_stats(mock);
  CHECK(s.dump().find(kKey) == std::string::npos);  // no credential value anywhere
  const json& chat = s["received"][0];
  CHECK(chat["headers"]["api-key"] == "<redacted>");
  CHECK(chat["headers"]["x-team"] == "blue");  // names lowercased, values as sent
  CHECK(chat["headers"]["x-ms-client-request-id"] == "abc-123");
  CHECK(chat["headers"]["x-repeat"] == "one, two");
  CHECK(chat["headers"]["content-type"] == "application/json");
  CHECK_FALSE(chat["headers"].contains("remote_addr"));  // httplib's, not the client's
  CHECK(
      chat["query"] ==
      json{{"api-version", kVersion}, {"tag", {"a", "b"}}, {"key", "<redacted>"}, {"note", "a b"}});
  const json& list = s["received"][1];
  CHECK(list["headers"]["authorization"] == "<redacted>");
  CHECK(list["headers"]["ocp-apim-subscription-key"] == "<redacted>");
  CHECK(list["query"] == json{{"api-version", kVersion}});
  // A request rejected before its key is checked still says which credential it carried.
  azure(mock, azure_body("x"), "gpt-4o", {{"api-key", kKey}}, "");
  CHECK(mock.stats()["received"][2]["auth"] == "api-key");
}

TEST_CASE("stats of every protocol carry request headers and query", "[mock]") {
  MockServer mock(json::object(), {"--api-key", "sekrit"});
  REQUIRE(openai(mock, openai_body("x"),
                 {{"Authorization", "Bearer sekrit"},
                  {"OpenAI-Organization", "org-42"},
                  {"X-Gateway", "from-env"}})
              ->status == 200);
  REQUIRE(anthropic(mock, anthropic_body("x"), {{"x-api-key", "sekrit"}})->status == 200);
  REQUIRE(client(mock)
              .Post("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=sekrit",
                    {{"x-goog-api-key", "sekrit"}}, gemini_body("x").dump(), "application/json")
              ->status == 200);
  REQUIRE(client(mock).Get("/v1/models?limit=2", {{"Authorization", "Bearer sekrit"}})->status ==
          200);
  // Bytes that are not UTF-8 in a header value keep /_mock/stats valid JSON (replaced).
  REQUIRE(
      openai(mock, openai_body("x"), {{"Authorization", "Bearer sekrit"}, {"X-Odd", "a\xFF\xFE"}}));

  auto stats = client(mock).Get("/_mock/stats");
  REQUIRE(stats);
  REQUIRE(stats->status == 200);
  CHECK(stats->body.find("sekrit") == std::string::npos);
  auto s = body_json(stats);
  const auto& rec = s["received"];
  REQUIRE(rec.size() == 5);
  CHECK(rec[0]["headers"]["authorization"] == "<redacted>");
  CHECK(rec[0]["headers"]["openai-organization"] == "org-42");
  CHECK(rec[0]["headers"]["x-gateway"] == "from-env");
  CHECK(rec[0]["query"] == json::object());
  CHECK(rec[1]["headers"]["x-api-key"] == "<redacted>");
  CHECK(rec[1]["headers"]["anthropic-version"] == "2023-06-01");
  CHECK(rec[2]["headers"]["x-goog-api-key"] == "<redacted>");
  CHECK(rec[2]["query"] == json{{"alt", "sse"}, {"key", "<redacted>"}});
  CHECK(rec[3]["path"] == "/v1/models");
  CHECK(rec[3]["query"] == json{{"limit", "2"}});
  CHECK(rec[4]["headers"]["x-odd"].get<std::string>().rfind("a", 0) == 0);
  for (const auto& r : rec) {
    CHECK(r["headers"]["host"].is_string());
    CHECK_FALSE(r["headers"].contains("local_port"));
  }
}
