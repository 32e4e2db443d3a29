#include "azure.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "exchange.hpp"

namespace detour::mock {

namespace {

using nlohmann::json;

// The bodies Azure sends word for word (tests/mock/README.md, "Azure OpenAI").
constexpr const char* kAccessDenied =
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource.";
constexpr const char* kDeploymentNotFound =
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again.";
constexpr const char* kPromptFiltered =
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766";

// A fixed instant for created_at/updated_at: listings stay byte-identical between runs.
constexpr std::int64_t kCreatedAt = 1715558400;

std::string error_body(const std::string& code, const std::string& message) {
  return json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

// The four harm categories of Azure's default content filter. When something is filtered the
// mock says it was hate at medium severity: any filtered category would do, one fixed one keeps
// tests exact.
json filter_results(bool filtered) {
  json safe = {{"filtered", false}, {"severity", "safe"}};
  return {{"hate", filtered ? json{{"filtered", true}, {"severity", "medium"}} : safe},
          {"self_harm", safe},
          {"sexual", safe},
          {"violence", safe}};
}

// The prompt annotations of a prompt that passed; the jailbreak (Prompt Shields) check is on
// by default and reports "detected" rather than a severity.
json prompt_filter_results() {
  json results = filter_results(false);
  results["jailbreak"] = {{"filtered", false}, {"detected", false}};
  return json::array({{{"prompt_index", 0}, {"content_filter_results", results}}});
}

bool is_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string plural(long long n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// The route's api-version: a missing one is a 404 (no route without it), an unknown one a 400.
bool check_version(Exchange& ex) {
  if (!ex.req.has_param("api-version")) {
    ex.send_error(ex.error(ErrorKind::no_route, ex.context()));
    return false;
  }
  ex.api_version = ex.req.get_param_value("api-version");
  if (is_supported_api_version(ex.api_version)) return true;
  ex.send_error(
      {400, "application/json", error_body("BadRequest", "API version not supported"), {}});
  return false;
}

// A deployment exists for every model the mock lists (tests/mock/README.md, "Azure OpenAI").
bool deployment_exists(Shared& sh, const std::string& deployment) {
  auto models = sh.known_models();
  return std::binary_search(models.begin(), models.end(), deployment);
}

// A deployment named in the percent-decoded path is kept out of the record when it is not
// UTF-8 (it cannot exist: every deployment is a name from JSON).
std::string recorded_name(const std::string& deployment) {
  return is_utf8(deployment) ? deployment : std::string();
}

}  // namespace

bool is_supported_api_version(std::string_view v) {
  // Microsoft Learn, "Azure OpenAI in Azure AI Foundry Models API version lifecycle": GA
  // versions are dates (2024-10-21), previews dates with -preview (2025-01-01-preview).
  constexpr std::string_view kPreview = "-preview";
  if (v.size() == 10 + kPreview.size() && v.substr(10) == kPreview) v = v.substr(0, 10);
  if (v.size() != 10 || v[4] != '-' || v[7] != '-') return false;
  auto year = v.substr(0, 4), month = v.substr(5, 2), day = v.substr(8, 2);
  if (!is_digits(year) || !is_digits(month) || !is_digits(day)) return false;
  int y = std::stoi(std::string(year)), m = std::stoi(std::string(month));
  int d = std::stoi(std::string(day));
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1 || d > kDays[m - 1]) return false;
  if (m == 2 && d == 29 && (y % 4 != 0 || (y % 100 == 0 && y % 400 != 0))) return false;
  return std::string_view("2023-05-15") <= v;  // same-width dates compare as text
}

ErrorReply azure_error(ErrorKind kind, const ErrorContext& ctx, const std::string& api_version,
                       const std::string& operation) {
  // OpenAI's reply carries the status and the retry-after / retry-after-ms headers Azure sends
  // too; the body is replaced where Azure answers itself.
  ErrorReply r = make_error(Protocol::openai, kind, ctx);
  if (kind == ErrorKind::status) {
    // An injected status gets Azure's own body where Azure has one for it.
    if (ctx.status == 401) kind = ErrorKind::auth;
    if (ctx.status == 404) kind = ErrorKind::not_found;
    if (ctx.status == 429) kind = ErrorKind::rate_limit;
  }
  switch (kind) {
    case ErrorKind::auth:
    case ErrorKind::missing_key:
      r.body = error_body("401", kAccessDenied);
      break;
    case ErrorKind::not_found:
      r.body = error_body("DeploymentNotFound", kDeploymentNotFound);
      break;
    case ErrorKind::no_route:
      r.body = error_body("404", "Resource not found");
      break;
    case ErrorKind::rate_limit: {
      auto wait = static_cast<long long>(std::ceil(ctx.retry_after_s.value_or(1)));
      std::string which = ctx.limit_type == "tokens" ? "token" : "call";
      r.body = error_body(
          "429", "Requests to the " + operation + " Operation under Azure OpenAI API version " +
                     api_version + " have exceeded " + which +
                     " rate limit of your current OpenAI S0 pricing tier. Please retry after " +
                     plural(wait, "second") +
                     ". Please go here: https://aka.ms/oai/quotaincrease if you would like to "
                     "further increase the default rate limit.");
      break;
    }
    case ErrorKind::content_filter: {
      json inner = {{"code", "ResponsibleAIPolicyViolation"},
                    {"content_filter_result", filter_results(true)}};
      r.status = 400;
      r.body = json{{"error",
                     {{"code", "content_filter"},
                      {"message", kPromptFiltered},
                      {"param", "prompt"},
                      {"type", nullptr},
                      {"status", 400},
                      {"innererror", inner}}}}
                   .dump();
      break;
    }
    default:
      break;  // the model's own error, in OpenAI's shape
  }
  return r;
}

std::vector<std::pair<std::string, std::string>> azure_ratelimit_headers(
    const LimitSnapshot& snap) {
  std::vector<std::pair<std::string, std::string>> h;
  if (snap.requests.enabled)
    h.emplace_back("x-ratelimit-remaining-requests", std::to_string(snap.requests.remaining));
  if (snap.tokens.enabled)
    h.emplace_back("x-ratelimit-remaining-tokens", std::to_string(snap.tokens.remaining));
  return h;
}

std::string azure_request_guid(const std::string& id) {
  // The request counter's digits fill the last group, so each request keeps its own GUID.
  std::string digits = id.size() > 12 ? id.substr(id.size() - 12) : id;
  digits.insert(0, 12 - digits.size(), '0');
  return "00000000-0000-4000-8000-" + digits;
}

std::string azure_reply_body(const std::string& openai_body) {
  json body = json::parse(openai_body, nullptr, false);
  if (!body.is_object()) return openai_body;
  body["prompt_filter_results"] = prompt_filter_results();
  for (auto& choice : body["choices"])
    choice["content_filter_results"] = filter_results(choice["finish_reason"] == "content_filter");
  return body.dump();
}

std::vector<SseEvent> azure_stream_events(std::vector<SseEvent> events) {
  // Azure streams the prompt's annotations first, in a chunk with no choices and empty
  // id/model/object (Microsoft Learn, "Content filtering", streaming): clients that read
  // choices[0] of every chunk break on it, which is why the mock sends it.
  json first = {{"choices", json::array()},
                {"created", 0},
                {"id", ""},
                {"model", ""},
                {"object", ""},
                {"prompt_filter_results", prompt_filter_results()}};
  std::vector<SseEvent> out;
  out.reserve(events.size() + 1);
  out.push_back({sse_data(Protocol::openai, first.dump()), false, false});
  constexpr std::string_view kData = "data: {";
  for (auto& ev : events) {
    if (ev.text.compare(0, kData.size(), kData) == 0) {
      json chunk = json::parse(ev.text.substr(6), nullptr, false);
      if (chunk.is_object() && chunk["choices"].is_array() && !chunk["choices"].empty()) {
        // Text chunks carry the output's annotations; the role and finish chunks an empty
        // object, unless the output was filtered, which the finish chunk then says.
        for (auto& choice : chunk["choices"]) {
          const json& delta = choice["delta"];
          bool text = delta.is_object() && delta.contains("content") &&
                      delta["content"].is_string() && !delta["content"].get<std::string>().empty();
          bool filtered = choice["finish_reason"] == "content_filter";
          choice["content_filter_results"] =
              text || filtered ? filter_results(filtered) : json::object();
        }
        ev.text = sse_data(Protocol::openai, chunk.dump());
      }
    }
    out.push_back(std::move(ev));
  }
  return out;
}

std::string azure_models_body(const std::vector<std::string>& models) {
  json data = json::array();
  for (const auto& m : models)
    data.push_back({{"id", m},
                    {"object", "model"},
                    {"status", "succeeded"},
                    {"created_at", kCreatedAt},
                    {"lifecycle_status", "generally-available"},
                    {"capabilities",
                     {{"chat_completion", true},
                      {"completion", false},
                      {"embeddings", false},
                      {"fine_tune", false},
                      {"inference", true}}}});
  return json{{"data", data}, {"object", "list"}}.dump();
}

std::string azure_deployment_body(const std::string& deployment) {
  // Each deployment serves the model of its own name (tests/mock/README.md, "Azure OpenAI").
  return json{{"id", deployment},
              {"model", deployment},
              {"owner", "organization-owner"},
              {"status", "succeeded"},
              {"scale_settings", {{"scale_type", "standard"}}},
              {"created_at", kCreatedAt},
              {"updated_at", kCreatedAt},
              {"object", "deployment"}}
      .dump();
}

void handle_azure_chat(Shared& sh, const httplib::Request& req, httplib::Response& res,
                       const std::string& deployment) {
  Exchange ex(sh, Protocol::openai, req, res, true);
  ex.rec.model = recorded_name(deployment);
  // The route and the key are Azure's to check before the deployment sees anything.
  if (!check_version(ex) || !ex.check_auth()) return;
  if (!deployment_exists(sh, deployment))
    return ex.send_error(ex.error(ErrorKind::not_found, ex.context()));
  // The deployment names the model; a `model` in the body is optional and ignored. The
  // stats keep the body's own fields as sent.
  json body = json::parse(req.body, nullptr, false);
  std::optional<json> sent_model;
  if (body.is_object()) {
    if (body.contains("model")) sent_model = body["model"];
    body["model"] = deployment;
  }
  auto parsed = parse_chat(Protocol::openai, body.is_object() ? body.dump() : req.body);
  if (auto* bad = std::get_if<std::string>(&parsed)) {
    ErrorContext ctx = ex.context();
    ctx.message = *bad;
    return ex.send_error(ex.error(ErrorKind::bad_request, ctx));
  }
  ChatRequest cr = std::get<ChatRequest>(std::move(parsed));
  if (sent_model)
    cr.params["model"] = *sent_model;
  else
    cr.params.erase("model");
  ex.record_request(cr);
  serve_chat(ex, std::move(cr));
}

void handle_azure_listing(Shared& sh, const httplib::Request& req, httplib::Response& res,
                          const std::optional<std::string>& deployment) {
  Exchange ex(sh, Protocol::openai, req, res, true);
  ex.operation = deployment ? "Deployments_Get" : "Models_List";
  ex.rec.model = deployment ? recorded_name(*deployment) : std::string();
  if (!check_version(ex) || !ex.check_auth()) return;
  std::optional<std::string> body;
  if (!deployment)
    body = azure_models_body(sh.known_models());
  else if (deployment_exists(sh, *deployment))
    body = azure_deployment_body(*deployment);
  serve_listing(ex, std::move(body));
}

void handle_azure_no_route(Shared& sh, const httplib::Request& req, httplib::Response& res) {
  Exchange ex(sh, Protocol::openai, req, res, true);
  ex.send_error(ex.error(ErrorKind::no_route, ex.context()));
}

}  // namespace detour::mock
