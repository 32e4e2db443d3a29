// detour-mock's side of a chat request, in each protocol: any body is a request or the
// provider-worded 400 message, never a crash (the mock is a tool users point things at). A
// request then gets every reply the mock can give it: each content fault, the plain body, the
// stream, and the error body of the 400 itself.
#include <cstdlib>
#include <variant>

#include "../mock/errors.hpp"
#include "../mock/protocols.hpp"
#include "fuzz_input.hpp"

using namespace detour::mock;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  detour::fuzz::Input in(data, size);
  const auto protocol = static_cast<Protocol>(in.byte() % 3);
  const std::uint8_t flags = in.byte();
  GeminiTarget gemini;
  gemini.model = std::string(in.until('\n'));
  gemini.stream = (flags & 1) != 0;
  gemini.sse = (flags & 2) != 0;
  const std::string body(in.rest());

  auto parsed = parse_chat(protocol, body, gemini);
  if (auto* reason = std::get_if<std::string>(&parsed)) {
    if (reason->empty()) std::abort();  // a 400 always says why
    ErrorContext ctx;
    ctx.message = *reason;
    ctx.model = gemini.model;
    const ErrorReply reply = make_error(protocol, ErrorKind::bad_request, ctx);
    if (reply.status != 400) std::abort();
    return 0;
  }
  const ChatRequest& request = std::get<ChatRequest>(parsed);
  for (auto fault : {ContentFault::none, ContentFault::empty, ContentFault::refusal,
                     ContentFault::wrong_schema}) {
    Reply reply = make_reply(request, fault);
    (void)reply_body(request, reply, "fuzz-id");
    (void)stream_events(request, reply, "fuzz-id");
    cut_short(reply);
    (void)reply_body(request, reply, "fuzz-id");
  }
  return 0;
}
