#pragma once
// The 64-bit key under which `detour batch` remembers a line's id (README, "`detour batch`":
// `--resume` skips ids already answered). Resume keeps one hash per answered id instead of the
// id itself, so a million ids take 8 MB however long the ids are. A hash collision between an
// answered id and an unanswered one would skip the latter; with 64 bits and a million ids the
// odds are about 3 in 100 million.
#include <cstdint>
#include <string_view>

namespace detour::batch {

// 64-bit FNV-1a over the id's bytes. constexpr and stable across builds and machines: the
// hashes are never written anywhere, but both sides of a resume must agree within one run.
constexpr std::uint64_t id_hash(std::string_view id) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64-bit offset basis
  for (char c : id) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;  // FNV-1a 64-bit prime
  }
  return hash;
}

}  // namespace detour::batch
