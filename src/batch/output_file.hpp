#pragma once
// Where `detour batch` writes its lines (README, "`detour batch`"): stdout or `-o FILE`.
// Crash safety rests on two rules: every line reaches the kernel in one write(2) (no stdio
// buffer holding half a line), so a process killed at any moment leaves at most one torn last
// line, which `--resume` cuts off (batch/resume.hpp); and a write that fails ends the batch with
// an error naming the file instead of dropping the line.
#include <functional>
#include <string>
#include <string_view>

#include <sys/types.h>

#include "core/error.hpp"

namespace detour::batch {

// A write or open that failed: exit 1 with a message naming the file.
struct OutputError : DetourError {
  explicit OutputError(std::string message) : DetourError(ExitCode::failed, std::move(message)) {}
};

// Takes whole lines, each ending in '\n'.
class LineSink {
 public:
  virtual ~LineSink() = default;
  virtual void write_line(std::string_view line) = 0;
};

class OutputFile final : public LineSink {
 public:
  enum class Mode { truncate, append };

  // Opens `path` for writing: `truncate` empties it, `append` adds to its end (--resume). A new
  // file is created with mode 0600 (the answers may be private); an existing file keeps its
  // mode. Throws OutputError naming the file.
  static OutputFile open(const std::string& path, Mode mode);
  // File descriptor 1, named "stdout" in errors; never closed.
  static OutputFile standard_output();
  // Takes ownership of an open descriptor (tests: pipes, /dev/full).
  static OutputFile adopt(int fd, std::string name);

  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&& other) noexcept;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() override;

  // Writes the line whole (retrying interrupted and partial writes); throws OutputError
  // ("FILE: No space left on device") when the kernel refuses it.
  void write_line(std::string_view line) override;
  // fsync; pipes and terminals, which cannot be synced, are not an error.
  void sync();
  // Closes the file, reporting an error close() returns (NFS may report a failed write only
  // there). Idempotent; the destructor closes silently.
  void close();

  const std::string& name() const { return name_; }
  int fd() const { return fd_; }

 private:
  OutputFile(int fd, std::string name, bool owned);
  int fd_ = -1;
  std::string name_;
  bool owned_ = false;
};

// The write loop under write_line, with the write(2) call passed in so tests can interrupt it
// and cut it short: calls `write_some` until all of `data` is written, again after EINTR and
// after a partial write. Returns 0, or the errno of the write that failed.
using WriteSome = std::function<ssize_t(const char* data, std::size_t size)>;
int write_fully(const WriteSome& write_some, std::string_view data);

// "NAME: <strerror(error)>", the form of every output-file failure message.
std::string file_failure(const std::string& name, int error);

}  // namespace detour::batch
