#include "io/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>

#include "core/duration.hpp"

namespace detour::io {

namespace {

constexpr auto kBarInterval = std::chrono::milliseconds(200);
constexpr auto kPlainInterval = std::chrono::seconds(5);

std::string format_rate(double per_second) {
  char buffer[32];
  if (per_second >= 100) {
    std::snprintf(buffer, sizeof buffer, "%.0f/s", per_second);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f/s", per_second);
  }
  return buffer;
}

// Whole seconds: a running ETA in milliseconds only flickers.
std::string format_eta(double seconds) {
  const auto whole = static_cast<std::int64_t>(std::ceil(seconds));
  return format_duration(std::chrono::seconds(whole));
}

std::size_t terminal_width(std::FILE* out) {
  winsize size{};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace

std::optional<ProgressMode> parse_progress_mode(std::string_view text) {
  if (text == "bar") return ProgressMode::bar;
  if (text == "plain") return ProgressMode::plain;
  if (text == "none") return ProgressMode::none;
  return std::nullopt;
}

std::string group_thousands(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string progress_text(const ProgressCounts& c, std::chrono::milliseconds elapsed) {
  std::string text = group_thousands(c.done);
  if (c.total > 0) {
    text += "/" + group_thousands(c.total);
    const auto percent =
        static_cast<int>(100.0 * static_cast<double>(c.done) / static_cast<double>(c.total));
    text += " " + std::to_string(percent) + "%";
  }
  const double seconds = static_cast<double>(elapsed.count()) / 1000.0;
  if (c.done > 0 && seconds > 0) {
    const double rate = static_cast<double>(c.done) / seconds;
    text += " " + format_rate(rate);
    if (c.total > c.done) {
      text += " ETA " + format_eta(static_cast<double>(c.total - c.done) / rate);
    }
  }
  text += " | ok " + group_thousands(c.ok) + " | failed " + group_thousands(c.failed);
  text += " | 429s " + group_thousands(c.rate_limited);
  text += " | failovers " + group_thousands(c.failovers);
  return text;
}

ProgressReporter::ProgressReporter(ProgressMode mode, std::FILE* out, bool out_is_tty)
    : mode_(mode == ProgressMode::bar && !out_is_tty ? ProgressMode::none : mode), out_(out) {}

ProgressReporter::~ProgressReporter() {
  clear();
}

void ProgressReporter::update(const ProgressCounts& counts, Clock::time_point now) {
  if (mode_ == ProgressMode::none) return;
  if (!started_) started_ = now;
  const auto interval = mode_ == ProgressMode::bar
                            ? std::chrono::duration_cast<Clock::duration>(kBarInterval)
                            : std::chrono::duration_cast<Clock::duration>(kPlainInterval);
  // The first drawing waits one interval too: a batch over in a blink shows only its summary.
  if (!drawn_) drawn_ = now;
  if (now - *drawn_ < interval) return;
  drawn_ = now;
  std::string text =
      progress_text(counts, std::chrono::duration_cast<std::chrono::milliseconds>(now - *started_));
  if (mode_ == ProgressMode::bar) {
    // One character short of the width: a line that fills the terminal wraps on some of them,
    // and \r then redraws only its second half.
    const std::size_t width = terminal_width(out_);
    if (width > 1 && text.size() > width - 1) text.resize(width - 1);
    std::fprintf(out_, "\r%s\x1b[K", text.c_str());
    line_shown_ = true;
  } else {
    std::fprintf(out_, "detour: batch: %s\n", text.c_str());
  }
  std::fflush(out_);
}

void ProgressReporter::clear() {
  if (!line_shown_) return;
  std::fputs("\r\x1b[K", out_);
  std::fflush(out_);
  line_shown_ = false;
}

}  // namespace detour::io
