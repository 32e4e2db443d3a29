#include "engine/context.hpp"

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace detour::engine {

namespace {

constexpr std::int64_t kBytesPerToken = 3;
constexpr std::int64_t kPerMessageOverhead = 4;

std::int64_t message_tokens(const providers::Message& m) {
  return estimate_tokens(m.content) + kPerMessageOverhead;
}

bool is_continuation_byte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// Where to start keeping `text` so that at most `max_bytes` of its end remain, moved forward to
// the start of a character so no multi-byte sequence is split. A UTF-8 character has at most
// three continuation bytes; stopping after three keeps invalid input (a long run of stray
// continuation bytes) from being eaten whole.
std::size_t keep_from(const std::string& text, std::size_t max_bytes) {
  if (max_bytes >= text.size()) return 0;
  std::size_t start = text.size() - max_bytes;
  for (int i = 0; i < 3 && start < text.size() && is_continuation_byte(text[start]); ++i) {
    ++start;
  }
  return start;
}

}  // namespace

std::int64_t estimate_tokens(std::string_view text) {
  const auto bytes = static_cast<std::int64_t>(text.size());
  return (bytes + kBytesPerToken - 1) / kBytesPerToken;
}

std::int64_t estimate_input_tokens(const providers::ChatRequest& request) {
  std::int64_t total = estimate_tokens(request.system);
  for (const auto& m : request.messages)
    total += message_tokens(m);
  return total;
}

TruncateResult truncate_to_fit(providers::ChatRequest& request, std::int64_t window,
                               std::int64_t default_output) {
  // Clamped so that window - reserve cannot overflow, whatever the configuration says.
  const std::int64_t reserve =
      std::max<std::int64_t>(0, request.max_tokens.value_or(default_output));
  const std::int64_t budget = std::max<std::int64_t>(0, window) - reserve;

  TruncateResult result;
  result.estimate = estimate_input_tokens(request);
  if (result.estimate <= budget) {
    result.fits = true;
    return result;
  }
  auto& messages = request.messages;
  if (messages.empty()) return result;  // only the system prompt, which is never touched

  // Plan first and change the request only once it is known to fit: when it cannot, the caller
  // reports the error, and a request stripped for nothing would only make that report confusing.
  const std::size_t last = messages.size() - 1;
  std::vector<bool> drop(messages.size(), false);
  std::int64_t total = result.estimate;
  int dropped = 0;
  for (std::size_t i = 0; i < last && total > budget; ++i) {
    // A system-role message is part of the system prompt (Anthropic's adapter moves it there).
    if (messages[i].role == "system") continue;
    drop[i] = true;
    total -= message_tokens(messages[i]);
    ++dropped;
  }

  std::size_t cut_at = 0;
  if (total > budget) {
    const std::int64_t others = total - message_tokens(messages[last]);
    const std::int64_t allowed_tokens = budget - others - kPerMessageOverhead;
    // An emptied last message would send a request with no question in it: that is not fitting.
    if (allowed_tokens <= 0) return result;
    const std::string& content = messages[last].content;
    // allowed_tokens < estimate_tokens(content) here, so this product cannot overflow.
    cut_at = keep_from(content, static_cast<std::size_t>(allowed_tokens * kBytesPerToken));
    if (cut_at >= content.size()) return result;  // the last character alone is too large
  }

  if (cut_at > 0) {
    messages[last].content.erase(0, cut_at);
    result.cut_last = true;
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (drop[i]) continue;
    if (kept != i) messages[kept] = std::move(messages[i]);
    ++kept;
  }
  messages.resize(kept);

  result.dropped_messages = dropped;
  result.estimate = estimate_input_tokens(request);
  result.fits = result.estimate <= budget;
  return result;
}

}  // namespace detour::engine
