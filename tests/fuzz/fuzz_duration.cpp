// Durations (flags, config values, Retry-After-like header values): a duration or nothing;
// and what format_duration prints for people parses back.
#include <cstdlib>

#include "core/duration.hpp"
#include "fuzz_input.hpp"

using namespace detour;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const auto parsed = parse_duration(in.rest());
  if (!parsed) return 0;
  if (parsed->count() < 0) std::abort();  // "nullopt when negative"
  const auto again = parse_duration(format_duration(*parsed));
  if (!again) std::abort();
  return 0;
}
