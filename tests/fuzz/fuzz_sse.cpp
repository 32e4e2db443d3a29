// The SSE framing on its own: any bytes give events and stray lines, never a crash, and the
// same ones however the body was cut (the spec's CR, LF and CRLF line ends included).
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "net/sse.hpp"

using namespace detour;

namespace {

std::vector<std::string> parse(std::string_view body, int cuts) {
  std::vector<std::string> seen;
  net::SseParser parser;
  auto on_event = [&seen](const net::SseEvent& e) {
    seen.push_back("event " + e.event + "\n" + e.data + "\n" + e.id);
  };
  auto on_line = [&seen](std::string_view line) { seen.push_back("line " + std::string(line)); };
  if (cuts < 0) {
    parser.feed(body, on_event, on_line);
  } else {
    fuzz::in_pieces(body, static_cast<std::uint8_t>(cuts),
                    [&](std::string_view piece) { parser.feed(piece, on_event, on_line); });
  }
  parser.finish(on_event, on_line);
  return seen;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint8_t cuts = in.byte();
  if (parse(in.rest(), -1) != parse(in.rest(), cuts)) std::abort();
  return 0;
}
