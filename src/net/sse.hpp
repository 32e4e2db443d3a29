#pragma once
// An incremental Server-Sent Events parser (the WHATWG "event stream" rules), fed the body in
// whatever pieces the transport delivers, down to single bytes. Providers' stream decoders sit
// on top of it; it knows nothing about JSON.
#include <functional>
#include <string>
#include <string_view>

namespace detour::net {

struct SseEvent {
  std::string event;  // the `event:` name; empty when none was given ("message" in the spec)
  std::string data;   // every `data:` line of the event, joined with '\n'
  std::string id;     // the `id:` field, when given
};

class SseParser {
 public:
  using EventHandler = std::function<void(const SseEvent&)>;
  // Receives whole lines that are not SSE at all (neither a comment nor a known field), as
  // they were sent. The spec says to ignore them; Gemini sends errors that way (raw JSON with
  // no `data:` prefix), so its decoder needs to see them.
  using LineHandler = std::function<void(std::string_view)>;

  // Feeds raw bytes; dispatches every event completed by a blank line.
  void feed(std::string_view bytes, const EventHandler& on_event,
            const LineHandler& on_other_line = {});
  // The body ended: a last line without a line ending and a last event without its blank
  // line are processed as if they had been terminated.
  void finish(const EventHandler& on_event, const LineHandler& on_other_line = {});

  // Lines longer than this are cut (the rest of the line is dropped) so a hostile or broken
  // server cannot make the parser hold an unbounded buffer.
  static constexpr size_t kMaxLineBytes = 16 * 1024 * 1024;

 private:
  void process_line(std::string_view line, const EventHandler& on_event,
                    const LineHandler& on_other_line);
  void dispatch(const EventHandler& on_event);

  std::string line_;            // the current, unterminated line
  bool line_overflow_ = false;  // the current line exceeded kMaxLineBytes
  bool after_cr_ = false;       // the last byte was '\r': a '\n' right after it ends nothing
  bool at_start_ = true;        // nothing seen yet: a UTF-8 BOM may still be skipped
  SseEvent pending_;            // the event being assembled
  bool has_data_ = false;       // pending_ has at least one data line
};

}  // namespace detour::net
