#pragma once
// What `detour ask` shows while a call runs: streamed text on stdout, and on stderr one line
// per attempt and decision (-v) and the warnings a user must see.
#include <map>
#include <string>
#include <string_view>

#include "engine/call.hpp"
#include "io/log.hpp"

namespace detour::cli {

class AskObserver final : public engine::CallObserver {
 public:
  AskObserver(io::Logger& log, bool print_live) : log_(log), print_live_(print_live) {}

  void on_attempt_start(const config::ResolvedTarget& target, int number) override;
  void on_text(std::string_view text) override;
  void on_attempt_end(const engine::AttemptRecord& attempt, std::string_view decision) override;
  void on_decision(std::string_view what) override;

  // Ends the live output with a newline so the shell prompt starts on its own line.
  void end_line();
  bool printed() const { return printed_; }

 private:
  io::Logger& log_;
  bool print_live_;
  bool printed_ = false;
  char last_char_ = '\n';
  // The number each target's attempt in flight was started as: with a hedge two attempts are
  // in flight, and each end line must carry its own number, not the latest one's.
  std::map<std::string, int> numbers_;
};

}  // namespace detour::cli
