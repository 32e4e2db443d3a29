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

}  // namespace detour
