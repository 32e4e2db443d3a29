#include "batch/input_scan.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "batch/id_set.hpp"
#include "batch/input_line.hpp"

namespace detour::batch {

std::string describe(const DuplicateId& duplicate) {
  return "duplicate id " + nlohmann::json(duplicate.id).dump() + " on lines " +
         std::to_string(duplicate.first_line) + " and " + std::to_string(duplicate.second_line);
}

void DuplicateFinder::add(std::string_view id) {
  hashes_.push_back(hash_id(id));
}

bool DuplicateFinder::needs_recheck() {
  if (!finished_) {
    finished_ = true;
    std::sort(hashes_.begin(), hashes_.end());
    // Keep one copy of each hash that occurs more than once, in place.
    std::size_t kept = 0;
    for (std::size_t i = 0; i + 1 < hashes_.size();) {
      if (hashes_[i] != hashes_[i + 1]) {
        ++i;
        continue;
      }
      hashes_[kept++] = hashes_[i];
      const std::uint64_t h = hashes_[i];
      while (i < hashes_.size() && hashes_[i] == h)
        ++i;
    }
    hashes_.resize(kept);
    hashes_.shrink_to_fit();
    first_lines_.assign(kept, 0);
  }
  return !hashes_.empty();
}

std::optional<DuplicateId> DuplicateFinder::recheck(std::string_view id, std::uint64_t line_no) {
  const auto it = std::lower_bound(hashes_.begin(), hashes_.end(), hash_id(id));
  if (it == hashes_.end() || *it != hash_id(id)) return std::nullopt;
  std::uint64_t& first = first_lines_[static_cast<std::size_t>(it - hashes_.begin())];
  if (first == 0) {
    first = line_no;
    return std::nullopt;
  }
  return DuplicateId{std::string(id), first, line_no};
}

std::optional<DuplicateId> find_duplicate_id(const IdStream& ids) {
  DuplicateFinder finder;
  ids([&](std::string_view id, std::uint64_t) {
    finder.add(id);
    return true;
  });
  if (!finder.needs_recheck()) return std::nullopt;
  std::optional<DuplicateId> found;
  ids([&](std::string_view id, std::uint64_t line_no) {
    found = finder.recheck(id, line_no);
    return !found;
  });
  return found;
}

InputScan scan_input(InputSource& source, const Shard* shard) {
  InputScan scan;
  bool first_pass = true;
  const IdStream ids = [&](const IdVisitor& visit) {
    if (!first_pass) source.rewind();
    InputLine line;
    while (source.next(line)) {
      if (first_pass) scan.lines = line.number;
      if (!line.too_long && is_blank(line.text)) continue;
      const std::string id =
          line.too_long ? std::to_string(line.number) : line_id(line.text, line.number);
      if (first_pass && (!shard || shard->holds(id))) ++scan.requests;
      if (!visit(id, line.number)) break;
    }
    first_pass = false;
  };
  scan.duplicate = find_duplicate_id(ids);
  source.rewind();
  return scan;
}

}  // namespace detour::batch
