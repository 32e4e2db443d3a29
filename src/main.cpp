// detour: the command line lives in src/cli, the engine in src/engine.
#include <unistd.h>

#include <cstdio>

#include "cli/app.hpp"

int main(int argc, char** argv) {
  const int code = detour::cli::run(argc, argv);
#if defined(DETOUR_SANITIZE) || defined(DETOUR_TSAN)
  return code;  // the sanitizers report leaks and races, and set exit status 66, at exit
#else
  // Everything detour writes outside the process is written and closed by the time run()
  // returns: the state store, batch output and the log are scoped to it. What a normal exit
  // does after that -- static destructors, freeing the heap, OpenSSL's atexit clean-up --
  // changes nothing outside the process, and cost a one-shot `detour ask` about 0.4 ms of its
  // 1.1-times-curl budget (tests/bench/run P1). So stdio is flushed and the process ends here.
  std::fflush(nullptr);
  _exit(code);
#endif
}
