#pragma once
// Streaming the `detour batch` input one physical line at a time (README, "detour batch":
// memory stays flat however long the file). A line is never held beyond the line limit, and
// the whole input can be read more than once, also from a pipe: the duplicate-id check reads
// it before anything is sent, the run reads it again.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace detour::batch {

// Longest input line accepted, in bytes without its line ending (README, "detour batch").
inline constexpr std::size_t kMaxLineBytes = 10 * 1024 * 1024;

struct InputLine {
  std::uint64_t number = 0;  // 1-based physical line number; blank lines count too
  std::string_view text;     // without "\n" or "\r\n"; valid until the next read
  bool too_long = false;     // longer than the limit: text is empty, the bytes were skipped
};

// Splits a byte stream into lines. Lines end in "\n" or "\r\n"; the last may have no ending.
// Pure: the bytes come from `read`, so tests feed it strings in pieces of any size.
class LineReader {
 public:
  // Fills up to `capacity` bytes of `buffer`, returns how many; 0 means end of input.
  // Errors are thrown and pass through next().
  using ReadFn = std::function<std::size_t(char* buffer, std::size_t capacity)>;

  explicit LineReader(ReadFn read, std::size_t max_line_bytes = kMaxLineBytes,
                      std::size_t chunk_bytes = 64 * 1024);

  // The next line, or false at the end of the input. An over-long line is read through to
  // its newline without being kept (at most max_line_bytes + 1 bytes are ever held).
  bool next(InputLine& line);

  // Starts again at line 1 with a new source of bytes (the caller has rewound them).
  void restart(ReadFn read);

 private:
  bool fill();

  ReadFn read_;
  std::size_t max_line_bytes_;
  std::vector<char> chunk_;
  std::size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  std::string line_;
  std::uint64_t number_ = 0;
};

// The input of one batch: a file, or stdin for "-". Read it with next(); rewind() starts
// again at line 1, as many times as needed. A regular file is sought back; anything else
// (a pipe, a FIFO, a terminal) is copied as it is read into a temporary file that is
// unlinked at once, and later passes read that copy, so memory stays flat and nothing is
// left on disk however detour ends.
class InputSource {
 public:
  explicit InputSource(std::size_t max_line_bytes = kMaxLineBytes);
  ~InputSource();
  InputSource(const InputSource&) = delete;
  InputSource& operator=(const InputSource&) = delete;

  // Opens PATH, or stdin for "-". Returns an empty string on success, else a message naming
  // the input ("data.jsonl: No such file or directory").
  std::string open(const std::string& path);
  // Reads from `fd`, named `name` in messages; closes it at the end when `owned`. What open()
  // does after opening; tests hand it a pipe.
  std::string open_fd(int fd, std::string name, bool owned);

  // The next line of this pass, false at its end. Throws detour::UsageError naming the input
  // when it cannot be read (or its temporary copy cannot be written).
  bool next(InputLine& line) { return reader_.next(line); }

  // Starts the next pass at line 1. A pass over a pipe that stopped early first copies the
  // rest of it. Throws detour::UsageError as next() does.
  void rewind();

  const std::string& name() const { return name_; }
  bool spooled() const { return spool_fd_ >= 0; }

 private:
  std::size_t read_input(char* buffer, std::size_t capacity);
  std::size_t read_spool(char* buffer, std::size_t capacity);
  void close_all();
  [[noreturn]] void fail(const std::string& what, int error) const;

  std::string name_;
  int fd_ = -1;
  bool owned_ = false;
  long long start_offset_ = 0;  // where a regular file was when opened (stdin may be mid-file)
  int spool_fd_ = -1;           // the unlinked copy of a pipe, or -1
  std::string spool_dir_;
  bool input_done_ = false;  // every byte of a pipe has been copied to the spool
  bool from_spool_ = false;  // this pass reads the copy
  LineReader reader_;
};

}  // namespace detour::batch
