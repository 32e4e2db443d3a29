#pragma once
// The pass over the whole `detour batch` input before anything is sent (README, "detour
// batch": duplicate ids are reported before anything is sent, exit 2): counts the lines and
// finds the first repeated id, in memory that stays flat (8 bytes per line).
//
// How: the first pass keeps only the 64-bit hash of each id (id_set.hpp). Sorted, equal
// neighbours show which hashes may repeat; usually none do and one pass was enough. Otherwise
// a second pass over the same ids watches only those hashes and reports the first line whose
// id was already seen, with the text of its id (which it has in hand) and both line numbers.
// Two different ids with the same hash would be reported as a duplicate (id_set.hpp).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "batch/line_reader.hpp"
#include "batch/shard.hpp"

namespace detour::batch {

struct DuplicateId {
  std::string id;
  std::uint64_t first_line = 0;
  std::uint64_t second_line = 0;
};

// "duplicate id \"a1\" on lines 3 and 7"
std::string describe(const DuplicateId& duplicate);

// The two-pass search, for callers that hold their own stream of ids.
class DuplicateFinder {
 public:
  // First pass: every id, in input order.
  void add(std::string_view id);
  // Ends the first pass. False: no id repeats, done. True: feed every (id, line) again, in
  // the same order, to recheck() until it returns the duplicate.
  bool needs_recheck();
  std::optional<DuplicateId> recheck(std::string_view id, std::uint64_t line_no);

 private:
  std::vector<std::uint64_t> hashes_;       // first pass; then the hashes seen more than once
  std::vector<std::uint64_t> first_lines_;  // second pass: where each of those was first seen
  bool finished_ = false;
};

// Calls the visitor with each (id, line number) of the input in order; stops when it
// returns false. May be called more than once and must give the same ids each time.
using IdVisitor = std::function<bool(std::string_view id, std::uint64_t line_no)>;
using IdStream = std::function<void(const IdVisitor&)>;

// The first line whose id an earlier line already had, or nullopt. Replays `ids` a second
// time only when some id may repeat.
std::optional<DuplicateId> find_duplicate_id(const IdStream& ids);

struct InputScan {
  std::uint64_t lines = 0;     // physical lines, blank ones included
  std::uint64_t requests = 0;  // non-blank lines (of the shard, if one is given): one output
                               // line each, bad ones too
  std::optional<DuplicateId> duplicate;
};

// Reads `source` from its start (line_id for every non-blank line, the line number for a
// too-long one) and leaves it rewound to line 1 for the run. Ids repeated anywhere in the
// file are found whatever the shard. Throws as InputSource does.
InputScan scan_input(InputSource& source, const Shard* shard = nullptr);

}  // namespace detour::batch
