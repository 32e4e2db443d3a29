// What the shared limiter costs one request made on its own: a reservation before it is sent
// (one transaction, which also writes the previous request's settlement) and a settlement after
// it, timed on a SQLite state file and on the in-memory store. Printed for tests/bench/run,
// which reports it next to P7.
//   detour-bench-state DIR [N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/limiter.hpp"
#include "state/store.hpp"
#include "state/view.hpp"

using namespace detour;

namespace {

double micros_per_request(state::Store& store, int n) {
  state::View view(store);
  engine::Limiter limiter(view);
  engine::LimitScope scope;
  scope.provider = "openai";
  scope.model = "gpt-4o";
  scope.provider_limits.rpm = 1'000'000;  // always admitted: this times the bookkeeping
  scope.provider_limits.tpm = 1'000'000'000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    engine::AdmissionRequest request;
    request.tokens = 500;
    request.now_ms = 1e12 + i;
    request.holder = "bench";
    limiter.reserve(scope, request);
    engine::AdmissionFeedback feedback;
    feedback.holder = request.holder;
    feedback.reserved_tokens = 500;
    feedback.used_tokens = 300;
    feedback.replied = true;
    feedback.headers.requests_limit = 5000;
    feedback.headers.requests_remaining = 4999;
    feedback.now_ms = request.now_ms + 1;
    limiter.settle(scope, feedback);
  }
  view.sync();
  const std::chrono::duration<double, std::micro> spent = std::chrono::steady_clock::now() - start;
  return spent.count() / n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: detour-bench-state DIR [N]\n");
    return 2;
  }
  const int n = argc > 2 ? std::atoi(argv[2]) : 2000;
  auto sqlite = state::make_sqlite_store(std::string(argv[1]) + "/cost.db");
  auto memory = state::make_memory_store();
  micros_per_request(*sqlite, 50);  // warm the page cache and the prepared statements
  const double on_disk = micros_per_request(*sqlite, n);
  const double in_memory = micros_per_request(*memory, n);
  std::printf("sqlite_us=%.1f memory_us=%.1f n=%d\n", on_disk, in_memory, n);
  return 0;
}
