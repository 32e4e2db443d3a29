#pragma once
// Options every subcommand accepts, before or after the subcommand name.
#include <optional>
#include <string>

#include "io/log.hpp"

namespace detour::cli {

struct GlobalOptions {
  std::optional<std::string> config_path;  // -c, --config
  std::optional<std::string> state;        // --state URL
  int verbose = 0;                         // -v, repeatable
  bool quiet = false;                      // -q
  std::string log_format = "text";         // --log-format text|json
  bool no_color = false;                   // --no-color

  io::LogSettings log_settings() const;
};

}  // namespace detour::cli
