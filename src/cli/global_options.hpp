#pragma once
// Options every subcommand accepts, before or after the subcommand name.
#include <optional>
#include <string>

#include "io/log.hpp"
#include "net/transport.hpp"

namespace detour::cli {

struct GlobalOptions {
  std::optional<std::string> config_path;  // -c, --config
  std::optional<std::string> state;        // --state URL
  int verbose = 0;                         // -v, repeatable
  bool quiet = false;                      // -q
  std::string log_format = "text";         // --log-format text|json
  bool no_color = false;                   // --no-color

  io::LogSettings log_settings() const;
  // -vvv: libcurl's own account of each exchange too (connections, TLS, the headers both ways),
  // with every secret shown as [redacted].
  net::CurlTransportOptions transport_options() const {
    net::CurlTransportOptions options;
    options.verbose = !quiet && verbose >= 3;
    return options;
  }
};

}  // namespace detour::cli
