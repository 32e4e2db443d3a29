// A streamed body in any of the three protocols (SSE events, or Gemini's JSON array): decoded
// into text, a finish, usage or an error, never a crash; the same whether it arrives whole or
// cut into pieces anywhere; and judged like any reply once it ends.
#include <cstdlib>
#include <string>

#include "engine/reply_check.hpp"
#include "fuzz_input.hpp"
#include "protocols.hpp"

using namespace detour;

namespace {

struct Decoded {
  std::string text;
  providers::StreamState state;
};

template <class Feed>
Decoded decode(const providers::Protocol& protocol, Feed&& feed_all) {
  Decoded out;
  auto decoder = protocol.make_stream_decoder();
  auto on_text = [&out](std::string_view piece) { out.text.append(piece); };
  feed_all([&](std::string_view bytes) { decoder->feed(bytes, on_text); });
  decoder->finish(on_text);
  out.state = decoder->state();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const providers::Protocol& protocol = fuzz::protocol_for(in.byte());
  const std::uint8_t cuts = in.byte();
  const std::string_view body = in.rest();

  const Decoded whole = decode(protocol, [&](auto feed) { feed(body); });
  const Decoded pieces = decode(protocol, [&](auto feed) { fuzz::in_pieces(body, cuts, feed); });
  if (whole.text != pieces.text) std::abort();
  if (whole.state.reply.content != pieces.state.reply.content) std::abort();
  if (whole.state.complete != pieces.state.complete) std::abort();
  if (whole.state.error.has_value() != pieces.state.error.has_value()) std::abort();

  const engine::ValidationRules rules{/*require_complete=*/true, /*schema=*/nullptr};
  const engine::ReplyCheck check = engine::check_stream_reply(protocol, whole.state, &rules);
  if (check.reply && check.error != engine::ErrorClass::none) std::abort();
  return 0;
}
