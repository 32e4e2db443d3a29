#pragma once
// Ctrl-C (SIGINT) and SIGTERM stop the event loop instead of killing the process, so a
// command can cancel what is in flight, write what it owes (a --json object, batch output)
// and exit 130.
#include "net/transport.hpp"

namespace detour::io {

class StopLoopOnInterrupt {
 public:
  explicit StopLoopOnInterrupt(net::Transport& transport);
  ~StopLoopOnInterrupt();  // restores the previous handlers
  StopLoopOnInterrupt(const StopLoopOnInterrupt&) = delete;
  StopLoopOnInterrupt& operator=(const StopLoopOnInterrupt&) = delete;

  // True once SIGINT or SIGTERM arrived while this guard was installed.
  static bool interrupted();
};

}  // namespace detour::io
