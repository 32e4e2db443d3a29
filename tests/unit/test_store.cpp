// State stores: the in-memory map, the SQLite file shared between processes (atomic updates,
// permissions, WAL, corrupt or foreign files) and open_store's URL forms and its fall-back to
// memory with one warning.
#include <catch2/catch.hpp>

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "state/store.hpp"
#include "store_fixture.hpp"

using namespace detour;
using nlohmann::json;
using state::Store;
using state::StoreError;

using namespace detour::testing::store;

namespace {

// After the fall-back the store must still work: updates land and are read back.
void check_works_in_memory(Store& store) {
  increment(store);
  increment(store);
  CHECK(store.get("counter") == 2);
  CHECK(store.scan("").size() == 1);
  CHECK(store.describe() == "memory");
}

}  // namespace

TEST_CASE("store: memory get, update, scan and delete by null", "[store]") {
  auto store = state::make_memory_store();
  CHECK(store->describe() == "memory");
  CHECK(store->get("missing").is_null());
  CHECK(store->scan("").empty());

  store->update("b/2", [](json& doc) {
    CHECK(doc.is_null());
    doc = {{"n", 2}};
  });
  store->update("a/1", [](json& doc) { doc = "one"; });
  store->update("b/1", [](json& doc) { doc = json::array({1}); });
  store->update("c", [](json& doc) { doc = true; });
  CHECK(store->get("b/2") == json{{"n", 2}});

  store->update("b/2", [](json& doc) { doc["n"] = doc["n"].get<int>() + 1; });
  CHECK(store->get("b/2") == json{{"n", 3}});

  const auto b = store->scan("b/");
  REQUIRE(b.size() == 2);
  CHECK(b[0].first == "b/1");
  CHECK(b[1].first == "b/2");
  CHECK(b[1].second == json{{"n", 3}});
  CHECK(store->scan("").size() == 4);
  CHECK(store->scan("z").empty());

  store->update("b/2", [](json& doc) { doc = nullptr; });
  CHECK(store->get("b/2").is_null());
  CHECK(store->scan("b/").size() == 1);
  store->update("never", [](json&) {});  // leaving null an absent key is not an insert
  CHECK(store->scan("").size() == 3);
}

TEST_CASE("store: memory update leaves the document when change throws", "[store]") {
  auto store = state::make_memory_store();
  store->update("k", [](json& doc) { doc = 1; });
  CHECK_THROWS_WITH(store->update("k",
                                  [](json& doc) {
                                    doc = 99;
                                    throw std::runtime_error("boom");
                                  }),
                    "boom");
  CHECK(store->get("k") == 1);
}

TEST_CASE("store: sqlite round trip between two stores on one file", "[store]") {
  TempDir dir;
  const std::string path = dir / "state.db";
  auto first = state::make_sqlite_store(path);
  auto second = state::make_sqlite_store(path);
  CHECK(first->describe() == "sqlite://" + path);

  first->update("circuit/openai", [](json& doc) { doc = {{"state", "open"}, {"failures", 5}}; });
  CHECK(second->get("circuit/openai") == json{{"state", "open"}, {"failures", 5}});
  second->update("circuit/openai", [](json& doc) { doc["state"] = "half_open"; });
  CHECK(first->get("circuit/openai")["state"] == "half_open");

  second->update("circuit/openai", [](json& doc) { doc = nullptr; });
  CHECK(first->get("circuit/openai").is_null());
  CHECK(first->scan("").empty());

  // Still there for a store opened after both are gone.
  first->update("stats/x", [](json& doc) { doc = {{"ok", 3}}; });
  first.reset();
  second.reset();
  CHECK(state::make_sqlite_store(path)->get("stats/x") == json{{"ok", 3}});
}

TEST_CASE("store: sqlite scan returns prefix matches sorted by key", "[store]") {
  TempDir dir;
  auto store = state::make_sqlite_store(dir / "state.db");
  for (const char* key : {"stats/b", "circuit/a", "stats/a", "stats", "statt", "stats/\xff"}) {
    store->update(key, [&](json& doc) { doc = key; });
  }
  const auto stats = store->scan("stats/");
  REQUIRE(stats.size() == 3);
  CHECK(stats[0].first == "stats/a");
  CHECK(stats[1].first == "stats/b");
  CHECK(stats[2].first == "stats/\xff");
  CHECK(stats[0].second == "stats/a");
  CHECK(stats[2].second == "stats/\xEF\xBF\xBD");  // invalid UTF-8 is stored replaced
  CHECK(store->scan("stats").size() == 4);
  CHECK(store->scan("").size() == 6);
  CHECK(store->scan("stats/\xff").size() == 1);
  CHECK(store->scan("nothing").empty());
}

TEST_CASE("store: sqlite interleaved updates from two stores lose nothing", "[store]") {
  TempDir dir;
  auto first = state::make_sqlite_store(dir / "state.db");
  auto second = state::make_sqlite_store(dir / "state.db");
  for (int i = 0; i < 200; ++i) {
    increment(*first);
    increment(*second);
  }
  CHECK(first->get("counter") == 400);
}

TEST_CASE("store: sqlite updates from two processes at once lose nothing", "[store]") {
  TempDir dir;
  const std::string path = dir / "state.db";
  state::make_sqlite_store(path);  // both processes then open an existing file

  // The child opens its own connection after the fork (SQLite connections must not cross a
  // fork) and reports through its exit status only: Catch2 belongs to the parent.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int status = 0;
    try {
      auto store = state::make_sqlite_store(path);
      for (int i = 0; i < 200; ++i)
        increment(*store);
    } catch (...) {
      status = 1;
    }
    ::_exit(status);
  }
  bool parent_ok = true;
  try {
    auto store = state::make_sqlite_store(path);
    for (int i = 0; i < 200; ++i)
      increment(*store);
  } catch (const std::exception& e) {
    parent_ok = false;
    UNSCOPED_INFO("parent: " << e.what());
  }
  int status = -1;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(parent_ok);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(state::make_sqlite_store(path)->get("counter") == 400);
}

TEST_CASE("store: sqlite creates its directory 0700 and its file 0600", "[store]") {
  TempDir dir;
  const std::string path = dir / "a/b/state.db";
  auto store = state::make_sqlite_store(path);
  increment(*store);
  CHECK(mode_of(dir / "a") == 0700);
  CHECK(mode_of(dir / "a/b") == 0700);
  CHECK(mode_of(path) == 0600);
  for (const char* suffix : {"-wal", "-shm"}) {
    if (fs::exists(path + suffix)) CHECK(mode_of(path + suffix) == 0600);
  }

  SECTION("a file of ours left readable by others is narrowed") {
    store.reset();
    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    auto again = state::make_sqlite_store(path);
    CHECK(mode_of(path) == 0600);
    CHECK(again->get("counter") == 1);
  }
}

TEST_CASE("store: sqlite uses the WAL journal", "[store]") {
  TempDir dir;
  const std::string path = dir / "state.db";
  auto store = state::make_sqlite_store(path);
  increment(*store);
  RawDb other(path);
  CHECK(other.text("PRAGMA journal_mode") == "wal");
  CHECK(other.text("SELECT value FROM kv WHERE key = 'counter'") == "1");
}

TEST_CASE("store: sqlite leaves the WAL un-checkpointed when it closes", "[store]") {
  // A checkpoint on close (SQLite's default for the last connection) fsyncs the database at
  // the end of every one-shot ask; without one the WAL file stays, with the update in it.
  TempDir dir;
  const std::string path = dir / "state.db";
  {
    auto store = state::make_sqlite_store(path);
    increment(*store);
  }
  std::error_code ec;
  const auto wal_size = std::filesystem::file_size(path + "-wal", ec);
  REQUIRE_FALSE(ec);
  CHECK(wal_size > 0);
  CHECK(state::make_sqlite_store(path)->get("counter") == 1);
}

TEST_CASE("store: sqlite keeps its WAL short across many one-shot processes", "[store]") {
  // Each process's first connection re-reads the whole WAL to rebuild its index, so the WAL
  // must be checkpointed every few dozen transactions rather than at SQLite's 1000 pages.
  TempDir dir;
  const std::string path = dir / "state.db";
  for (int process = 0; process < 200; ++process) {
    auto store = state::make_sqlite_store(path);
    increment(*store);
  }
  std::error_code ec;
  const auto wal_size = std::filesystem::file_size(path + "-wal", ec);
  REQUIRE_FALSE(ec);
  CHECK(wal_size < 64 * 4096);  // 200 transactions without checkpoints would be ~800 KB
  CHECK(state::make_sqlite_store(path)->get("counter") == 200);
}

TEST_CASE("store: sqlite rolls back when change throws", "[store]") {
  TempDir dir;
  const std::string path = dir / "state.db";
  auto store = state::make_sqlite_store(path);
  store->update("doc", [](json& doc) { doc = {{"n", 1}}; });

  struct Custom {
    int code;
  };
  CHECK_THROWS_WITH(store->update("doc",
                                  [](json& doc) {
                                    doc["n"] = 2;
                                    throw std::runtime_error("boom");
                                  }),
                    "boom");
  try {
    store->update("new", [](json& doc) {
      doc = 5;
      throw Custom{7};
    });
    FAIL("no exception");
  } catch (const Custom& c) {
    CHECK(c.code == 7);
  }
  CHECK(store->get("doc") == json{{"n", 1}});
  CHECK(store->get("new").is_null());

  // No transaction was left open: another connection can write straight away.
  auto other = state::make_sqlite_store(path, kShortBusyTimeout);
  increment(*other);
  increment(*store);
  CHECK(store->get("counter") == 2);
}

TEST_CASE("store: sqlite refuses a corrupt file and another program's database", "[store]") {
  TempDir dir;
  SECTION("garbage bytes") {
    const std::string path = dir / "state.db";
    const std::string garbage(4096, 'x');
    write_file(path, garbage);
    CHECK_THROWS_AS(state::make_sqlite_store(path), StoreError);
    CHECK_THROWS_WITH(state::make_sqlite_store(path),
                      "state file " + path + ": file is not a database");
    CHECK(read_file(path) == garbage);
  }
  SECTION("a database with its own kv table") {
    const std::string path = dir / "other.db";
    {
      RawDb other(path);
      other.exec("CREATE TABLE kv(k INTEGER, v BLOB); INSERT INTO kv VALUES (1, x'00')");
    }
    CHECK_THROWS_WITH(state::make_sqlite_store(path),
                      Catch::Contains("not a detour state database"));
    RawDb other(path);
    CHECK(other.text("PRAGMA journal_mode") == "delete");  // left as it was
  }
}

TEST_CASE("store: open_store falls back to memory once on a corrupt file", "[store]") {
  TempDir dir;
  const std::string path = dir / "state.db";
  write_file(path, std::string(4096, '\x5a'));
  Warnings warnings;
  auto store = state::open_store("sqlite://" + path, env_of({}), warnings.sink());
  check_works_in_memory(*store);
  REQUIRE(warnings.seen.size() == 1);
  CHECK(warnings.seen[0] == "state file " + path +
                                ": file is not a database; continuing without shared state "
                                "(memory)");
}

TEST_CASE("store: open_store falls back to memory once when the file cannot be written",
          "[store]") {
  TempDir dir;
  Warnings warnings;
  std::string path;

  SECTION("its directory would be under a regular file") {
    write_file(dir / "file.txt", "not a directory");
    path = dir / "file.txt/state.db";
  }
  SECTION("its directory is read-only") {
    if (::geteuid() == 0) {
      WARN("skipped: root ignores permission bits");
      return;
    }
    fs::create_directory(dir / "ro");
    REQUIRE(::chmod((dir / "ro").c_str(), 0500) == 0);
    path = dir / "ro/state.db";
  }
  SECTION("the file is read-only") {
    if (::geteuid() == 0) {
      WARN("skipped: root ignores permission bits");
      return;
    }
    path = dir / "state.db";
    state::make_sqlite_store(path);
    REQUIRE(::chmod(path.c_str(), 0400) == 0);
  }

  auto store = state::open_store("sqlite://" + path, env_of({}), warnings.sink());
  check_works_in_memory(*store);
  REQUIRE(warnings.seen.size() == 1);
  CHECK_THAT(warnings.seen[0], Catch::StartsWith("state file " + path + ": ") &&
                                   Catch::EndsWith("; continuing without shared state (memory)"));
}

TEST_CASE("store: open_store gives up on a lock held past the busy timeout", "[store]") {
  TempDir dir;
  const std::string path = dir / "state.db";
  state::make_sqlite_store(path)->update("counter", [](json& doc) { doc = 10; });

  Warnings warnings;
  auto store =
      state::open_store("sqlite://" + path, env_of({}), warnings.sink(), kShortBusyTimeout);
  RawDb holder(path);
  holder.exec("BEGIN EXCLUSIVE");

  CHECK(store->get("counter") == 10);  // WAL: reading does not wait for the writer
  CHECK(warnings.seen.empty());

  const auto start = std::chrono::steady_clock::now();
  increment(*store);
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= kShortBusyTimeout);
  CHECK(waited < std::chrono::seconds(1));
  REQUIRE(warnings.seen.size() == 1);
  CHECK(warnings.seen[0] ==
        "state file " + path + ": database is locked; continuing without shared state (memory)");

  // The update landed in memory (which started empty), and the store stays there.
  CHECK(store->get("counter") == 1);
  holder.exec("ROLLBACK");
  increment(*store);
  CHECK(store->get("counter") == 2);
  CHECK(store->describe() == "memory");
  CHECK(warnings.seen.size() == 1);
  CHECK(state::make_sqlite_store(path)->get("counter") == 10);
}

TEST_CASE("store: open_store waits out a lock once, even when its WAL is due a checkpoint",
          "[store]") {
  // A store that has written kWalTruncatePages (32) WAL pages or more checkpoints the WAL when
  // it is destroyed, and FallbackStore destroys the real store when it fails: that checkpoint
  // must not wait for the lock the store just gave up on (a batch's whole event loop waited
  // the busy timeout twice; tests/integration/test_state_faults.cpp).
  TempDir dir;
  const std::string path = dir / "state.db";
  constexpr Millis kBusy{500};
  Warnings warnings;
  auto store = state::open_store("sqlite://" + path, env_of({}), warnings.sink(), kBusy);
  for (int i = 0; i < 40; ++i)
    store->update("k" + std::to_string(i), [](json& doc) { doc = std::string(2000, 'x'); });
  std::error_code ec;
  REQUIRE(fs::file_size(path + "-wal", ec) >= 32 * 4096);
  RawDb holder(path);
  holder.exec("BEGIN IMMEDIATE");

  const auto start = std::chrono::steady_clock::now();
  increment(*store);
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= kBusy);
  CHECK(waited < 2 * kBusy);  // once, not once more for the checkpoint
  REQUIRE(warnings.seen.size() == 1);
  CHECK_THAT(warnings.seen[0], Catch::Contains("database is locked"));
  CHECK(store->get("counter") == 1);
  holder.exec("ROLLBACK");
}

TEST_CASE("store: open_store creates a missing directory without a warning", "[store]") {
  TempDir dir;
  const std::string path = dir / "new/deeper/state.db";
  Warnings warnings;
  auto store = state::open_store("sqlite://" + path, env_of({}), warnings.sink());
  CHECK(store->describe() == "sqlite://" + path);
  increment(*store);
  CHECK(store->get("counter") == 1);
  CHECK(fs::is_regular_file(path));
  CHECK(warnings.seen.empty());
}

TEST_CASE("store: open_store passes exceptions from change through without a warning", "[store]") {
  TempDir dir;
  Warnings warnings;
  auto store = state::open_store("sqlite://" + (dir / "state.db"), env_of({}), warnings.sink());
  increment(*store);
  CHECK_THROWS_WITH(store->update("counter", [](json&) { throw std::runtime_error("mine"); }),
                    "mine");
  // Even a StoreError is the caller's own when `change` throws it.
  CHECK_THROWS_AS(store->update("counter", [](json&) { throw StoreError("also mine"); }),
                  StoreError);
  CHECK(warnings.seen.empty());
  CHECK(store->describe() == "sqlite://" + (dir / "state.db"));
  CHECK(store->get("counter") == 1);
}

TEST_CASE("store: open_store URL forms", "[store]") {
  TempDir dir;
  Warnings warnings;

  SECTION("memory") {
    auto store = state::open_store("memory", env_of({}), warnings.sink());
    CHECK(store->describe() == "memory");
    increment(*store);
    CHECK(store->get("counter") == 1);
  }
  SECTION("sqlite:///absolute") {
    auto store = state::open_store("sqlite://" + (dir / "abs.db"), env_of({}), warnings.sink());
    increment(*store);
    CHECK(store->describe() == "sqlite://" + (dir / "abs.db"));
    CHECK(fs::is_regular_file(dir / "abs.db"));
  }
  SECTION("sqlite:relative, from the working directory") {
    const fs::path before = fs::current_path();
    fs::current_path(dir.path());
    std::unique_ptr<Store> store;
    try {
      store = state::open_store("sqlite:rel/state.db", env_of({}), warnings.sink());
      increment(*store);
    } catch (...) {
      fs::current_path(before);
      throw;
    }
    fs::current_path(before);
    CHECK(store->describe() == "sqlite:rel/state.db");
    CHECK(fs::is_regular_file(dir / "rel/state.db"));
  }
  SECTION("\"\" and \"sqlite\" use the default file") {
    const auto env = env_of({{"XDG_STATE_HOME", dir.path()}, {"HOME", "/nonexistent"}});
    for (const char* url : {"", "sqlite"}) {
      auto store = state::open_store(url, env, warnings.sink());
      increment(*store);
      CHECK(store->describe() == "sqlite://" + (dir / "detour/state.db"));
    }
    CHECK(state::make_sqlite_store(dir / "detour/state.db")->get("counter") == 2);
  }
  SECTION("no XDG_STATE_HOME or HOME: memory, with a warning") {
    auto store = state::open_store("", env_of({}), warnings.sink());
    check_works_in_memory(*store);
    REQUIRE(warnings.seen.size() == 1);
    CHECK_THAT(warnings.seen[0], Catch::Contains("HOME"));
    warnings.seen.clear();
  }
  CHECK(warnings.seen.empty());
}

TEST_CASE("store: open_store rejects unknown and unsupported schemes", "[store]") {
  const auto env = env_of({{"HOME", "/nonexistent"}});
  auto open = [&](const std::string& url) { return state::open_store(url, env, nullptr); };
  CHECK_THROWS_AS(open("foo://x"), UsageError);
  CHECK_THROWS_WITH(open("foo://x"),
                    "--state: unknown state store \"foo://x\" (use sqlite, sqlite:///PATH, memory, "
                    "redis://HOST:PORT or rediss://HOST:PORT)");
  CHECK_THROWS_AS(open("postgres"), UsageError);
  CHECK_THROWS_AS(open("sqlite://host/x.db"), UsageError);
  CHECK_THROWS_AS(open("sqlite://"), UsageError);
  CHECK_THROWS_AS(open("sqlite:"), UsageError);
  CHECK_THROWS_AS(open("redis+tls://localhost"), UsageError);
}
