#pragma once
// Plain-text tables for people: columns aligned with two spaces between them, the first row
// being the header. Cells are ASCII (detour's own words, names and numbers).
#include <string>
#include <vector>

namespace detour::io {

using TableRow = std::vector<std::string>;

// Every row ends with "\n"; trailing spaces are trimmed. Rows may be shorter than the header.
std::string render_table(const std::vector<TableRow>& rows);

}  // namespace detour::io
