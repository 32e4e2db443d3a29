#pragma once
// Plain HTTP request/response values shared by the transport, the providers and the engine.
// No libcurl types here: only src/net/curl_* may include curl.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/duration.hpp"

namespace detour::net {

// Header names are stored lower-cased so lookups need no case folding.
using Headers = std::vector<std::pair<std::string, std::string>>;

// The first value of a header, by lower-case name.
std::optional<std::string_view> find_header(const Headers& headers, std::string_view lower_name);

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  Headers headers;  // as sent; names may be any case
  std::string body;
  Millis connect_timeout{10000};
  Millis first_byte_timeout{0};  // 0: none; time from start until response headers arrive
  Millis total_timeout{0};       // 0: none; the whole exchange
  std::string ca_bundle;         // PEM file of the CAs to trust; empty: the system's
  std::string ca_path;           // directory of hashed CA files, when no ca_bundle
  // Values never to be shown (-v, error messages), whatever header carries them: keys, header
  // values taken from the environment. Headers with telling names are hidden anyway.
  std::vector<std::string> secrets;
};

// How the exchange ended at the transport level, before any HTTP meaning.
enum class TransportStatus {
  ok,              // a complete HTTP response arrived (any status code)
  connect_failed,  // refused, unreachable
  dns_failed,
  tls_failed,
  connect_timeout,
  first_byte_timeout,  // connected, but no response headers in time
  timeout,             // total timeout
  connection_reset,    // reset or closed mid-response (partial body)
  cancelled,           // cancel() or the handler's on_body returned false
  other,
};

std::string_view to_string(TransportStatus status);

struct HttpResponse {
  TransportStatus transport = TransportStatus::ok;
  std::string transport_message;  // curl's words, for -v; never contains credentials
  int status = 0;                 // 0 when no response headers arrived
  Headers headers;                // names lower-cased
  std::string body;               // empty when the handler consumed the body via on_body
  Millis first_byte_latency{0};
  Millis total_latency{0};
};

}  // namespace detour::net
