// E1, the engine's own cost: calls run through the Driver against a fake transport that answers
// each request at once (tests/unit/fakes.hpp), on a SQLite state file, so that what is measured
// is the engine and the store. Prints CPU microseconds and store transactions per call for each
// number of calls in flight asked for. Run by tests/bench/run.
//   detour-bench-engine DIR CALLS IN_FLIGHT...
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "../unit/counting_store.hpp"
#include "../unit/fakes.hpp"
#include "engine/driver.hpp"
#include "engine/shared_state.hpp"
#include "state/store.hpp"

using namespace detour;

namespace {

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

const std::string kReply =
    R"({"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[{"index":0,)"
    R"("message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}})";

struct Figures {
  double cpu_us_per_call = 0;
  double transactions_per_call = 0;
  int failed = 0;
};

Figures run(const std::string& db, int calls, std::size_t in_flight) {
  config::ProviderConfig provider;
  provider.name = "mock";
  provider.protocol = "openai";
  provider.base_url = "http://mock/v1";
  config::Chain chain;
  config::ResolvedTarget target;
  target.target = {"mock", "m"};
  target.provider = &provider;
  target.api_key = "sk-bench-key-0000";
  chain.targets.push_back(target);

  testing::CountingStore store(state::make_sqlite_store(db));
  engine::SharedState shared(store);
  testing::FakeClock clock;
  testing::FakeTransport transport(clock, [](const net::HttpRequest&) {
    return testing::FakeReply{net::TransportStatus::ok, 200, {}, {kReply}, Millis(0)};
  });
  std::mt19937_64 rng(1);
  engine::CallObserver quiet;
  Figures figures;
  int made = 0;
  const double cpu_before = cpu_seconds();
  engine::Driver driver(transport, in_flight, [&]() -> std::unique_ptr<engine::Job> {
    if (made == calls) return nullptr;
    ++made;
    engine::CallSpec spec;
    spec.request.messages = {{"user", "ping"}};
    spec.request.max_tokens = 16;
    spec.chain = chain;
    return std::make_unique<engine::CallJob>(
        engine::CallContext{transport, clock, shared, rng}, std::move(spec), quiet,
        [&](engine::CallResult r) { figures.failed += r.ok ? 0 : 1; });
  });
  driver.run();
  shared.flush();
  figures.cpu_us_per_call = (cpu_seconds() - cpu_before) * 1e6 / calls;
  figures.transactions_per_call = static_cast<double>(store.transactions()) / calls;
  return figures;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: detour-bench-engine DIR CALLS IN_FLIGHT...\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int calls = std::atoi(argv[2]);
  run(dir + "/warm.db", 200, 8);  // page cache, allocator, prepared statements
  for (int i = 3; i < argc; ++i) {
    const auto n = static_cast<std::size_t>(std::atoi(argv[i]));
    const Figures f = run(dir + "/e1-" + std::to_string(n) + ".db", calls, n);
    std::printf("in_flight=%zu cpu_us=%.1f transactions=%.4f failed=%d\n", n, f.cpu_us_per_call,
                f.transactions_per_call, f.failed);
  }
  return 0;
}
