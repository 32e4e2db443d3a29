#include "batch/line_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.hpp"

namespace detour::batch {

LineReader::LineReader(ReadFn read, std::size_t max_line_bytes, std::size_t chunk_bytes)
    : read_(std::move(read)), max_line_bytes_(max_line_bytes), chunk_(chunk_bytes) {}

void LineReader::restart(ReadFn read) {
  read_ = std::move(read);
  pos_ = end_ = 0;
  eof_ = false;
  number_ = 0;
  line_.clear();
}

bool LineReader::fill() {
  if (eof_) return false;
  const std::size_t n = read_(chunk_.data(), chunk_.size());
  if (n == 0) {
    eof_ = true;
    return false;
  }
  pos_ = 0;
  end_ = n;
  return true;
}

bool LineReader::next(InputLine& line) {
  line_.clear();
  bool too_long = false;
  bool any_byte = false;  // at the end of the input, no byte after the last "\n" is no line
  while (true) {
    if (pos_ == end_ && !fill()) break;
    any_byte = true;
    const char* start = chunk_.data() + pos_;
    const auto* newline = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
    const std::size_t take = newline ? static_cast<std::size_t>(newline - start) : end_ - pos_;
    // One byte over the limit is kept so that a line of exactly the limit can still end in
    // "\r\n"; the check after the "\r" is dropped decides.
    if (!too_long && line_.size() + take > max_line_bytes_ + 1) {
      too_long = true;
      line_.clear();
    }
    if (!too_long) line_.append(start, take);
    pos_ += take;
    if (newline) {
      ++pos_;
      break;
    }
  }
  if (!any_byte) return false;
  ++number_;
  if (!too_long && !line_.empty() && line_.back() == '\r') line_.pop_back();
  if (line_.size() > max_line_bytes_) too_long = true;
  line.number = number_;
  line.too_long = too_long;
  line.text = too_long ? std::string_view() : std::string_view(line_);
  return true;
}

InputSource::InputSource(std::size_t max_line_bytes)
    : reader_([this](char* b, std::size_t n) { return read_input(b, n); }, max_line_bytes) {}

InputSource::~InputSource() {
  close_all();
}

void InputSource::close_all() {
  if (owned_ && fd_ >= 0) ::close(fd_);
  if (spool_fd_ >= 0) ::close(spool_fd_);
  fd_ = spool_fd_ = -1;
  owned_ = false;
}

std::string InputSource::open(const std::string& path) {
  if (path == "-") return open_fd(STDIN_FILENO, "stdin", false);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return path + ": " + std::strerror(errno);
  return open_fd(fd, path, true);
}

std::string InputSource::open_fd(int fd, std::string name, bool owned) {
  close_all();
  name_ = std::move(name);
  fd_ = fd;
  owned_ = owned;
  input_done_ = from_spool_ = false;
  reader_.restart([this](char* b, std::size_t n) { return read_input(b, n); });

  struct stat st {};
  if (::fstat(fd, &st) != 0) return name_ + ": " + std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return name_ + ": is a directory";
  if (S_ISREG(st.st_mode)) {
    const off_t offset = ::lseek(fd, 0, SEEK_CUR);
    if (offset >= 0) {
      start_offset_ = offset;
      return "";
    }
  }
  // Not seekable: keep a copy. $TMPDIR as mkstemp(3) users conventionally honour it.
  const char* tmpdir = std::getenv("TMPDIR");
  spool_dir_ = tmpdir && *tmpdir ? tmpdir : "/tmp";
  std::string path = spool_dir_ + "/detour-batch-XXXXXX";
  spool_fd_ = ::mkstemp(path.data());
  if (spool_fd_ < 0) {
    return name_ + ": cannot create a temporary copy in " + spool_dir_ + ": " +
           std::strerror(errno);
  }
  ::unlink(path.c_str());  // the copy lives only as long as the descriptor
  ::fcntl(spool_fd_, F_SETFD, FD_CLOEXEC);
  return "";
}

void InputSource::fail(const std::string& what, int error) const {
  throw UsageError(name_ + ": " + what + ": " + std::strerror(error));
}

std::size_t InputSource::read_spool(char* buffer, std::size_t capacity) {
  while (true) {
    const ssize_t n = ::read(spool_fd_, buffer, capacity);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) fail("cannot read the temporary copy", errno);
  }
}

std::size_t InputSource::read_input(char* buffer, std::size_t capacity) {
  if (from_spool_) return read_spool(buffer, capacity);
  if (input_done_) return 0;
  ssize_t n;
  do {
    n = ::read(fd_, buffer, capacity);
  } while (n < 0 && errno == EINTR);
  if (n < 0) fail("read error", errno);
  if (n == 0) input_done_ = true;
  if (spool_fd_ >= 0) {
    for (ssize_t written = 0; written < n;) {
      const ssize_t w = ::write(spool_fd_, buffer + written, static_cast<std::size_t>(n - written));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail("cannot write the temporary copy in " + spool_dir_, errno);
      written += w;
    }
  }
  return static_cast<std::size_t>(n);
}

void InputSource::rewind() {
  if (spool_fd_ >= 0) {
    // A pass that stopped early (the duplicate check found one) leaves the pipe unread.
    std::vector<char> rest(64 * 1024);
    while (!from_spool_ && read_input(rest.data(), rest.size()) > 0) {
    }
    from_spool_ = true;
    if (::lseek(spool_fd_, 0, SEEK_SET) < 0) fail("cannot rewind the temporary copy", errno);
  } else {
    if (::lseek(fd_, static_cast<off_t>(start_offset_), SEEK_SET) < 0)
      fail("cannot read it again", errno);
    input_done_ = false;
  }
  reader_.restart([this](char* b, std::size_t n) { return read_input(b, n); });
}

}  // namespace detour::batch
