#include "batch/shard.hpp"

#include <charconv>

#include "batch/id_set.hpp"

namespace detour::batch {

namespace {

// A fleet larger than this is not one JSONL file's job; the bound keeps K and N readable.
constexpr std::uint32_t kMaxShards = 65536;

std::optional<std::uint32_t> parse_number(std::string_view text) {
  std::uint32_t value = 0;
  const char* end = text.data() + text.size();
  const auto [at, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || at != end) return std::nullopt;
  return value;
}

}  // namespace

std::uint32_t shard_of(std::string_view id, std::uint32_t count) {
  return static_cast<std::uint32_t>(hash_id(id) % count) + 1;
}

bool Shard::holds(std::string_view id) const {
  return shard_of(id, count) == index;
}

std::optional<Shard> parse_shard(std::string_view text, std::string& error) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    error = "expected K/N, for example 1/4 (this machine's shard K of N)";
    return std::nullopt;
  }
  const auto index = parse_number(text.substr(0, slash));
  const auto count = parse_number(text.substr(slash + 1));
  if (!index || !count) {
    error = "expected K/N with K and N whole numbers, for example 1/4";
    return std::nullopt;
  }
  if (*count < 1 || *count > kMaxShards) {
    error = "N must be between 1 and " + std::to_string(kMaxShards);
    return std::nullopt;
  }
  if (*index < 1 || *index > *count) {
    error = "K must be between 1 and N (" + std::to_string(*count) + "); shards count from 1";
    return std::nullopt;
  }
  return Shard{*index, *count};
}

}  // namespace detour::batch
