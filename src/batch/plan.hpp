#pragma once
// From a parsed input line to the call that answers it (README, "detour batch"): the line's
// own fields over the command line's (`-s`, `--max-tokens`, `--option`, `--schema`, ...), and
// its target -- the line's `model`, else `-m`, else `[defaults] model` -- resolved once per
// distinct name. A name that resolves to nothing makes that line bad_input, not the batch.
#include <functional>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "batch/input_line.hpp"
#include "batch/runner.hpp"
#include "config/config.hpp"

namespace detour::batch {

// How far ahead a line may reserve a rate-limited slot (engine::CallSpec::reserve_ahead). The
// rest of the lines in flight wait unreserved, so a one-off `detour ask` of another process
// sharing the limit gets a slot within about this long plus one interval, not behind all of
// them (tests/bench/run P8); far enough ahead that the batch still sends on every slot.
inline constexpr std::chrono::milliseconds kReserveAhead{200};

class LinePlanner {
 public:
  // Resolves -m style names into a chain ready to call (min_tier applied); throws
  // detour::ConfigError naming what is wrong. An empty list means the batch's default.
  using ResolveChain = std::function<config::Chain(const std::vector<std::string>& names)>;

  // `base` holds the command line's request options; its messages and chain are ignored.
  // `default_models` are the -m names (empty: [defaults] model).
  LinePlanner(engine::CallSpec base, std::vector<std::string> default_models, ResolveChain resolve);

  // The call for a line, or the message that makes it bad_input ("line 7: ...").
  std::variant<PlannedCall, std::string> plan(LineRequest& line);

 private:
  // The chain for a line's model name ("" for the default), or why there is none.
  const std::variant<config::Chain, std::string>& chain_for(const std::string& model);

  engine::CallSpec base_;
  std::vector<std::string> default_models_;
  ResolveChain resolve_;
  std::map<std::string, std::variant<config::Chain, std::string>> chains_;
};

}  // namespace detour::batch
