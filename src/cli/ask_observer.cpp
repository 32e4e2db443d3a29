#include "cli/ask_observer.hpp"

#include <cstdio>

namespace detour::cli {

void AskObserver::on_attempt_start(const config::ResolvedTarget& target, int number) {
  log_.verbose(2, "attempt " + std::to_string(number) + ": " + target.target.name() + ": sending",
               {{"event", "attempt_start"}, {"attempt", number}, {"target", target.target.name()}});
  numbers_[target.target.name()] = number;
}

void AskObserver::on_text(std::string_view text) {
  if (!print_live_ || text.empty()) return;
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  printed_ = true;
  last_char_ = text.back();
}

void AskObserver::on_attempt_end(const engine::AttemptRecord& a, std::string_view decision) {
  const bool ok = a.error == engine::ErrorClass::none;
  const bool skipped =
      a.error == engine::ErrorClass::skipped_open || a.error == engine::ErrorClass::skipped_budget;
  const std::string target = a.provider + "/" + a.model;
  const auto started = numbers_.find(target);
  const int number = started == numbers_.end() ? 0 : started->second;
  std::string line;
  if (skipped) {
    line = target + ": " + std::string(engine::to_string(a.error)) + " (" + a.message +
           "): " + std::string(decision);
  } else {
    std::string status = a.status ? std::to_string(*a.status) : "no reply";
    line = "attempt " + std::to_string(number) + ": " + target + ": " + status;
    if (!ok) line += " " + std::string(engine::to_string(a.error)) + " (" + a.message + ")";
    line += " in " + format_duration(a.latency);
    if (a.waited > Millis(0)) line += " after waiting " + format_duration(a.waited);
    line += ": " + std::string(decision);
  }
  log_.verbose(
      1, line,
      {{"event", skipped ? "skip" : "attempt"},
       {"attempt", number},
       {"target", target},
       {"status", a.status ? nlohmann::json(*a.status) : nlohmann::json(nullptr)},
       {"error", ok ? nlohmann::json(nullptr) : nlohmann::json(engine::to_string(a.error))},
       {"latency_ms", a.latency.count()},
       {"waited_ms", a.waited.count()},
       {"hedge", a.hedge},
       {"decision", decision}});
  if (!ok && a.printed_text && print_live_) {
    end_line();
    log_.warning("the stream from " + target +
                 " broke after its text was printed; the next answer follows in full");
  }
}

void AskObserver::on_decision(std::string_view what) {
  log_.verbose(1, what, {{"event", "decision"}, {"decision", what}});
}

void AskObserver::end_line() {
  if (printed_ && last_char_ != '\n') std::fputc('\n', stdout);
  last_char_ = '\n';
  std::fflush(stdout);
}

}  // namespace detour::cli
