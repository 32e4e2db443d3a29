#pragma once
// `detour batch --shard K/N` (README, "Running a fleet"): a machine of a fleet takes only the
// lines whose id falls in shard K of N, so N machines split one JSONL file without talking to
// each other. A line's shard depends on its id alone -- hash_id (id_set.hpp, stable across
// runs, builds and machines) modulo N -- so each shard's output resumes on its own, and the
// N outputs together hold every id exactly once.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace detour::batch {

struct Shard {
  std::uint32_t index = 1;  // K, from 1
  std::uint32_t count = 1;  // N

  // Whether the line with this id is this shard's.
  bool holds(std::string_view id) const;
};

// The shard a line with this id belongs to, from 1 to `count`.
std::uint32_t shard_of(std::string_view id, std::uint32_t count);

// Parses "K/N" (1 <= K <= N <= 65536). On failure returns nullopt and sets `error` to why,
// without the flag's name.
std::optional<Shard> parse_shard(std::string_view text, std::string& error);

}  // namespace detour::batch
