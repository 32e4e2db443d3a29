// The driver of many jobs on one loop (docs/architecture.md, "Many calls on one loop"): lazy
// pulling, at most N in flight, one report per job, jobs freed outside their callbacks, and
// nothing left on the transport. Real Calls on the fake transport, and scripted jobs for the
// cases a Call does not produce on demand (a report from inside start()).
#include <catch2/catch.hpp>

#include <algorithm>

#include "call_fixture.hpp"
#include "engine/driver.hpp"

using namespace detour;
using detour::testing::FakeClock;
using detour::testing::FakeReply;
using detour::testing::FakeTransport;
using namespace detour::testing::call;

namespace {

// What the test sees of the jobs: how many exist, run, reported, and any broken rule.
struct Ledger {
  std::size_t live = 0;     // job objects alive
  std::size_t running = 0;  // started and not yet reported
  std::size_t max_running = 0;
  std::size_t pulled = 0;
  std::size_t reported = 0;
  std::size_t max_ahead = 0;                // pulled - reported, at each pull
  std::size_t freed_in_callback = 0;        // destroyed while its report was on the stack
  std::vector<int> reports;                 // per job id
  std::vector<engine::CallResult> results;  // per job id, the last one
};

// Wraps any job to keep the ledger: live objects, jobs in flight, and whether the driver frees
// a job from inside its own report.
class Tracked final : public engine::Job {
 public:
  Tracked(Ledger& ledger, std::unique_ptr<engine::Job> inner)
      : ledger_(ledger), inner_(std::move(inner)) {
    ++ledger_.live;
  }
  ~Tracked() override {
    if (reporting_) ++ledger_.freed_in_callback;
    --ledger_.live;
  }
  void start(Reported reported) override {
    ++ledger_.running;
    ledger_.max_running = std::max(ledger_.max_running, ledger_.running);
    inner_->start([this, reported] {
      --ledger_.running;
      ++ledger_.reported;
      reporting_ = true;
      reported();
      reporting_ = false;  // touches the job after the driver's callback returned
    });
  }
  void cancel() override { inner_->cancel(); }
  void interrupt() override { inner_->interrupt(); }

 private:
  Ledger& ledger_;
  std::unique_ptr<engine::Job> inner_;
  bool reporting_ = false;
};

// A job with a scripted life: reports from inside start() (delay 0), from a timer, or never on
// its own (a negative delay: nothing of it is on the loop).
class Scripted final : public engine::Job {
 public:
  Scripted(net::Transport& transport, Ledger& ledger, int id, Millis delay)
      : transport_(transport), ledger_(ledger), id_(id), delay_(delay) {}
  ~Scripted() override {
    if (timer_) transport_.cancel_timer(*timer_);
  }
  void start(Reported reported) override {
    reported_ = std::move(reported);
    if (delay_ == Millis(0)) return report(engine::ErrorClass::none);
    if (delay_ < Millis(0)) return;
    timer_ = transport_.add_timer(delay_, [this] {
      timer_.reset();
      report(engine::ErrorClass::none);
    });
  }
  void cancel() override {
    if (timer_) transport_.cancel_timer(*timer_);
    timer_.reset();
    report(engine::ErrorClass::cancelled);
  }
  void interrupt() override { report(engine::ErrorClass::cancelled); }

 private:
  void report(engine::ErrorClass error) {
    ++ledger_.reports[id_];
    ledger_.results[id_].error = error;
    reported_();
  }
  net::Transport& transport_;
  Ledger& ledger_;
  int id_;
  Millis delay_;
  Reported reported_;
  std::optional<net::Transport::Id> timer_;
};

// A source of `count` jobs made one at a time by `make`, checking the driver pulls lazily.
engine::JobSource counted_source(Ledger& ledger, int count,
                                 std::function<std::unique_ptr<engine::Job>(int)> make) {
  ledger.reports.assign(count, 0);
  ledger.results.assign(count, {});
  auto next = std::make_shared<int>(0);
  return [&ledger, count, next, make]() -> std::unique_ptr<engine::Job> {
    if (*next >= count) return nullptr;
    ++ledger.pulled;
    ledger.max_ahead = std::max(ledger.max_ahead, ledger.pulled - ledger.reported);
    return std::make_unique<Tracked>(ledger, make((*next)++));
  };
}

int job_of(const net::HttpRequest& request) {
  const auto body = nlohmann::json::parse(request.body);
  const std::string text = body.at("messages").back().at("content").get<std::string>();
  return std::stoi(text.substr(text.find(' ') + 1));
}

// The fault each call meets, by its id: the mix the 10,000-call run goes through.
enum class Fault { ok, busy_once, retry_after_once, refused_on_a, timeout_once, hedge, always_503 };
constexpr Fault kFaults[] = {
    Fault::ok,           Fault::busy_once, Fault::retry_after_once, Fault::refused_on_a,
    Fault::timeout_once, Fault::hedge,     Fault::always_503,       Fault::ok};

Fault fault_of(int id) {
  return kFaults[static_cast<std::size_t>(id) % std::size(kFaults)];
}

FakeReply reply_for(Fault fault, const std::string& model, int attempt) {
  switch (fault) {
    case Fault::ok:
      return ok_reply("fine");
    case Fault::busy_once:
      return attempt == 1 ? error_reply(503, "server_error", "", "busy") : ok_reply("fine");
    case Fault::retry_after_once:
      return attempt == 1 ? error_reply(429, "requests", "rate_limit_exceeded", "slow down",
                                        {{"retry-after", "1"}})
                          : ok_reply("fine");
    case Fault::refused_on_a:
      return model == "a" ? refused() : ok_reply("fine");
    case Fault::timeout_once:
      return attempt == 1 ? FakeReply{net::TransportStatus::ok, 200, {}, {"{}"}, Millis(5000)}
                          : ok_reply("fine");
    case Fault::hedge:
      return attempt == 1 ? stream_reply("slow", Millis(400), Millis(450))
                          : stream_reply("fast", Millis(20), Millis(30));
    case Fault::always_503:
      return error_reply(503, "server_error", "", "down");
  }
  return ok_reply("fine");
}

engine::CallSpec spec_for(Fixture& f, int id) {
  engine::CallSpec spec = f.spec(fault_of(id) == Fault::hedge);
  spec.request.messages = {{"user", "job " + std::to_string(id)}};
  spec.retries = 2;
  if (fault_of(id) == Fault::hedge) {
    spec.hedge = true;
    spec.hedge_after = Millis(50);
  }
  return spec;
}

}  // namespace

TEST_CASE("driver: ten thousand calls with a mix of faults each report once, N at a time",
          "[driver]") {
  constexpr int kCalls = 10'000;
  constexpr std::size_t kMax = 64;
  // Circuits that never open and a retry budget that never runs dry: otherwise the always-503
  // calls soon open every circuit and spend the budget, and the rest of the run is skipped
  // targets instead of retries and hedges.
  engine::BreakerConfig lenient;
  lenient.consecutive_failures = kCalls * 10;
  lenient.failure_rate = 2.0;
  Fixture f({"a", "b", "c"}, {}, lenient);
  f.state =
      std::make_unique<engine::SharedState>(*f.store, lenient, engine::BudgetConfig{1e9, 1.0});
  FakeClock clock;
  std::vector<int> attempts(kCalls, 0);
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    const int id = job_of(r);
    return reply_for(fault_of(id), model_of(r), ++attempts[id]);
  });
  Ledger ledger;
  engine::CallObserver quiet;
  const engine::CallContext context{transport, clock, *f.state, f.rng};
  engine::Driver driver(transport, kMax, counted_source(ledger, kCalls, [&](int id) {
                          return std::make_unique<engine::CallJob>(
                              context, spec_for(f, id), quiet, [&ledger, id](engine::CallResult r) {
                                ++ledger.reports[id];
                                ledger.results[id] = std::move(r);
                              });
                        }));
  driver.run();

  CHECK_FALSE(driver.interrupted());
  CHECK(driver.pulled() == kCalls);
  CHECK(driver.reported() == kCalls);
  CHECK(std::count(ledger.reports.begin(), ledger.reports.end(), 1) == kCalls);
  CHECK(ledger.max_running == kMax);  // full, and never over
  CHECK(ledger.max_ahead <= kMax);
  // Memory flat: every job freed, nothing held, nothing left on the loop.
  CHECK(ledger.live == 0);
  CHECK(ledger.freed_in_callback == 0);
  CHECK(driver.held() == 0);
  CHECK(transport.pending_timers() == 0);
  CHECK(transport.pending_requests() == 0);

  // The faults did happen, and the retries and hedges answered what they could.
  std::map<Fault, std::pair<int, int>> ok_and_failed;
  for (int id = 0; id < kCalls; ++id) {
    auto& [ok, failed] = ok_and_failed[fault_of(id)];
    (ledger.results[id].ok ? ok : failed) += 1;
    if (!ledger.results[id].ok && fault_of(id) == Fault::refused_on_a) {
      for (auto& at : ledger.results[id].attempts)
        fprintf(stderr, "id %d %s err %d waited %lld lat %lld %s\n", id, at.model.c_str(),
                (int)at.error, (long long)at.waited.count(), (long long)at.latency.count(),
                at.message.c_str());
    }
    CHECK(ledger.results[id].error != engine::ErrorClass::cancelled);
  }
  CHECK(ok_and_failed[Fault::always_503].first == 0);
  for (Fault fault : {Fault::ok, Fault::busy_once, Fault::retry_after_once, Fault::refused_on_a,
                      Fault::timeout_once, Fault::hedge}) {
    CAPTURE(static_cast<int>(fault));
    CHECK(ok_and_failed[fault].second == 0);  // retried, moved on or hedged to an answer
  }
  const auto hedged =
      std::count_if(ledger.results.begin(), ledger.results.end(), [](const auto& r) {
        return std::any_of(r.attempts.begin(), r.attempts.end(),
                           [](const auto& a) { return a.hedge; });
      });
  CHECK(hedged > 0);
}

TEST_CASE("driver: pulls the source lazily and keeps at most N in flight", "[driver]") {
  struct Row {
    std::size_t max_in_flight;
    int jobs;
  };
  const std::vector<Row> rows = {{1, 20}, {3, 50}, {64, 10}, {64, 1000}};
  for (const auto& row : rows) {
    CAPTURE(row.max_in_flight, row.jobs);
    FakeClock clock;
    FakeTransport transport(clock, [](const net::HttpRequest&) { return FakeReply{}; });
    Ledger ledger;
    engine::Driver driver(transport, row.max_in_flight,
                          counted_source(ledger, row.jobs, [&](int id) {
                            // Uneven delays: slots free out of order.
                            const Millis delay(((id * 37) % 11 + 1) * 10);
                            return std::make_unique<Scripted>(transport, ledger, id, delay);
                          }));
    driver.run();
    CHECK(std::count(ledger.reports.begin(), ledger.reports.end(), 1) == row.jobs);
    CHECK(ledger.max_ahead <= row.max_in_flight);
    CHECK(ledger.max_running == std::min<std::size_t>(row.max_in_flight, row.jobs));
    CHECK(ledger.live == 0);
    CHECK(ledger.freed_in_callback == 0);
    CHECK(driver.held() == 0);
    CHECK(transport.pending_timers() == 0);
  }
}

TEST_CASE("driver: jobs that report from inside start() are freed after it returns", "[driver]") {
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest&) { return FakeReply{}; });
  Ledger ledger;
  SECTION("every job at once: the loop is never needed") {
    engine::Driver driver(transport, 4, counted_source(ledger, 100, [&](int id) {
                            return std::make_unique<Scripted>(transport, ledger, id, Millis(0));
                          }));
    driver.run();
    CHECK(driver.reported() == 100);
    CHECK(ledger.max_running == 1);
  }
  SECTION("mixed with jobs on timers") {
    engine::Driver driver(transport, 4, counted_source(ledger, 100, [&](int id) {
                            return std::make_unique<Scripted>(transport, ledger, id,
                                                              Millis(id % 3 == 0 ? 0 : 10));
                          }));
    driver.run();
    CHECK(driver.reported() == 100);
  }
  CHECK(std::count(ledger.reports.begin(), ledger.reports.end(), 1) == 100);
  CHECK(ledger.live == 0);
  CHECK(ledger.freed_in_callback == 0);
  CHECK(transport.pending_timers() == 0);
}

TEST_CASE("driver: no job at all returns at once", "[driver]") {
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest&) { return FakeReply{}; });
  engine::Driver driver(transport, 8, [] { return std::unique_ptr<engine::Job>(); });
  driver.run();
  CHECK(driver.pulled() == 0);
  CHECK_FALSE(driver.interrupted());
  CHECK(transport.pending_timers() == 0);
}

TEST_CASE("driver: a job the loop cannot finish reports through interrupt()", "[driver]") {
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest&) { return FakeReply{}; });
  Ledger ledger;
  engine::Driver driver(transport, 2, counted_source(ledger, 5, [&](int id) {
                          return std::make_unique<Scripted>(transport, ledger, id,
                                                            Millis(id == 1 ? -1 : 10));
                        }));
  driver.run();
  // Job 1 holds a slot the loop never frees: the others pass through the other slot until the
  // loop runs dry, then job 1 reports what it has, as an interrupted job would.
  CHECK(driver.interrupted());
  CHECK(std::count(ledger.reports.begin(), ledger.reports.end(), 1) == 5);
  CHECK(ledger.results[1].error == engine::ErrorClass::cancelled);
  CHECK(ledger.live == 0);
  CHECK(transport.pending_timers() == 0);
}

TEST_CASE("driver: cancel_all makes every started call report once as cancelled", "[driver]") {
  constexpr int kCalls = 1000;
  constexpr std::size_t kMax = 16;
  constexpr int kQuitter = 5;  // fails fast; its consumer cancels the rest (a "stop on error")
  Fixture f({"a", "b"});
  FakeClock clock;
  // Half the calls are waiting out a Retry-After when the cancel comes, half are on the wire.
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    const int id = job_of(r);
    if (id == kQuitter) return error_reply(400, "invalid_request_error", "", "bad");
    if (id % 2 == 1) return FakeReply{net::TransportStatus::ok, 200, {}, {"{}"}, Millis(800)};
    FakeReply limited =
        error_reply(429, "requests", "rate_limit_exceeded", "slow down", {{"retry-after", "2"}});
    // Slower than the slot margin a paced request waits (engine::kSlotMargin), so that the
    // quitter, paced behind the same Retry-After, fails while the retries are on the wire.
    limited.latency = Millis(50);
    return limited;
  });
  Ledger ledger;
  engine::CallObserver quiet;
  const engine::CallContext context{transport, clock, *f.state, f.rng};
  engine::Driver* driver_of_consumer = nullptr;
  bool quitter_cancels = false;
  engine::Driver driver(transport, kMax, counted_source(ledger, kCalls, [&](int id) {
                          engine::CallSpec spec = f.spec();
                          spec.request.messages = {{"user", "job " + std::to_string(id)}};
                          spec.retries = 2;
                          return std::make_unique<engine::CallJob>(
                              context, std::move(spec), quiet, [&, id](engine::CallResult r) {
                                ++ledger.reports[id];
                                ledger.results[id] = std::move(r);
                                if (id == kQuitter && quitter_cancels) {
                                  driver_of_consumer->cancel_all();
                                  driver_of_consumer->cancel_all();  // twice is harmless
                                }
                              });
                        }));
  driver_of_consumer = &driver;
  SECTION("from a timer") {
    transport.add_timer(Millis(300), [&] { driver.cancel_all(); });
  }
  SECTION("from a consumer, inside a call's report") {
    quitter_cancels = true;
  }
  driver.run();

  CHECK_FALSE(driver.interrupted());
  CHECK(ledger.reports[kQuitter] == 1);
  if (quitter_cancels) {
    CHECK(ledger.results[kQuitter].error == engine::ErrorClass::bad_request);
    CHECK(driver.pulled() == kMax);  // nothing pulled after the cancel
  }
  for (int id = 0; id < kCalls; ++id) {
    CAPTURE(id);
    if (id < static_cast<int>(driver.pulled())) {
      CHECK(ledger.reports[id] == 1);
      if (id != kQuitter) CHECK(ledger.results[id].error == engine::ErrorClass::cancelled);
    } else {
      CHECK(ledger.reports[id] == 0);
    }
  }
  CHECK(ledger.live == 0);
  CHECK(ledger.freed_in_callback == 0);
  // The last report ends the loop at once; the shared state's sync due in that turn is its
  // owner's to write, as the batch runner and `ask` do.
  f.state->flush();
  CHECK(transport.pending_timers() == 0);
  CHECK(transport.pending_requests() == 0);
}

TEST_CASE("driver: a stopped loop makes every running call report its interrupted result",
          "[driver]") {
  constexpr int kCalls = 100;
  constexpr std::size_t kMax = 8;
  Fixture f({"a", "b"});
  FakeClock clock;
  FakeTransport transport(clock, [&](const net::HttpRequest& r) {
    FakeReply reply = ok_reply("fine");
    reply.latency = Millis(100 + job_of(r) * 7 % 50);
    return reply;
  });
  Ledger ledger;
  engine::CallObserver quiet;
  const engine::CallContext context{transport, clock, *f.state, f.rng};
  engine::Driver driver(transport, kMax, counted_source(ledger, kCalls, [&](int id) {
                          engine::CallSpec spec = f.spec();
                          spec.request.messages = {{"user", "job " + std::to_string(id)}};
                          return std::make_unique<engine::CallJob>(
                              context, std::move(spec), quiet, [&ledger, id](engine::CallResult r) {
                                ++ledger.reports[id];
                                ledger.results[id] = std::move(r);
                              });
                        }));
  std::size_t running_at_stop = 0;
  transport.add_timer(Millis(250), [&] {  // Ctrl-C
    running_at_stop = ledger.running;
    transport.stop();
  });
  driver.run();

  CHECK(driver.interrupted());
  CHECK(driver.pulled() == driver.reported());
  CHECK(driver.pulled() < kCalls);
  int interrupted = 0;
  for (int id = 0; id < kCalls; ++id) {
    CAPTURE(id);
    CHECK(ledger.reports[id] == (id < static_cast<int>(driver.pulled()) ? 1 : 0));
    if (ledger.reports[id] == 1 && !ledger.results[id].ok) {
      CHECK(ledger.results[id].error == engine::ErrorClass::cancelled);
      CHECK(ledger.results[id].message == "interrupted");
      ++interrupted;
    }
  }
  CHECK(running_at_stop > 0);
  CHECK(interrupted == static_cast<int>(running_at_stop));
  CHECK(ledger.live == 0);
  CHECK(driver.held() == 0);
  f.state->flush();  // as `ask` does after Ctrl-C: the shared state's sync is its to finish
  CHECK(transport.pending_timers() == 0);  // no pump, no call's timer, no sync
  // The freed calls detached from the loop: running it on reaches none of them.
  transport.run();
  CHECK(std::count(ledger.reports.begin(), ledger.reports.end(), 1) ==
        static_cast<int>(driver.pulled()));
  CHECK(transport.pending_timers() == 0);
  CHECK(transport.pending_requests() == 0);
}

TEST_CASE("driver: a closed gate pauses pulling without ending the source", "[driver]") {
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest&) { return FakeReply{}; });
  Ledger ledger;
  // A window of 3 behind job 0, which is slow: the others finish, but no job beyond the
  // window is pulled until job 0 reports.
  constexpr int kJobs = 12;
  constexpr std::size_t kWindow = 3;
  auto source = counted_source(ledger, kJobs, [&](int id) {
    return std::make_unique<Scripted>(transport, ledger, id, Millis(id == 0 ? 500 : 10));
  });
  engine::Driver driver(transport, 8, source);
  std::size_t pulled_when_head_reported = 0;
  driver.set_gate([&] {
    if (ledger.reports[0] == 1 && pulled_when_head_reported == 0)
      pulled_when_head_reported = ledger.pulled;
    const std::size_t head = ledger.reports[0] == 1 ? ledger.reported : 0;
    return ledger.pulled < head + kWindow;
  });
  driver.run();
  CHECK(std::count(ledger.reports.begin(), ledger.reports.end(), 1) == kJobs);
  CHECK(pulled_when_head_reported == kWindow);  // the gate held them back meanwhile
  CHECK(ledger.live == 0);
  CHECK(transport.pending_timers() == 0);
}

TEST_CASE("driver: a source idle behind a closed gate is asked again, not ended", "[driver]") {
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest&) { return FakeReply{}; });
  Ledger ledger;
  ledger.reports.assign(4, 0);
  ledger.results.assign(4, {});
  // The source returns nullptr once while the gate is closed (it "wrote" something that
  // needed no job and filled the window), then goes on.
  bool open = true;
  int next = 0;
  int idle_answers = 0;
  engine::Driver driver(transport, 2, [&]() -> std::unique_ptr<engine::Job> {
    if (next == 1 && idle_answers == 0) {
      ++idle_answers;
      open = false;
      return nullptr;
    }
    if (next >= 4) return nullptr;
    ++ledger.pulled;
    return std::make_unique<Tracked>(
        ledger, std::make_unique<Scripted>(transport, ledger, next++, Millis(10)));
  });
  driver.set_gate([&] {
    if (!open && ledger.reported >= 1) open = true;
    return open;
  });
  driver.run();
  CHECK(idle_answers == 1);
  CHECK(std::count(ledger.reports.begin(), ledger.reports.end(), 1) == 4);
}

TEST_CASE("driver: with a grace, the first stop lets running jobs finish; a second interrupts",
          "[driver]") {
  FakeClock clock;
  FakeTransport transport(clock, [](const net::HttpRequest&) { return FakeReply{}; });
  Ledger ledger;
  constexpr int kJobs = 20;
  // Jobs take 100 ms, four at a time; Ctrl-C at 150 ms with a 1 s grace.
  engine::Driver driver(transport, 4, counted_source(ledger, kJobs, [&](int id) {
                          return std::make_unique<Scripted>(transport, ledger, id,
                                                            Millis(id == 5 ? 5000 : 100));
                        }));
  int told = 0;
  driver.set_grace(Millis(1000), [&] { ++told; });
  std::size_t pulled_at_stop = 0;
  transport.add_timer(Millis(150), [&] {
    pulled_at_stop = ledger.pulled;
    transport.stop();
  });
  SECTION("the grace ends: what still runs is cancelled") {
    driver.run();
    CHECK(told == 1);
    CHECK_FALSE(driver.interrupted());
    CHECK(ledger.pulled == pulled_at_stop);  // nothing admitted after Ctrl-C
    // Every pulled job reported once; the slow one as cancelled when the grace ran out.
    for (int id = 0; id < kJobs; ++id)
      CHECK(ledger.reports[id] == (id < static_cast<int>(pulled_at_stop) ? 1 : 0));
    CHECK(ledger.results[5].error == engine::ErrorClass::cancelled);
    CHECK(ledger.results[4].error == engine::ErrorClass::none);  // finished within the grace
  }
  SECTION("a second stop interrupts at once") {
    transport.add_timer(Millis(300), [&] { transport.stop(); });
    driver.run();
    CHECK(told == 1);
    CHECK(driver.interrupted());
    CHECK(ledger.results[5].error == engine::ErrorClass::cancelled);
    CHECK(clock.now() < FakeClock{}.now() + Millis(1000));  // not the grace's end
  }
  CHECK(ledger.live == 0);
  CHECK(transport.pending_timers() == 0);
}
