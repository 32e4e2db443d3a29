#pragma once
// Azure OpenAI's data-plane inference API, as detour-mock serves it (tests/mock/README.md,
// "Azure OpenAI"). The wire format is OpenAI's chat completions; what differs is the URL
// (/openai/deployments/{deployment-id}/...?api-version=...), the credentials (api-key or an
// Entra ID bearer token), the error bodies of the errors Azure answers itself, the limit
// headers, and the content-filter annotations on every reply (Microsoft Learn, "Azure OpenAI
// in Azure AI Foundry Models REST API reference" and "Content filtering").
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <httplib.h>

#include "errors.hpp"
#include "limits.hpp"
#include "protocols.hpp"

namespace detour::mock {

class Shared;

// Whether the mock accepts an api-version: YYYY-MM-DD or YYYY-MM-DD-preview, a real calendar
// date, on or after 2023-05-15 (the first GA version with chat completions).
bool is_supported_api_version(std::string_view version);

// The error of `kind` as Azure sends it. Azure answers auth, routing, deployment, content
// filter and rate limits itself, with {"error":{"code":...,"message":...}} bodies; every other
// error comes from the model behind the deployment in OpenAI's shape (`operation` and
// `api_version` are named by the 429's message).
ErrorReply azure_error(ErrorKind kind, const ErrorContext& ctx, const std::string& api_version,
                       const std::string& operation);

// x-ratelimit-remaining-requests / -tokens of the enabled limits: Azure sends no limit or
// reset headers.
std::vector<std::pair<std::string, std::string>> azure_ratelimit_headers(const LimitSnapshot& snap);

// The apim-request-id of a request: a GUID, as Azure API Management writes it.
std::string azure_request_guid(const std::string& id);

// An OpenAI reply body with Azure's annotations: prompt_filter_results, and per choice
// content_filter_results (a filtered category when the finish reason is content_filter).
std::string azure_reply_body(const std::string& openai_body);
// An OpenAI stream with Azure's annotations: a first chunk with no choices carrying
// prompt_filter_results, then content_filter_results on every chunk that has a choice.
std::vector<SseEvent> azure_stream_events(std::vector<SseEvent> openai_events);

// GET /openai/models: the resource's base models. GET /openai/deployments/{id}: one deployment.
std::string azure_models_body(const std::vector<std::string>& models);
std::string azure_deployment_body(const std::string& deployment);

// Route handlers (azure.cpp).
void handle_azure_chat(Shared& sh, const httplib::Request& req, httplib::Response& res,
                       const std::string& deployment);
// The model listing, or one deployment when `deployment` is set.
void handle_azure_listing(Shared& sh, const httplib::Request& req, httplib::Response& res,
                          const std::optional<std::string>& deployment);
// Any other path under /openai/: Azure's 404 "Resource not found".
void handle_azure_no_route(Shared& sh, const httplib::Request& req, httplib::Response& res);

}  // namespace detour::mock
