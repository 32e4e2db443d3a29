// Response headers as curl hands them over, one line at a time: the status line, then every
// rate-limit and retry header family (x-ratelimit-*, anthropic-ratelimit-*, retry-after-ms,
// retry-after in seconds or as an HTTP date, x-should-retry). Unparseable values are ignored,
// never fatal, and nothing they say is negative.
#include <chrono>
#include <cstdlib>

#include "fuzz_input.hpp"
#include "net/curl_util.hpp"
#include "providers/types.hpp"

using namespace detour;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  // Far from the epoch either way: dates in headers are read relative to now.
  const auto now = std::chrono::system_clock::time_point(
      std::chrono::seconds(1'000'000'000 + std::int64_t(in.byte()) * 10'000'000));
  (void)net::curl_detail::parse_status_line(in.until('\n'));
  net::Headers headers;
  while (!in.rest().empty()) {
    if (auto header = net::curl_detail::parse_header_line(in.until('\n'))) {
      headers.push_back(std::move(*header));
    }
  }
  const providers::RateLimitInfo info = providers::parse_rate_limit_headers(headers, now);
  if (info.retry_after && info.retry_after->count() < 0) std::abort();
  return 0;
}
