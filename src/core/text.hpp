#pragma once
// Small text helpers several layers need (header names, configured names).
#include <cctype>
#include <string_view>

namespace detour {

// ASCII case-insensitive equality: HTTP header names, host names.
inline bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// The value of one hexadecimal digit (either case), -1 for any other character: %-escapes in
// URLs and JSON pointers.
inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A header name that carries a credential, whatever a provider calls it: Authorization,
// Proxy-Authorization, api-key, x-api-key, x-goog-api-key, x-portkey-api-key, cookies. Matching
// the telling parts catches the next provider's invention too.
inline bool names_a_credential(std::string_view header_name) {
  for (std::string_view part : {"auth", "key", "token", "secret", "cookie"}) {
    if (header_name.size() < part.size()) continue;
    for (std::size_t at = 0; at + part.size() <= header_name.size(); ++at) {
      if (equals_ignoring_case(header_name.substr(at, part.size()), part)) return true;
    }
  }
  return false;
}

}  // namespace detour
