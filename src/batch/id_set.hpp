#pragma once
// Sets of batch line ids kept as 64-bit hashes (docs/architecture.md, "Many calls on one
// loop": memory stays flat however long the input). A million ids cost 8 MB, where a set of
// strings would cost ten times that. Self-contained: the resume scan and the duplicate check
// both build on it.
//
// Two distinct ids with the same hash (about 1 in 3.7e7 for a whole million-id batch) are
// taken for the same id: `contains` answers yes for an id it never saw, so `--resume` would
// skip that one line as already answered, and the duplicate check would refuse the batch
// naming two lines whose ids differ. Neither can happen silently for equal ids.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace detour::batch {

// A 64-bit hash of an id: FNV-1a over the bytes, then a splitmix64 finaliser so that ids
// differing in one character spread over all 64 bits. Stable across runs and builds.
std::uint64_t hash_id(std::string_view id);

// Build with add(), then freeze() once; contains() is a binary search on the frozen set.
class IdSet {
 public:
  void add(std::string_view id) { hashes_.push_back(hash_id(id)); }
  void reserve(std::size_t n) { hashes_.reserve(n); }
  // Sorts, drops repeats and releases spare capacity. add() after freeze() needs another
  // freeze() before contains() is right again.
  void freeze();
  bool contains(std::string_view id) const;
  std::size_t size() const { return hashes_.size(); }  // distinct ids once frozen
  bool empty() const { return hashes_.empty(); }

 private:
  std::vector<std::uint64_t> hashes_;
};

}  // namespace detour::batch
