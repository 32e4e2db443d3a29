#pragma once
// `detour batch --resume` (README, "`detour batch`": killing detour at any moment and resuming
// yields every id exactly once). Before a resumed run appends to OUTPUT, prepare_resume puts
// the file back into a state that holds each id at most once, and only as an answer:
//
// - a torn last line (no trailing newline, or not JSON: the process died mid-write, or the
//   file system lost the tail) is cut off;
// - lines answered `ok: false` are removed, since their ids are sent again and appended, and
//   a second line for an id already answered is removed too;
// - the ids answered ok are returned as 64-bit hashes (batch/id_set.hpp, hash_id), sorted: 8 bytes
// an
//   id, however long the ids or the answers.
//
// Removing lines rewrites the file through FILE.tmp (same mode, fsynced, renamed over FILE), so
// a crash during the rewrite leaves either the old file or the new one, and the resumed run
// that follows sees a valid file either way. A file with nothing to remove is left as it is
// (apart from a torn tail): resuming a large finished batch copies nothing.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "batch/output_file.hpp"

namespace detour::batch {

struct ResumeState {
  bool existed = false;                  // false: no OUTPUT yet, the run starts from scratch
  std::vector<std::uint64_t> answered;   // hash_id(id_key) of every id answered ok; sorted, unique
  std::uint64_t kept_lines = 0;          // lines left in OUTPUT, one per answered id
  std::uint64_t dropped_failed = 0;      // ok:false lines removed
  std::uint64_t dropped_duplicates = 0;  // later lines for an id already answered, removed
  std::uint64_t torn_bytes = 0;          // bytes of a torn last line cut off
  bool rewritten = false;                // OUTPUT was compacted through FILE.tmp

  // Whether the id (its id_key text) was answered ok and must not be sent again.
  bool answered_ok(std::string_view id_key) const;
};

// Prepares OUTPUT for a resumed run as described above; the runner then opens it with
// OutputFile::Mode::append. A file that does not exist is a fresh start. Throws UsageError
// when a line before the last is not a detour or OpenAI batch output line (OUTPUT is some other
// file; nothing is changed), OutputError when the file cannot be read or rewritten.
ResumeState prepare_resume(const std::string& path);

// What one output line says, in either output format: detour's (`id`, `ok`) or OpenAI's
// (`custom_id`, `response`, `error`; answered when `error` is null and the status is 200).
struct LineVerdict {
  enum class Kind { answered, failed, foreign };
  Kind kind = Kind::foreign;  // foreign: not JSON, or not a batch output line
  std::string id_key;         // batch::id_key of its id; empty when foreign
};
LineVerdict judge_output_line(std::string_view line);

// Where a batch writes: stdout without `-o`; with it, FILE emptied, or with --resume FILE
// prepared as above and opened to append. --resume without -o is a UsageError.
struct BatchOutput {
  OutputFile file;
  ResumeState resume;
};
BatchOutput open_batch_output(const std::optional<std::string>& path, bool resume);

}  // namespace detour::batch
