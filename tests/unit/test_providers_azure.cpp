// Azure OpenAI (README, "Providers"): the deployment URL with api-version, the api-key header or
// an Entra ID bearer token, OpenAI's body without the model, and Azure's content-filter 400.
// And what every provider's requests carry besides: extra headers, query parameters, CAs.
#include <catch2/catch.hpp>

#include "engine/errors.hpp"
#include "engine/finish_reason.hpp"
#include "provider_test_util.hpp"
#include "providers/types.hpp"

using namespace detour;
using detour::providers::ChatRequest;
using detour::providers::Endpoint;
using detour::providers::find_protocol;
using provider_test::body_of;
using provider_test::header;

namespace {

const providers::Protocol& azure() {
  return *find_protocol("azure");
}

ChatRequest request_for(std::string deployment) {
  ChatRequest request;
  request.model = std::move(deployment);
  request.messages = {{"user", "Say hello"}};
  request.max_tokens = 50;
  return request;
}

Endpoint endpoint(std::string version = "2024-10-21") {
  Endpoint e;
  e.base_url = "https://res.openai.azure.com";
  e.api_key = "az-key-123456";
  e.api_version = std::move(version);
  return e;
}

}  // namespace

TEST_CASE("azure: the deployment URL, the api-key header and OpenAI's body", "[providers]") {
  ChatRequest request = request_for("prod chat");
  request.stream = true;
  const net::HttpRequest http = azure().chat_request(endpoint(), request);
  // learn.microsoft.com, Azure OpenAI REST reference: POST
  // {endpoint}/openai/deployments/{deployment-id}/chat/completions?api-version={version}
  CHECK(http.url ==
        "https://res.openai.azure.com/openai/deployments/prod%20chat/chat/completions?api-version="
        "2024-10-21");
  CHECK(header(http, "api-key") == "az-key-123456");
  CHECK(header(http, "authorization") == "<absent>");
  const auto body = body_of(http);
  CHECK_FALSE(body.contains("model"));  // the deployment names it
  CHECK(body["max_completion_tokens"] == 50);
  CHECK(body["stream_options"]["include_usage"] == true);
  CHECK(body["messages"][0]["content"] == "Say hello");
  CHECK(std::find(http.secrets.begin(), http.secrets.end(), "az-key-123456") != http.secrets.end());
}

TEST_CASE("azure: versions before 2024-09-01 get the fields they know", "[providers]") {
  ChatRequest request = request_for("gpt-4o");
  request.stream = true;
  const auto body = body_of(azure().chat_request(endpoint("2024-06-01"), request));
  CHECK(body["max_tokens"] == 50);
  CHECK_FALSE(body.contains("max_completion_tokens"));
  CHECK_FALSE(body.contains("stream_options"));
  CHECK(body_of(azure().chat_request(endpoint("2025-01-01-preview"), request))
            .contains("max_completion_tokens"));
}

TEST_CASE("azure: a token from api_key_cmd is a bearer token", "[providers]") {
  Endpoint e = endpoint();
  e.key_is_token = true;
  const net::HttpRequest http = azure().chat_request(e, request_for("gpt-4o"));
  CHECK(header(http, "authorization") == "Bearer az-key-123456");
  CHECK(header(http, "api-key") == "<absent>");
}

TEST_CASE("azure: the models probe and its limits", "[providers]") {
  const net::HttpRequest http = azure().models_request(endpoint());
  CHECK(http.method == "GET");
  CHECK(http.url == "https://res.openai.azure.com/openai/models?api-version=2024-10-21");
  CHECK(header(http, "api-key") == "az-key-123456");
  CHECK_FALSE(azure().models_list_targets());
  CHECK(find_protocol("openai")->models_list_targets());
}

TEST_CASE("azure: replies are OpenAI's, finish reasons included", "[providers]") {
  CHECK(azure().reply_family() == "openai");
  const char* body =
      R"({"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hi"},"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"prompt_filter_results":[],"usage":{"prompt_tokens":3,"completion_tokens":1}})";
  const auto reply = azure().parse_reply(body);
  REQUIRE(reply.reply);
  CHECK(reply.reply->content == "hi");
  CHECK(engine::judge_finish(azure().reply_family(), *reply.reply).error ==
        engine::ErrorClass::none);
}

TEST_CASE("azure: errors classify as OpenAI's do, and the content filter is content_filter",
          "[providers]") {
  struct Row {
    int status;
    const char* body;
    engine::ErrorClass expected;
  };
  // Bodies as Azure sends them (Microsoft Q&A threads quoting real responses).
  const Row rows[] = {
      {400,
       R"({"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"medium"}}}}})",
       engine::ErrorClass::content_filter},
      {404,
       R"({"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}})",
       engine::ErrorClass::not_found},
      {401,
       R"({"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}})",
       engine::ErrorClass::auth},
      {429,
       R"({"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."}})",
       engine::ErrorClass::rate_limited},
  };
  for (const auto& row : rows) {
    INFO(row.body);
    const providers::ProviderError error = azure().parse_error(row.status, row.body);
    CHECK(error.recognised);
    CHECK(engine::classify_http_error(row.status, error, {}) == row.expected);
  }
  CHECK(azure().parse_error(429, rows[3].body).retry_delay == Millis(6000));
}

TEST_CASE("endpoint extras: headers replace the protocol's, query is encoded, secrets kept",
          "[providers]") {
  Endpoint e;
  e.base_url = "https://gw.example/v1";
  e.api_key = "sk-provider-key";
  e.headers = {{"Authorization", "Bearer gw-token"}, {"x-team", "search"}};
  e.query = {{"tag", "night ly&x=1"}, {"v", "2"}};
  e.ca_bundle = "/etc/ssl/corp.pem";
  e.secrets = {"gw-SECRET-from-env"};
  ChatRequest request;
  request.model = "m";
  request.messages = {{"user", "hi"}};
  const net::HttpRequest http = find_protocol("openai")->chat_request(e, request);
  CHECK(http.url == "https://gw.example/v1/chat/completions?tag=night%20ly%26x%3D1&v=2");
  int authorizations = 0;
  for (const auto& [name, value] : http.headers) {
    if (name == "authorization" || name == "Authorization") {
      ++authorizations;
      CHECK(value == "Bearer gw-token");
    }
  }
  CHECK(authorizations == 1);
  CHECK(header(http, "x-team") == "search");
  CHECK(http.ca_bundle == "/etc/ssl/corp.pem");
  CHECK(http.secrets == std::vector<std::string>{"gw-SECRET-from-env", "sk-provider-key"});

  // A URL that has a query already (Azure's api-version) gets '&'.
  Endpoint az = endpoint();
  az.query = {{"tag", "a"}};
  CHECK(azure().chat_request(az, request_for("d")).url ==
        "https://res.openai.azure.com/openai/deployments/d/chat/completions?api-version="
        "2024-10-21&tag=a");
  CHECK(providers::url_encode("a-b_c.d~e f/é") == "a-b_c.d~e%20f%2F%C3%A9");
}
