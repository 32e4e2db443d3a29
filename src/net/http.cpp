#include "net/http.hpp"

namespace detour::net {

std::optional<std::string_view> find_header(const Headers& headers, std::string_view lower_name) {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return std::string_view(value);
  }
  return std::nullopt;
}

std::string_view to_string(TransportStatus status) {
  switch (status) {
    case TransportStatus::ok:
      return "ok";
    case TransportStatus::connect_failed:
      return "connection refused";
    case TransportStatus::dns_failed:
      return "DNS lookup failed";
    case TransportStatus::tls_failed:
      return "TLS handshake failed";
    case TransportStatus::connect_timeout:
      return "connect timeout";
    case TransportStatus::first_byte_timeout:
      return "no response in time";
    case TransportStatus::timeout:
      return "timeout";
    case TransportStatus::connection_reset:
      return "connection reset";
    case TransportStatus::cancelled:
      return "cancelled";
    case TransportStatus::other:
      return "transport error";
  }
  return "transport error";
}

}  // namespace detour::net
