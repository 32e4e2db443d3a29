// Azure OpenAI (README, "Providers"): OpenAI's chat completions behind a resource endpoint, one
// deployment per model. The wire differs from OpenAI's only in the URL, the api-version
// parameter and the key header; replies, streams and error bodies are OpenAI's (Azure's
// content-filter rejections are 400s with error.code "content_filter").
#include "providers/json_util.hpp"
#include "providers/protocols.hpp"

namespace detour::providers {

namespace {

// API versions sort as text ("2024-10-21", "2025-01-01-preview"). From 2024-09-01 on (the
// 2024-09-01-preview and the 2024-10-21 GA), Azure takes max_completion_tokens, which its
// o-series deployments require, and stream_options.include_usage; older versions know
// neither and refuse the request.
constexpr std::string_view kFirstWithNewFields = "2024-09-01";

class AzureProtocol final : public Protocol {
 public:
  std::string_view name() const override { return "azure"; }
  std::string_view reply_family() const override { return "openai"; }

  net::HttpRequest build_request(const Endpoint& endpoint,
                                 const ChatRequest& request) const override {
    const bool recent = endpoint.api_version >= kFirstWithNewFields;
    nlohmann::json body = openai_chat_body(request, recent);
    body.erase("model");  // the deployment in the URL names the model
    if (!recent) body.erase("stream_options");

    net::HttpRequest http;
    http.method = "POST";
    http.url = detail::trim_base(endpoint.base_url) + "/openai/deployments/" +
               url_encode(request.model) +
               "/chat/completions?api-version=" + url_encode(endpoint.api_version);
    http.headers = auth_headers(endpoint);
    http.headers.emplace_back("content-type", "application/json");
    http.headers.emplace_back("accept", request.stream ? "text/event-stream" : "application/json");
    http.body = detail::dump(body);
    return http;
  }

  ReplyResult parse_reply(std::string_view body) const override {
    return openai_protocol().parse_reply(body);
  }
  ProviderError parse_error(int status, std::string_view body) const override {
    return openai_protocol().parse_error(status, body);
  }
  std::unique_ptr<StreamDecoder> make_stream_decoder() const override {
    return openai_protocol().make_stream_decoder();
  }

  // The resource's models (not its deployments, which only Azure's management API lists):
  // proves the endpoint and the key without spending tokens.
  net::HttpRequest build_models_request(const Endpoint& endpoint) const override {
    return detail::json_get(detail::trim_base(endpoint.base_url) +
                                "/openai/models?api-version=" + url_encode(endpoint.api_version),
                            auth_headers(endpoint));
  }
  std::vector<std::string> parse_models(std::string_view body) const override {
    return openai_protocol().parse_models(body);
  }
  bool models_list_targets() const override { return false; }

 private:
  // An api-key, or a Microsoft Entra ID token from api_key_cmd as a bearer token.
  static net::Headers auth_headers(const Endpoint& endpoint) {
    net::Headers headers;
    if (endpoint.api_key.empty()) return headers;
    if (endpoint.key_is_token) {
      headers.emplace_back("authorization", "Bearer " + endpoint.api_key);
    } else {
      headers.emplace_back("api-key", endpoint.api_key);
    }
    return headers;
  }
};

}  // namespace

const Protocol& azure_protocol() {
  static const AzureProtocol protocol;
  return protocol;
}

}  // namespace detour::providers
