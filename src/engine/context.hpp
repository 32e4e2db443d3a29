#pragma once
// Context windows: estimating a request's size before sending it, and --truncate. Pure.
#include <cstdint>
#include <string_view>

#include "providers/types.hpp"

namespace detour::engine {

// A conservative token estimate for text: one token per 3 bytes, rounded up. Real tokenizers
// average about 4 bytes per token on English; estimating high means a request we let through
// fits, and --truncate leaves room rather than overflowing.
std::int64_t estimate_tokens(std::string_view text);

// Estimate for a whole request's input: system prompt and every message, plus a small
// per-message overhead (role markers) of 4 tokens each.
std::int64_t estimate_input_tokens(const providers::ChatRequest& request);

struct TruncateResult {
  int dropped_messages = 0;   // whole messages removed, oldest first
  bool cut_last = false;      // the last message itself was shortened (its start removed)
  std::int64_t estimate = 0;  // input estimate after truncation
  bool fits = false;          // estimate + reserved output <= window
};

// --truncate: makes the request fit `window` tokens, leaving room for the answer
// (request.max_tokens, else `default_output`). Drops the oldest non-system messages first,
// never the last one; if the last message alone is still too large, removes the start of its
// text (keeping the end, which is usually the question) at a UTF-8 boundary. The system
// prompt is never touched; when it alone does not fit, fits is false. Messages with role
// "system" count as part of the system prompt and are never dropped. When the request cannot be
// made to fit without emptying the last message, it is left unchanged (fits false, estimate as
// given) so the error reports its real size.
TruncateResult truncate_to_fit(providers::ChatRequest& request, std::int64_t window,
                               std::int64_t default_output);

}  // namespace detour::engine
