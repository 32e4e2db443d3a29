#include "batch/output_file.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace detour::batch {

std::string file_failure(const std::string& name, int error) {
  return name + ": " + std::strerror(error);
}

int write_fully(const WriteSome& write_some, std::string_view data) {
  while (!data.empty()) {
    const ssize_t written = write_some(data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    // A write that took nothing would loop forever; POSIX only allows it for size 0.
    if (written == 0) return EIO;
    data.remove_prefix(static_cast<std::size_t>(written));
  }
  return 0;
}

OutputFile OutputFile::open(const std::string& path, Mode mode) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC;
  flags |= mode == Mode::append ? O_APPEND : O_TRUNC;
  // The mode only applies when the file is created (and the umask may narrow it further); an
  // existing file keeps the mode its owner gave it.
  int fd;
  do {
    fd = ::open(path.c_str(), flags, 0600);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw OutputError(file_failure(path, errno));
  return OutputFile(fd, path, true);
}

OutputFile OutputFile::standard_output() {
  return OutputFile(STDOUT_FILENO, "stdout", false);
}

OutputFile OutputFile::adopt(int fd, std::string name) {
  return OutputFile(fd, std::move(name), true);
}

OutputFile::OutputFile(int fd, std::string name, bool owned)
    : fd_(fd), name_(std::move(name)), owned_(owned) {}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      name_(std::move(other.name_)),
      owned_(std::exchange(other.owned_, false)) {}

OutputFile& OutputFile::operator=(OutputFile&& other) noexcept {
  if (this != &other) {
    if (owned_ && fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    name_ = std::move(other.name_);
    owned_ = std::exchange(other.owned_, false);
  }
  return *this;
}

OutputFile::~OutputFile() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

void OutputFile::write_line(std::string_view line) {
  if (fd_ < 0) throw OutputError(name_ + ": written after it was closed");
  const int fd = fd_;
  auto write_some = [fd](const char* data, std::size_t size) -> ssize_t {
    for (;;) {
      const ssize_t written = ::write(fd, data, size);
      if (written >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return written;
      // A non-blocking stdout inherited from the parent: wait until it takes more instead of
      // failing the batch on a full pipe.
      pollfd ready{fd, POLLOUT, 0};
      (void)::poll(&ready, 1, -1);
    }
  };
  const int error = write_fully(write_some, line);
  if (error != 0) throw OutputError(file_failure(name_, error));
}

void OutputFile::sync() {
  if (fd_ < 0) return;
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS && errno != ENOTSUP) {
    throw OutputError(file_failure(name_, errno));
  }
}

void OutputFile::close() {
  if (fd_ < 0) return;
  const int fd = std::exchange(fd_, -1);
  if (!owned_) return;
  // Linux closes the descriptor even when close() fails, EINTR included: never retry.
  if (::close(fd) != 0 && errno != EINTR) throw OutputError(file_failure(name_, errno));
}

}  // namespace detour::batch
