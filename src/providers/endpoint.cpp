// The parts of a request that belong to the provider rather than the protocol: extra headers,
// query parameters, CA settings (README, "Providers").
#include <cctype>

#include "core/text.hpp"

#include "providers/types.hpp"

namespace detour::providers {

namespace {}  // namespace

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

net::HttpRequest with_endpoint_extras(net::HttpRequest request, const Endpoint& endpoint) {
  // A gateway may need its own Authorization, or an api-key the protocol would not send: the
  // configured header replaces the protocol's of the same name.
  for (const auto& configured : endpoint.headers) {
    std::erase_if(request.headers, [&](const auto& header) {
      return equals_ignoring_case(header.first, configured.first);
    });
  }
  for (const auto& header : endpoint.headers)
    request.headers.push_back(header);
  for (const auto& [name, value] : endpoint.query) {
    const std::size_t fragment = request.url.find('#');
    std::string param = url_encode(name) + "=" + url_encode(value);
    const bool has_query = request.url.find('?') < fragment;
    request.url.insert(fragment == std::string::npos ? request.url.size() : fragment,
                       (has_query ? "&" : "?") + param);
  }
  request.ca_bundle = endpoint.ca_bundle;
  request.ca_path = endpoint.ca_path;
  request.secrets = endpoint.secrets;
  if (!endpoint.api_key.empty()) request.secrets.push_back(endpoint.api_key);
  return request;
}

net::HttpRequest Protocol::chat_request(const Endpoint& endpoint,
                                        const ChatRequest& request) const {
  return with_endpoint_extras(build_request(endpoint, request), endpoint);
}

net::HttpRequest Protocol::models_request(const Endpoint& endpoint) const {
  return with_endpoint_extras(build_models_request(endpoint), endpoint);
}

}  // namespace detour::providers
