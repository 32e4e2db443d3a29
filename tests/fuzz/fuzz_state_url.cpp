// --state URLs: a place to keep the state or a usage error, never a crash; and an error never
// repeats a URL that carries credentials ("scheme://user:password@host") as it was written.
#include <cstdlib>
#include <string>

#include "core/error.hpp"
#include "fuzz_input.hpp"
#include "state/store.hpp"

using namespace detour;

namespace {

// The length of the "user:password" part, 0 when there is none.
std::size_t userinfo_size(const std::string& url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return 0;
  const auto authority = scheme_end + 3;
  const auto at = url.rfind('@', url.find_first_of("/?#", authority));
  return at == std::string::npos || at < authority ? 0 : at - authority;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::string url(in.rest());
  try {
    (void)state::parse_state_url(url);
  } catch (const UsageError& e) {
    if (userinfo_size(url) > 3 && std::string(e.what()).find(url) != std::string::npos) {
      std::abort();
    }
  }
  return 0;
}
