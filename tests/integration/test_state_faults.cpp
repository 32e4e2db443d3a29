// State-store faults while detour runs (issue 13): the SQLite state file deleted, truncated,
// overwritten with garbage, made read-only or locked by another process, in the middle of a
// batch and between and during one-liners. Calls go on (at most one warning, then memory) and
// nothing in the output is lost. The real binary against detour-mock, with what a user gets by
// default: the sqlite state under $XDG_STATE_HOME, default retries, stdout a pipe.
//
// What SQLite does with a file changed under an open connection (each checked below only
// through what detour prints):
// - Unix lets a process keep using a file that was deleted: SQLite's connection goes on with
//   the unlinked file. A new process makes a new file, and, when only the database was deleted,
//   finds the running one's WAL and index under their names (sqlite.org/howtocorrupt.html,
//   "Unlinking or renaming a database file while in use").
// - Permissions are checked when a file is opened, so chmod does nothing to a running process.
// - In WAL mode a page is read from the WAL when the WAL holds it, and from the database file
//   only otherwise; a checkpoint copies the WAL's pages back into the file (sqlite.org/wal.html,
//   "Concurrency", "Checkpointing"); and a connection keeps its page cache until another one
//   writes (sqlite3WalBeginReadTransaction in SQLite's wal.c). So a file truncated or
//   overwritten under a running detour may go unnoticed, or be found corrupt later.
// - In WAL mode a writer does not block readers (sqlite.org/wal.html), and BEGIN EXCLUSIVE is
//   BEGIN IMMEDIATE (sqlite.org/lang_transaction.html): another process's write transaction
//   stops detour's next write transaction, which waits the busy timeout and fails with
//   SQLITE_BUSY (sqlite.org/c3ref/busy_timeout.html). A whole-file POSIX lock stops its reads
//   too: SQLite's own locks are fcntl locks on bytes of the same file (sqlite.org/lockingv3.html).
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "resilience_util.hpp"
#include "state/store.hpp"

using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::resilience::count_lines;
using detour::testing::resilience::Env;
using nlohmann::json;

namespace {

using std::chrono::milliseconds;

// detour's busy timeout (README: "2 s busy timeout"); not configurable from the command line.
constexpr milliseconds kBusy = detour::state::kDefaultBusyTimeout;

// A few hundred lines at -j 8 against 10 ms answers: under half a second without a fault.
constexpr int kLines = 256;

// Where the default state lives for a run given XDG_STATE_HOME=xdg.
struct StatePaths {
  std::string xdg;
  std::string dir() const { return xdg + "/detour"; }
  std::string db() const { return dir() + "/state.db"; }
};

// ---- the faults -------------------------------------------------------------------------

void remove_state(const StatePaths& s) {
  for (const char* suffix : {"", "-wal", "-shm"})
    ::unlink((s.db() + suffix).c_str());
}

void truncate_state(const StatePaths& s) {
  REQUIRE(::truncate(s.db().c_str(), 0) == 0);
}

// In place, as `cat garbage > state.db` would: the same file, new bytes.
void overwrite_with_garbage(const StatePaths& s) {
  std::mt19937 rng(13);
  std::string bytes(64 * 1024, '\0');
  for (auto& c : bytes)
    c = static_cast<char>(rng());
  const int fd = ::open(s.db().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  REQUIRE(fd >= 0);
  const bool written = ::write(fd, bytes.data(), bytes.size()) == ssize_t(bytes.size());
  ::close(fd);
  REQUIRE(written);
}

void make_read_only(const StatePaths& s) {
  REQUIRE(::chmod(s.db().c_str(), 0444) == 0);
  REQUIRE(::chmod(s.dir().c_str(), 0555) == 0);
}

// Another process's SQLite connection in the middle of a write transaction: it holds the
// database's write lock until released (readers can go on: WAL). The test process is that other
// process: detour is a child of it, and POSIX locks are per process.
class WriteLock {
 public:
  explicit WriteLock(const std::string& path) {
    REQUIRE(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(db_, 10000);  // a running batch holds it for microseconds at a time
    char* error = nullptr;
    const int rc = sqlite3_exec(db_, "BEGIN EXCLUSIVE; INSERT INTO kv VALUES('lock', '{}')",
                                nullptr, nullptr, &error);
    INFO((error ? error : ""));
    sqlite3_free(error);
    REQUIRE(rc == SQLITE_OK);
  }
  ~WriteLock() {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
  }
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;

 private:
  sqlite3* db_ = nullptr;
};

// A POSIX write lock on the whole file, as a backup or sync tool might take: no SQLite
// connection can even read it. (This process must not open and close the file otherwise while
// it holds this: closing any descriptor of a file drops the process's locks on it.)
class WholeFileLock {
 public:
  explicit WholeFileLock(const std::string& path) : fd_(::open(path.c_str(), O_RDWR | O_CLOEXEC)) {
    REQUIRE(fd_ >= 0);
    struct flock whole {};
    whole.l_type = F_WRLCK;
    whole.l_whence = SEEK_SET;  // l_start 0, l_len 0: the whole file, however long
    if (::fcntl(fd_, F_SETLK, &whole) != 0) {
      ::close(fd_);
      FAIL("cannot lock " << path);
    }
  }
  ~WholeFileLock() { ::close(fd_); }
  WholeFileLock(const WholeFileLock&) = delete;
  WholeFileLock& operator=(const WholeFileLock&) = delete;

 private:
  int fd_;
};

// ---- running with a fault ------------------------------------------------------------------

struct Faulted {
  RunResult r;
  bool faulted_while_running = false;  // the fault was in place before the process ended
};

// Runs argv as run() does, from a thread of its own, and meanwhile from this thread applies
// `fault` as soon as `due()` (asked every 10 ms) says so, then calls `then` (the process may
// still be running). The harness's timeout ends a process that hangs.
Faulted run_with_fault(const std::vector<std::string>& argv, const RunOptions& opts,
                       const std::function<bool()>& due, const std::function<void()>& fault,
                       const std::function<void()>& then = {}) {
  Faulted f;
  std::atomic<bool> done{false};
  {
    std::thread child([&] {
      f.r = detour::testing::run(argv, opts);
      done = true;
    });
    struct Join {
      std::thread& t;
      ~Join() { t.join(); }  // also when a REQUIRE in `fault` throws
    } join{child};
    while (!done) {
      if (due()) {
        fault();
        f.faulted_while_running = !done;
        if (then) then();
        break;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
  }  // joined: f is complete
  return f;
}

// ---- what every run must show ----------------------------------------------------------

// A run's stderr says at most one thing about the state, and only as the fall-back warning.
void check_at_most_one_state_warning(const RunResult& r, const StatePaths& s) {
  INFO("stderr:\n" << r.err);
  CHECK(count_lines(r.err, "state") <= 1);
  const int warnings = count_lines(r.err, "warning");
  CHECK(warnings <= 1);
  if (warnings == 1) {
    CHECK(count_lines(r.err, "detour: warning: state file " + s.db() + ": ") == 1);
    CHECK(count_lines(r.err, "; continuing without shared state (memory)") == 1);
  }
  CHECK(count_lines(r.err, "error:") == 0);  // "detour: error: ...", not "disk I/O error;"
}

// The one-shot answer, and nothing lost: exit 0 (not a signal, not the harness's timeout).
void check_answered(const RunResult& r, const std::string& prompt, const StatePaths& s) {
  INFO("stderr:\n" << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "mock reply to: " + prompt + "\n");
  check_at_most_one_state_warning(r, s);
}

std::string questions(int n) {
  std::string text;
  for (int i = 0; i < n; ++i)
    text +=
        json{{"id", "q" + std::to_string(i)}, {"prompt", "question " + std::to_string(i)}}.dump() +
        "\n";
  return text;
}

// Every line answered once, in order, with its own prompt's answer; none waited the busy
// timeout twice (a line in flight while the state file's lock was waited out shows it in its
// latency: the event loop waits with the store).
void check_batch(const RunResult& r, const StatePaths& s) {
  INFO("stderr:\n" << r.err);
  CHECK(r.exit_code == 0);
  std::vector<json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);)
    lines.push_back(json::parse(line, nullptr, /*allow_exceptions=*/false));
  REQUIRE(lines.size() == std::size_t(kLines));
  std::set<std::string> ids;
  long long slowest = 0;
  for (int i = 0; i < kLines; ++i) {
    CAPTURE(i);
    const json& line = lines[i];
    REQUIRE(line.is_object());
    CHECK(line["id"] == "q" + std::to_string(i));
    CHECK(line["ok"] == true);
    CHECK(line["content"] == "mock reply to: question " + std::to_string(i));
    if (line["id"].is_string()) ids.insert(line["id"].get<std::string>());
    if (line["latency_ms"].is_number())
      slowest = std::max(slowest, line["latency_ms"].get<long long>());
  }
  CHECK(ids.size() == std::size_t(kLines));
  CHECK(slowest < 2 * kBusy.count());
  CHECK(count_lines(r.err, "batch: " + std::to_string(kLines) + " lines in") == 1);
  CHECK(count_lines(r.err, std::to_string(kLines) + " ok, 0 failed, 0 bad input") == 1);
  check_at_most_one_state_warning(r, s);
}

// The test directory, config and inputs readable by `nobody`, and XDG_STATE_HOME its own,
// when the tests run as root (as in CI): root ignores permission bits, and a read-only state
// file would test nothing. Elsewhere the options change nothing but the environment.
RunOptions options_for(Env& env, const StatePaths& s, const std::vector<std::string>& readable) {
  RunOptions o;
  o.env["XDG_STATE_HOME"] = s.xdg;
  o.run_as_uid = detour::testing::kNobody;
  o.run_as_gid = detour::testing::kNobody;
  REQUIRE(::mkdir(s.xdg.c_str(), 0700) == 0);
  if (!detour::testing::drops_privileges(o)) return o;
  REQUIRE(::chmod(env.dir.path().c_str(), 0755) == 0);
  REQUIRE(::chmod(env.config.c_str(), 0644) == 0);
  for (const auto& path : readable)
    REQUIRE(::chmod(path.c_str(), 0644) == 0);
  REQUIRE(::chown(s.xdg.c_str(), detour::testing::kNobody, detour::testing::kNobody) == 0);
  return o;
}

// Undoes make_read_only, so that the test directory can be removed when not root.
void make_writable(const StatePaths& s) {
  ::chmod(s.dir().c_str(), 0700);
  ::chmod(s.db().c_str(), 0600);
}

// Runs `f` when the scope ends, however it ends (a failed REQUIRE throws).
struct Finally {
  std::function<void()> f;
  ~Finally() {
    if (f) f();
  }
};

}  // namespace

TEST_CASE("state faults during a batch: every line answered once, one warning at most",
          "[state-faults]") {
  Env env(json{{"default", {{"latency_ms", 10}}}});
  const StatePaths state{env.dir.file("xdg")};
  const std::string input = env.dir.write("in.jsonl", questions(kLines));
  RunOptions o = options_for(env, state, {input});
  o.timeout = std::chrono::seconds(60);  // far beyond a busy timeout per line
  o.env["TEST_KEY"] = detour::testing::resilience::kKey;
  const std::vector<std::string> batch = {
      detour::testing::detour_bin(), "-c", env.config, "batch", input, "-m", "oa/m1", "-j", "8"};
  // A quarter of the lines answered: the state file exists and has been written many times.
  const auto a_quarter_done = [&] { return env.mock.stats()["requests"] >= kLines / 4; };
  // A one-liner started while the faulted batch runs, and one after it.
  int asked = 0;
  const auto one_liner = [&] {
    const std::string prompt = "one-liner " + std::to_string(++asked);
    RunResult r = env.ask({"-m", "oa/m1", prompt}, o);
    check_answered(r, prompt, state);
    return r;
  };

  // Each section applies its fault while the batch runs; `release` ends it once the batch is
  // over, before the last one-liner, and `cleanup` at the end, however the test ends.
  std::function<void()> fault;
  std::function<void()> release = [] {};
  Finally cleanup;
  std::unique_ptr<WriteLock> lock;
  SECTION("the state file and its WAL and index deleted") {
    fault = [&] { remove_state(state); };
  }
  SECTION("the state file deleted, its WAL and index left for the next process") {
    fault = [&] { REQUIRE(::unlink(state.db().c_str()) == 0); };
  }
  SECTION("the state file and its directory made read-only") {
    fault = [&] { make_read_only(state); };
    cleanup.f = [&] { make_writable(state); };
  }
  SECTION("the state file truncated to 0 bytes") {
    fault = [&] { truncate_state(state); };
  }
  SECTION("the state file overwritten with 64 KiB of random bytes") {
    fault = [&] { overwrite_with_garbage(state); };
  }
  SECTION("the state file locked by another process for longer than the batch") {
    fault = [&] { lock = std::make_unique<WriteLock>(state.db()); };
    release = [&] { lock.reset(); };
  }

  if (!fault) return;  // no section chosen (a -c filter that names none)
  // The first ask makes sure the run-as-nobody copy of detour the harness may make is made
  // before two threads run detour at once; it also leaves a state file with history.
  one_liner();
  Faulted f = run_with_fault(batch, o, a_quarter_done, fault, one_liner);
  release();
  INFO("batch stderr:\n" << f.r.err);
  CHECK(f.faulted_while_running);
  check_batch(f.r, state);
  one_liner();  // and after the batch, with the file as the batch and the fault left it
}

TEST_CASE("state faults between and during one-liners: each answers, one warning at most",
          "[state-faults]") {
  // oa/slow answers in 150 ms: long enough to change the state file while an ask waits for it.
  Env env(json{{"models", {{"slow", {{"latency_ms", 150}}}}}});
  const StatePaths state{env.dir.file("xdg")};
  const RunOptions o = options_for(env, state, {});
  int asked = 0;
  const auto ask = [&] {
    const std::string prompt = "question " + std::to_string(++asked);
    RunResult r = env.ask({"-m", "oa/m1", prompt}, o);
    check_answered(r, prompt, state);
    return r;
  };
  // An ask whose request is in flight when `fault` is applied: its state was read and its
  // capacity reserved before, what it learned is written after.
  const auto ask_through = [&](const std::function<void()>& fault) {
    const std::string prompt = "question " + std::to_string(++asked);
    std::vector<std::string> argv = {
        detour::testing::detour_bin(), "-c", env.config, "ask", "-m", "oa/slow", prompt};
    RunOptions with_key = o;
    with_key.env["TEST_KEY"] = detour::testing::resilience::kKey;
    const auto in_flight = [&] { return env.mock.stats()["in_flight"] >= 1; };
    Faulted f = run_with_fault(argv, with_key, in_flight, fault);
    CHECK(f.faulted_while_running);
    check_answered(f.r, prompt, state);
    return f.r;
  };

  const RunResult first = ask();
  CHECK(count_lines(first.err, "warning") == 0);  // a missing file is made, silently

  SECTION("deleted") {
    ask_through([&] { remove_state(state); });
    // A new process finds no file and makes a new one, without a word.
    CHECK(count_lines(ask().err, "warning") == 0);
    // Only the database this time: its old WAL and index are left behind.
    REQUIRE(::unlink(state.db().c_str()) == 0);
    ask();
    ask();
  }
  SECTION("truncated to 0 bytes") {
    ask_through([&] { truncate_state(state); });
    ask();
    truncate_state(state);
    ask();
  }
  SECTION("overwritten with random bytes") {
    ask_through([&] { overwrite_with_garbage(state); });
    ask();
    // Now with nothing left of it in a WAL either.
    overwrite_with_garbage(state);
    ::unlink((state.db() + "-wal").c_str());
    ::unlink((state.db() + "-shm").c_str());
    ask();
    ask();
  }
  SECTION("a read-only file") {
    Finally writable{[&] { make_writable(state); }};
    ask_through([&] { REQUIRE(::chmod(state.db().c_str(), 0444) == 0); });
    for (int i = 0; i < 2; ++i)
      CHECK_THAT(ask().err, Catch::Contains("cannot open for writing"));
  }
  SECTION("a read-only directory") {
    Finally writable{[&] { make_writable(state); }};
    ask_through([&] { REQUIRE(::chmod(state.dir().c_str(), 0555) == 0); });
    ask();  // its WAL and index are there already: nothing needs creating
    REQUIRE(::chmod(state.dir().c_str(), 0700) == 0);  // when not root, to remove them
    ::unlink((state.db() + "-wal").c_str());
    ::unlink((state.db() + "-shm").c_str());
    REQUIRE(::chmod(state.dir().c_str(), 0555) == 0);
    ask();  // now they cannot be made
    ask();
  }
  SECTION("locked by another process") {
    // Each of these waits the busy timeout once: that is what a lock held for minutes costs.
    std::unique_ptr<WriteLock> lock;
    const RunResult during = ask_through([&] { lock = std::make_unique<WriteLock>(state.db()); });
    CHECK_THAT(during.err, Catch::Contains("database is locked"));
    lock.reset();
    {
      // Locked for reading too: detour gives up at its first read of the file.
      WholeFileLock whole(state.db());
      CHECK_THAT(ask().err, Catch::Contains("database is locked"));
    }
    CHECK(count_lines(ask().err, "warning") == 0);  // the lock is gone: shared state again
  }
}
