#pragma once
// What the fuzz targets share: taking an input apart. Each target is one file with libFuzzer's
// entry point (tests/fuzz/README.md); a target that needs a choice (which protocol, which
// status) takes it from the first bytes, so the fuzzer explores every choice with one corpus.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace detour::fuzz {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  // One byte, 0 once the input is used up.
  std::uint8_t byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }

  // Up to the next `separator` (dropped), or everything left.
  std::string_view until(char separator) {
    const auto at = rest_.find(separator);
    std::string_view piece = rest_.substr(0, at);
    rest_.remove_prefix(at == std::string_view::npos ? rest_.size() : at + 1);
    return piece;
  }

  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

// Feeds `text` to `feed` in pieces whose sizes follow `seed`: an incremental parser must give
// the same answer however the transport cut the body, down to one byte at a time.
template <class Feed>
void in_pieces(std::string_view text, std::uint8_t seed, Feed&& feed) {
  std::size_t step = seed % 17 + 1;
  while (!text.empty()) {
    const std::size_t n = step < text.size() ? step : text.size();
    feed(text.substr(0, n));
    text.remove_prefix(n);
    step = (step * 7 + seed) % 23 + 1;
  }
}

}  // namespace detour::fuzz
