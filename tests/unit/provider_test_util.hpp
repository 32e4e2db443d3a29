#pragma once
// Helpers for the protocol tests: header lookup, body parsing, and running a stream decoder
// over a body fed whole or in small pieces.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "providers/types.hpp"

namespace provider_test {

using detour::providers::Protocol;
using detour::providers::StreamState;

// A request header by lower-case name; "<absent>" when not sent.
inline std::string header(const detour::net::HttpRequest& request, std::string_view name) {
  auto value = detour::net::find_header(request.headers, name);
  return value ? std::string(*value) : std::string("<absent>");
}

inline nlohmann::json body_of(const detour::net::HttpRequest& request) {
  return nlohmann::json::parse(request.body);
}

struct StreamRun {
  StreamState state;
  std::string text;  // every on_text piece, concatenated in order
  size_t text_calls = 0;
};

// Feeds `body` in pieces of `piece` bytes (0: in one piece), then finish().
inline StreamRun run_stream(const Protocol& protocol, std::string_view body, size_t piece = 0) {
  auto decoder = protocol.make_stream_decoder();
  StreamRun run;
  auto on_text = [&](std::string_view text) {
    run.text.append(text);
    ++run.text_calls;
  };
  if (piece == 0) piece = body.size() + 1;
  for (size_t i = 0; i < body.size(); i += piece)
    decoder->feed(body.substr(i, piece), on_text);
  decoder->finish(on_text);
  run.state = decoder->state();
  return run;
}

// Byte-by-byte and in one piece must agree on everything the engine looks at.
inline void check_same(const StreamRun& a, const StreamRun& b) {
  CHECK(a.text == b.text);
  CHECK(a.text_calls == b.text_calls);
  CHECK(a.state.reply.content == b.state.reply.content);
  CHECK(a.state.reply.finish_reason == b.state.reply.finish_reason);
  CHECK(a.state.reply.served_model == b.state.reply.served_model);
  CHECK(a.state.reply.usage.input_tokens == b.state.reply.usage.input_tokens);
  CHECK(a.state.reply.usage.output_tokens == b.state.reply.usage.output_tokens);
  CHECK(a.state.complete == b.state.complete);
  CHECK(a.state.problem == b.state.problem);
  REQUIRE(a.state.error.has_value() == b.state.error.has_value());
  if (a.state.error) {
    CHECK(a.state.error->type == b.state.error->type);
    CHECK(a.state.error->code == b.state.error->code);
    CHECK(a.state.error->message == b.state.error->message);
  }
}

// Runs the body whole and byte by byte, checks they agree, returns the whole run.
inline StreamRun run_both_ways(const Protocol& protocol, std::string_view body) {
  StreamRun whole = run_stream(protocol, body);
  StreamRun bytes = run_stream(protocol, body, 1);
  check_same(whole, bytes);
  return whole;
}

}  // namespace provider_test
