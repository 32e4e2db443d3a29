#pragma once
// Puts finished lines in input order (README, "`detour batch`": output in input order unless
// --unordered; memory stays flat). Lines finish in any order; each is written as soon as every
// earlier line has been, and until then it is held here. What is held is bounded: the runner
// admits line `seq` only while has_room(seq), so at most `window` lines are in flight or held
// behind a slow head line, and admission pauses rather than memory growing.
//
// Sequence numbers are 0, 1, 2, ... over the lines this run writes, in input order: requests,
// bad_input and never-sent lines alike. Lines a --resume kept from an earlier run are already
// in the file and get none; the rest are appended in the input order of what remains.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "batch/output_file.hpp"

namespace detour::batch {

class OrderedWriter {
 public:
  // `window` >= 1. The runner's concurrency should be below it, or the window, not -j, bounds
  // the requests in flight.
  OrderedWriter(LineSink& sink, std::size_t window, bool unordered);

  // Line `seq` is done: writes it, in ordered mode with every held line that now follows in
  // order. Throws std::logic_error for a seq finished twice or outside the window (a runner
  // bug), and whatever the sink throws (OutputError): the line that failed stays unwritten and
  // `written()` does not count it.
  void finish(std::uint64_t seq, std::string line);

  // Whether line `next_seq` may be admitted now: false while it lies `window` or more past the
  // first unwritten line. Always true with --unordered, where nothing is held.
  bool has_room(std::uint64_t next_seq) const;

  std::uint64_t written() const { return written_; }
  std::size_t held() const { return held_; }
  // The first line not yet written (ordered mode).
  std::uint64_t head() const { return head_; }
  std::size_t window() const { return window_; }

 private:
  LineSink& sink_;
  std::size_t window_;
  bool unordered_;
  std::uint64_t head_ = 0;
  std::uint64_t written_ = 0;
  std::size_t held_ = 0;
  // slots_[i] holds line head_ + i once it finished; never longer than window_.
  std::deque<std::optional<std::string>> slots_;
};

}  // namespace detour::batch
