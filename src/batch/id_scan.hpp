#pragma once
// The fast path of line_id (input_line.hpp). The duplicate check reads every id of the input
// before anything is sent, and nlohmann's parser reads ~100 MB/s; this scanner reads a line
// several times faster. It is only ever sure about lines nlohmann certainly parses the same
// way, and says "not sure" for everything else (any error, exponents, \u surrogates, escaped
// keys or ids, a BOM), which line_id then hands to nlohmann. So the ids it gives are always
// the ids parse_line gives: tests/unit/test_batch_input_ids.cpp checks them against each other
// on mutated lines.
#include <optional>
#include <string>
#include <string_view>

namespace detour::batch::detail {

struct ScannedId {
  // The line is a JSON object; `id` is its usable id (id rule of input_line.hpp), or empty
  // when it has none and the line number stands in.
  std::optional<std::string> id;
};

// nullopt: not sure, ask the real parser. `text` must be valid UTF-8.
std::optional<ScannedId> scan_line_id(std::string_view text);

}  // namespace detour::batch::detail
