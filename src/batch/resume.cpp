#include "batch/resume.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "batch/id_set.hpp"
#include "batch/output_file.hpp"
#include "batch/output_line.hpp"
#include "core/error.hpp"

namespace detour::batch {

namespace {

// Reads a file line by line in fixed-size chunks, up to `limit` bytes, so that scanning a
// large output takes one line's memory at a time.
class LineReader {
 public:
  LineReader(int fd, const std::string& name, std::uint64_t limit)
      : fd_(fd), name_(name), left_(limit), buffer_(64 * 1024) {}

  // The next line without its '\n'; `complete` says whether it had one. False at the end.
  bool next(std::string& line, bool& complete) {
    line.clear();
    bool any = false;
    for (;;) {
      if (pos_ == end_ && !fill()) {
        complete = false;
        return any;
      }
      const char* start = buffer_.data() + pos_;
      const auto* newline = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
      if (newline != nullptr) {
        const std::size_t length = static_cast<std::size_t>(newline - start);
        line.append(start, length);
        pos_ += length + 1;
        offset_ += length + 1;
        complete = true;
        return true;
      }
      line.append(start, end_ - pos_);
      offset_ += end_ - pos_;
      pos_ = end_;
      any = true;
    }
  }

  // Bytes consumed through the end of the line last returned.
  std::uint64_t offset() const { return offset_; }

 private:
  bool fill() {
    if (left_ == 0) return false;
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(buffer_.size(), left_));
    ssize_t got;
    do {
      got = ::read(fd_, buffer_.data(), want);
    } while (got < 0 && errno == EINTR);
    if (got < 0) throw OutputError(file_failure(name_, errno));
    if (got == 0) return false;
    left_ -= static_cast<std::uint64_t>(got);
    pos_ = 0;
    end_ = static_cast<std::size_t>(got);
    return true;
  }

  int fd_;
  const std::string& name_;
  std::uint64_t left_;
  std::vector<char> buffer_;
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
  std::uint64_t offset_ = 0;
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// The directory entry of a rename is only durable once the directory itself is synced.
void sync_directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() >= 0) (void)::fsync(fd.get());
}

// What the first pass over the file found.
struct Scan {
  std::uint64_t good_end = 0;  // end of the last line worth keeping (torn tail excluded)
  std::uint64_t failed = 0;
  std::vector<std::uint64_t> duplicated;  // hashes answered more than once; sorted
};

Scan scan(int fd, const std::string& path, std::uint64_t size, ResumeState& state) {
  Scan found;
  LineReader reader(fd, path, size);
  std::string line;
  bool complete = false;
  std::uint64_t number = 0;
  std::uint64_t bad_line = 0;  // a line that is not output; acceptable only as the last one
  while (reader.next(line, complete)) {
    ++number;
    if (bad_line != 0) {
      throw UsageError(path + ": line " + std::to_string(bad_line) +
                       " is not a line of detour batch output; --resume only appends to the "
                       "output of an earlier `detour batch -o " +
                       path + "`");
    }
    // A line without its newline was cut mid-write, whatever it looks like.
    const LineVerdict verdict =
        complete ? judge_output_line(line) : LineVerdict{LineVerdict::Kind::foreign, {}};
    if (verdict.kind == LineVerdict::Kind::foreign) {
      bad_line = number;
      continue;
    }
    found.good_end = reader.offset();
    if (verdict.kind == LineVerdict::Kind::answered) {
      state.answered.push_back(hash_id(verdict.id_key));
    } else {
      ++found.failed;
    }
  }
  state.torn_bytes = size - found.good_end;

  auto& ids = state.answered;
  std::sort(ids.begin(), ids.end());
  for (std::size_t i = 1; i < ids.size(); ++i) {
    if (ids[i] == ids[i - 1] && (found.duplicated.empty() || found.duplicated.back() != ids[i])) {
      found.duplicated.push_back(ids[i]);
    }
  }
  const std::size_t answered_lines = ids.size();
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  ids.shrink_to_fit();
  state.dropped_duplicates = answered_lines - ids.size();
  state.dropped_failed = found.failed;
  state.kept_lines = ids.size();
  return found;
}

// Writes the answered lines, each id's first only, to FILE.tmp and renames it over FILE.
void rewrite(int fd, const std::string& path, const Scan& found, mode_t mode) {
  const std::string tmp = path + ".tmp";
  Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (out.get() < 0) throw OutputError(file_failure(tmp, errno));
  auto fail = [&](int error) {
    ::unlink(tmp.c_str());
    throw OutputError(file_failure(tmp, error));
  };
  if (::fchmod(out.get(), mode & 07777) != 0) fail(errno);
  if (::lseek(fd, 0, SEEK_SET) != 0) throw OutputError(file_failure(path, errno));

  const int out_fd = out.get();
  auto write_some = [out_fd](const char* data, std::size_t size) {
    return ::write(out_fd, data, size);
  };
  std::vector<bool> duplicate_written(found.duplicated.size(), false);
  std::string pending;
  LineReader reader(fd, path, found.good_end);
  std::string line;
  bool complete = false;
  while (reader.next(line, complete)) {
    const LineVerdict verdict = judge_output_line(line);
    if (verdict.kind != LineVerdict::Kind::answered) continue;
    const std::uint64_t hash = hash_id(verdict.id_key);
    const auto dup = std::lower_bound(found.duplicated.begin(), found.duplicated.end(), hash);
    if (dup != found.duplicated.end() && *dup == hash) {
      const auto index = static_cast<std::size_t>(dup - found.duplicated.begin());
      if (duplicate_written[index]) continue;
      duplicate_written[index] = true;
    }
    pending.append(line);
    pending.push_back('\n');
    // The temporary file is only renamed into place once complete: it may be written in
    // large pieces.
    if (pending.size() >= (1u << 20)) {
      if (int error = write_fully(write_some, pending); error != 0) fail(error);
      pending.clear();
    }
  }
  if (int error = write_fully(write_some, pending); error != 0) fail(error);
  if (::fsync(out_fd) != 0) fail(errno);
  if (::close(out.release()) != 0) fail(errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail(errno);
  sync_directory_of(path);
}

}  // namespace

bool ResumeState::answered_ok(std::string_view id_key) const {
  return std::binary_search(answered.begin(), answered.end(), hash_id(id_key));
}

LineVerdict judge_output_line(std::string_view line) {
  LineVerdict verdict;
  const auto json = nlohmann::json::parse(line, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return verdict;
  // OpenAI's format: an answer has no error and the HTTP reply of a completion.
  if (json.contains("custom_id") && json.contains("response") && json.contains("error")) {
    const auto& response = json["response"];
    const bool answered = json["error"].is_null() && response.is_object() &&
                          response.contains("status_code") && response["status_code"] == 200;
    verdict.kind = answered ? LineVerdict::Kind::answered : LineVerdict::Kind::failed;
    verdict.id_key = id_key(json["custom_id"]);
    return verdict;
  }
  if (json.contains("id") && json.contains("ok") && json["ok"].is_boolean()) {
    verdict.kind = json["ok"].get<bool>() ? LineVerdict::Kind::answered : LineVerdict::Kind::failed;
    verdict.id_key = id_key(json["id"]);
  }
  return verdict;
}

ResumeState prepare_resume(const std::string& path) {
  ResumeState state;
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return state;
    if (errno == EISDIR) throw UsageError(path + ": --resume needs a regular file to read back");
    throw OutputError(file_failure(path, errno));
  }
  state.existed = true;
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw OutputError(file_failure(path, errno));
  if (!S_ISREG(info.st_mode)) {
    throw UsageError(path + ": --resume needs a regular file to read back");
  }
  const Scan found = scan(fd.get(), path, static_cast<std::uint64_t>(info.st_size), state);
  if (state.dropped_failed > 0 || state.dropped_duplicates > 0) {
    rewrite(fd.get(), path, found, info.st_mode);
    state.rewritten = true;
  } else if (state.torn_bytes > 0) {
    if (::ftruncate(fd.get(), static_cast<off_t>(found.good_end)) != 0 || ::fsync(fd.get()) != 0) {
      throw OutputError(file_failure(path, errno));
    }
  }
  return state;
}

BatchOutput open_batch_output(const std::optional<std::string>& path, bool resume) {
  if (!path) {
    if (resume) throw UsageError("--resume needs -o FILE: it reads back what FILE holds");
    return {OutputFile::standard_output(), {}};
  }
  if (!resume) return {OutputFile::open(*path, OutputFile::Mode::truncate), {}};
  ResumeState state = prepare_resume(*path);
  return {OutputFile::open(*path, OutputFile::Mode::append), std::move(state)};
}

}  // namespace detour::batch
