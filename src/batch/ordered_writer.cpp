#include "batch/ordered_writer.hpp"

#include <stdexcept>
#include <utility>

namespace detour::batch {

OrderedWriter::OrderedWriter(LineSink& sink, std::size_t window, bool unordered)
    : sink_(sink), window_(window), unordered_(unordered) {
  if (window_ == 0) throw std::logic_error("OrderedWriter: the window must hold one line");
}

bool OrderedWriter::has_room(std::uint64_t next_seq) const {
  if (unordered_) return true;
  return next_seq < head_ + window_;
}

void OrderedWriter::finish(std::uint64_t seq, std::string line) {
  if (unordered_) {
    sink_.write_line(line);
    ++written_;
    return;
  }
  if (seq < head_ || seq >= head_ + window_) {
    throw std::logic_error("OrderedWriter: line " + std::to_string(seq) +
                           " finished outside the window starting at " + std::to_string(head_));
  }
  const std::size_t index = static_cast<std::size_t>(seq - head_);
  if (slots_.size() <= index) slots_.resize(index + 1);
  if (slots_[index]) {
    throw std::logic_error("OrderedWriter: line " + std::to_string(seq) + " finished twice");
  }
  slots_[index] = std::move(line);
  ++held_;
  // Write from the head while it is ready; the head advances only once its write succeeded.
  while (!slots_.empty() && slots_.front()) {
    sink_.write_line(*slots_.front());
    slots_.pop_front();
    --held_;
    ++head_;
    ++written_;
  }
}

}  // namespace detour::batch
