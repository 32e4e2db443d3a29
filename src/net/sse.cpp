#include "net/sse.hpp"

namespace detour::net {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

}  // namespace

void SseParser::feed(std::string_view bytes, const EventHandler& on_event,
                     const LineHandler& on_other_line) {
  while (!bytes.empty()) {
    // A "\r\n" split across two feeds: the '\r' already ended the line, so this '\n' ends
    // nothing. Remembering it across calls is what makes byte-by-byte feeding give the same
    // events as one piece.
    if (after_cr_) {
      after_cr_ = false;
      if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
        continue;
      }
    }
    size_t end = bytes.find_first_of("\r\n");
    std::string_view piece = bytes.substr(0, end);
    if (!line_overflow_) {
      size_t room = kMaxLineBytes - line_.size();
      if (piece.size() > room) {
        line_.append(piece.substr(0, room));
        line_overflow_ = true;
      } else {
        line_.append(piece);
      }
    }
    if (end == std::string_view::npos) return;  // the line goes on in the next feed
    after_cr_ = bytes[end] == '\r';
    bytes.remove_prefix(end + 1);
    process_line(line_, on_event, on_other_line);
    line_.clear();
    line_overflow_ = false;
  }
}

void SseParser::finish(const EventHandler& on_event, const LineHandler& on_other_line) {
  if (!line_.empty()) {
    process_line(line_, on_event, on_other_line);
    line_.clear();
  }
  line_overflow_ = false;
  after_cr_ = false;
  dispatch(on_event);
}

void SseParser::process_line(std::string_view line, const EventHandler& on_event,
                             const LineHandler& on_other_line) {
  if (at_start_) {
    at_start_ = false;
    if (line.substr(0, kBom.size()) == kBom) line.remove_prefix(kBom.size());
  }
  if (line.empty()) {
    dispatch(on_event);
    return;
  }
  // Comments: keep-alives such as ": keep-alive" (DeepSeek) or ": OPENROUTER PROCESSING".
  if (line.front() == ':') return;

  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }

  if (field == "data") {
    if (has_data_) pending_.data.push_back('\n');
    pending_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    pending_.event.assign(value);
  } else if (field == "id") {
    pending_.id.assign(value);
  } else if (field == "retry") {
    // Reconnection delay for EventSource clients; detour never reconnects a stream.
  } else if (on_other_line) {
    on_other_line(line);
  }
}

void SseParser::dispatch(const EventHandler& on_event) {
  // The spec drops an event without data; an `event:` line alone is kept too so that a
  // named event with no payload (rare, but harmless) is not silently lost.
  if (has_data_ || !pending_.event.empty()) {
    if (on_event) on_event(pending_);
  }
  pending_ = SseEvent{};
  has_data_ = false;
}

}  // namespace detour::net
