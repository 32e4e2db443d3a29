#include "io/interrupt.hpp"

#include <atomic>
#include <csignal>

namespace detour::io {

namespace {

std::atomic<net::Transport*> g_transport{nullptr};
volatile std::sig_atomic_t g_interrupted = 0;
struct sigaction g_previous_int, g_previous_term;

extern "C" void on_interrupt(int) {
  g_interrupted = 1;
  // Transport::stop() only sets an atomic flag and wakes the loop's poll with a write(),
  // both safe in a signal handler.
  if (net::Transport* transport = g_transport.load()) transport->stop();
}

}  // namespace

StopLoopOnInterrupt::StopLoopOnInterrupt(net::Transport& transport) {
  g_interrupted = 0;
  g_transport.store(&transport);
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &g_previous_int);
  sigaction(SIGTERM, &action, &g_previous_term);
}

StopLoopOnInterrupt::~StopLoopOnInterrupt() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
  g_transport.store(nullptr);
}

bool StopLoopOnInterrupt::interrupted() {
  return g_interrupted != 0;
}

}  // namespace detour::io
