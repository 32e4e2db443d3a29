// A whole reply as a provider (or a proxy in front of one) may send it: any status, any
// headers, any body, in any of the three protocols. It is classified (an answer or an error
// class with a message), never a crash; and each protocol's reply, error and model-list
// parsers take the body on their own too.
#include <chrono>
#include <cstdlib>

#include "engine/reply_check.hpp"
#include "fuzz_input.hpp"
#include "net/curl_util.hpp"
#include "protocols.hpp"

using namespace detour;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const providers::Protocol& protocol = fuzz::protocol_for(in.byte());
  // Statuses cluster where the decisions are (2xx, 4xx, 5xx) but reach every value.
  static constexpr int kStatuses[] = {200, 201, 204, 400, 401, 403, 404, 408, 409, 413,
                                      422, 429, 500, 502, 503, 504, 529, 0,   100, 999};
  const std::uint8_t pick = in.byte();
  net::HttpResponse response;
  response.status = pick < 200 ? kStatuses[pick % 20] : pick;
  // Header lines up to an empty line, then the body.
  for (;;) {
    const std::string_view line = in.until('\n');
    if (line.empty()) break;
    if (auto header = net::curl_detail::parse_header_line(line)) {
      response.headers.push_back(std::move(*header));
    }
  }
  response.body = std::string(in.rest());

  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  const providers::RateLimitInfo limits =
      providers::parse_rate_limit_headers(response.headers, now);
  const engine::ValidationRules rules{/*require_complete=*/true, /*schema=*/nullptr};
  const engine::ReplyCheck check =
      engine::check_response(protocol, response, limits, response.body, nullptr, &rules);
  // An answer is never also an error, and a failure always says why.
  if (check.reply && check.error != engine::ErrorClass::none) std::abort();
  if (!check.reply && check.error == engine::ErrorClass::none) std::abort();

  (void)protocol.parse_reply(response.body);
  (void)protocol.parse_error(response.status, response.body);
  (void)protocol.parse_models(response.body);
  return 0;
}
