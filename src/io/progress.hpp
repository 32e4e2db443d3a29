#pragma once
// A batch's progress on stderr (README, "detour batch"): one live line on a terminal, redrawn at
// most a few times a second and cleared at the end (`bar`); a line every few seconds for logs
// (`plain`); or nothing (`none`). The text is a pure function of the counts, so it is tested
// without a terminal or a clock.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace detour::io {

struct ProgressCounts {
  std::uint64_t total = 0;  // lines in the run (0: not known)
  std::uint64_t done = 0;   // lines written
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::uint64_t rate_limited = 0;  // 429s received
  std::uint64_t failovers = 0;     // lines answered by another target than their first
};

enum class ProgressMode { bar, plain, none };

// "bar", "plain", "none"; nullopt for anything else.
std::optional<ProgressMode> parse_progress_mode(std::string_view text);

// "1,234/10,000 12% 41.2/s ETA 3m32s | ok 1,200 | failed 34 | 429s 2 | failovers 5" (ASCII
// only, so that cutting it to the terminal width never splits a character).
// `elapsed` is the time since the first line was admitted; rate and ETA are left out until
// something is done.
std::string progress_text(const ProgressCounts& counts, std::chrono::milliseconds elapsed);

// "12,345" for 12345: long counts are read at a glance.
std::string group_thousands(std::uint64_t n);

class ProgressReporter {
 public:
  using Clock = std::chrono::steady_clock;
  // `mode` bar on something that is not a terminal falls back to none: redrawing with \r
  // into a log file would leave one garbled line.
  ProgressReporter(ProgressMode mode, std::FILE* out, bool out_is_tty);
  ~ProgressReporter();  // clears a live line left on the terminal
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // Draws when the last drawing is old enough (bar: 200 ms, plain: 5 s).
  void update(const ProgressCounts& counts, Clock::time_point now);
  // Clears the live line (bar); before anything else is written to the same terminal.
  void clear();
  ProgressMode mode() const { return mode_; }

 private:
  ProgressMode mode_;
  std::FILE* out_;
  std::optional<Clock::time_point> started_;
  std::optional<Clock::time_point> drawn_;
  bool line_shown_ = false;
};

}  // namespace detour::io
