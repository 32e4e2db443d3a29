#include "batch/id_set.hpp"

#include <algorithm>

namespace detour::batch {

std::uint64_t hash_id(std::string_view id) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a offset basis
  for (unsigned char c : id) {
    h ^= c;
    h *= 0x100000001b3ULL;  // FNV-1a prime
  }
  // splitmix64's finaliser: FNV-1a alone mixes the last bytes poorly into the high bits.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

void IdSet::freeze() {
  std::sort(hashes_.begin(), hashes_.end());
  hashes_.erase(std::unique(hashes_.begin(), hashes_.end()), hashes_.end());
  hashes_.shrink_to_fit();
}

bool IdSet::contains(std::string_view id) const {
  return std::binary_search(hashes_.begin(), hashes_.end(), hash_id(id));
}

}  // namespace detour::batch
