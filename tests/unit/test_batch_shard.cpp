// `detour batch --shard K/N` (src/batch/shard.hpp): parsing K/N, and which lines a shard takes.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "batch/id_set.hpp"
#include "batch/shard.hpp"

using detour::batch::parse_shard;
using detour::batch::Shard;
using detour::batch::shard_of;

TEST_CASE("--shard: K/N is parsed, and anything else is refused saying why") {
  struct Case {
    const char* text;
    bool ok;
    std::uint32_t index, count;
    const char* error;
  };
  const Case cases[] = {
      {"1/4", true, 1, 4, ""},
      {"4/4", true, 4, 4, ""},
      {"1/1", true, 1, 1, ""},
      {"65536/65536", true, 65536, 65536, ""},
      {"0/4", false, 0, 0, "K must be between 1 and N (4); shards count from 1"},
      {"5/4", false, 0, 0, "K must be between 1 and N (4); shards count from 1"},
      {"1/0", false, 0, 0, "N must be between 1 and 65536"},
      {"1/65537", false, 0, 0, "N must be between 1 and 65536"},
      {"4", false, 0, 0, "expected K/N, for example 1/4 (this machine's shard K of N)"},
      {"", false, 0, 0, "expected K/N, for example 1/4 (this machine's shard K of N)"},
      {"a/4", false, 0, 0, "expected K/N with K and N whole numbers, for example 1/4"},
      {"1/4x", false, 0, 0, "expected K/N with K and N whole numbers, for example 1/4"},
      {"-1/4", false, 0, 0, "expected K/N with K and N whole numbers, for example 1/4"},
      {"1//4", false, 0, 0, "expected K/N with K and N whole numbers, for example 1/4"},
      {" 1/4", false, 0, 0, "expected K/N with K and N whole numbers, for example 1/4"},
      {"99999999999/4", false, 0, 0, "expected K/N with K and N whole numbers, for example 1/4"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    std::string error;
    const auto shard = parse_shard(c.text, error);
    CHECK(shard.has_value() == c.ok);
    if (shard) {
      CHECK(shard->index == c.index);
      CHECK(shard->count == c.count);
    } else {
      CHECK(error == c.error);
    }
  }
}

TEST_CASE("--shard: each id is in exactly one shard, and the shards are about even") {
  constexpr std::uint32_t kShards = 4;
  constexpr std::uint32_t kIds = 20000;
  std::map<std::uint32_t, std::uint32_t> per_shard;
  for (std::uint32_t i = 0; i < kIds; ++i) {
    const std::string id = "req-" + std::to_string(i);
    int holders = 0;
    for (std::uint32_t k = 1; k <= kShards; ++k)
      holders += Shard{k, kShards}.holds(id) ? 1 : 0;
    CHECK(holders == 1);
    ++per_shard[shard_of(id, kShards)];
  }
  REQUIRE(per_shard.size() == kShards);
  for (const auto& [shard, n] : per_shard) {
    CAPTURE(shard);
    CHECK(n > kIds / kShards * 9 / 10);
    CHECK(n < kIds / kShards * 11 / 10);
  }
  // One shard of one is every line.
  CHECK(Shard{1, 1}.holds("anything"));
}

TEST_CASE("--shard: a line's shard is fixed by its id, the same on every machine and release") {
  // Machines of one fleet may run different builds: the shard must come from a hash defined
  // here (FNV-1a and a splitmix64 finaliser, batch/id_set.hpp), never from std::hash. These
  // values pin it; a change to hash_id would split a fleet's input differently mid-run.
  struct Case {
    const char* id;
    std::uint64_t hash;
    std::uint32_t of4, of3;
  };
  const Case cases[] = {
      {"q0", 18081024409085127718ull, 3, 2},        {"q1", 5263896526582756136ull, 1, 3},
      {"q2", 3413949465540180615ull, 4, 1},         {"7", 8857979822077535623ull, 4, 2},
      {"custom-42", 12523672823731462865ull, 2, 3},
  };
  for (const Case& c : cases) {
    CAPTURE(c.id);
    CHECK(detour::batch::hash_id(c.id) == c.hash);
    CHECK(shard_of(c.id, 4) == c.of4);
    CHECK(shard_of(c.id, 3) == c.of3);
  }
}
