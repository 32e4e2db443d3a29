#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>

#include "state/store.hpp"

namespace detour::state {

namespace {

// Stamped into the file header (PRAGMA application_id, "dtrs") so that a SQLite file made by
// some other program is refused instead of having tables added to it.
constexpr int32_t kApplicationId = 0x64747273;
constexpr int kSchemaVersion = 1;
// A store that closes with at least this many WAL pages empties the WAL (see the constructor).
constexpr int kWalTruncatePages = 32;
// What SQLite's own automatic checkpoint would do, for processes that stay open (a batch).
constexpr int kWalAutoCheckpointPages = 1000;

std::string errno_text(int err) {
  return std::strerror(err);
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return "";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// mkdir -p, each new level 0700: state reveals which providers a user calls and how often.
// Directories that already exist keep their modes; ~/.local/state may be shared on purpose.
void make_dirs(const std::string& dir, const std::string& path) {
  if (dir.empty() || dir == "/") return;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return;
    throw StoreError("state file " + path + ": " + dir + " is not a directory");
  }
  make_dirs(parent_dir(dir), path);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    const int err = errno;  // before building the message allocates
    throw StoreError("state file " + path + ": cannot create directory " + dir + ": " +
                     errno_text(err));
  }
}

// What the first 100 bytes of a SQLite file say (sqlite.org/fileformat.html, "The Database
// Header"): the journal mode at offsets 18-19 (2 = WAL), user_version at 60 and application_id
// at 68, both big-endian.
struct FileHeader {
  bool sqlite = false;
  bool wal = false;
  std::uint32_t user_version = 0;
  std::uint32_t application_id = 0;
};

std::uint32_t big_endian_u32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

FileHeader read_header(int fd) {
  unsigned char bytes[100];
  FileHeader header;
  if (::pread(fd, bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) return header;
  header.sqlite = std::memcmp(bytes, "SQLite format 3", 16) == 0;
  header.wal = header.sqlite && bytes[18] == 2 && bytes[19] == 2;
  header.user_version = big_endian_u32(bytes + 60);
  header.application_id = big_endian_u32(bytes + 68);
  return header;
}

// Creates the file ourselves so that it is born 0600 (SQLite would use 0644 minus umask, and
// gives its -wal and -shm files the database file's mode). A file of ours left wider than that
// is narrowed.
FileHeader prepare_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    throw StoreError("state file " + path + ": cannot open for writing: " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_uid == ::geteuid() && (st.st_mode & 077) != 0) {
    (void)::fchmod(fd, 0600);  // best effort: the store works either way
  }
  const FileHeader header = read_header(fd);
  ::close(fd);
  return header;
}

// Keys sort as bytes both here and in std::string, so a prefix is the half-open range
// [prefix, successor); an empty successor means "to the end".
std::string prefix_successor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<unsigned char>(s.back()) == 0xFF)
    s.pop_back();
  if (!s.empty()) s.back() = static_cast<char>(static_cast<unsigned char>(s.back()) + 1);
  return s;
}

// Text first, then its length: sqlite3_column_bytes is only exact after the conversion that
// sqlite3_column_text may do.
std::string_view column_text(sqlite3_stmt* stmt, int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
  if (text == nullptr) return {};
  return {text, static_cast<size_t>(sqlite3_column_bytes(stmt, column))};
}

nlohmann::json column_doc(sqlite3_stmt* stmt, int column) {
  const std::string_view text = column_text(stmt, column);
  auto doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  // A damaged document is treated as absent, so the next update replaces it; refusing it
  // would leave every later process without shared state over one bad row.
  return doc.is_discarded() ? nlohmann::json() : doc;
}

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Resets a cached statement however its use ends: a statement left mid-step keeps a read
// transaction open, which pins an old snapshot and blocks WAL checkpoints.
class Using {
 public:
  explicit Using(const Stmt& stmt) : stmt_(stmt.get()) {}
  ~Using() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Using(const Using&) = delete;
  Using& operator=(const Using&) = delete;
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, Millis busy_timeout) : path_(std::move(path)) {
    if (path_.empty()) throw StoreError("state file: empty path");
    make_dirs(parent_dir(path_), path_);
    const FileHeader header = prepare_file(path_);

    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK) {
      fail_with(raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    }
    sqlite3_extended_result_codes(db_.get(), 1);
    sqlite3_busy_timeout(db_.get(), static_cast<int>(std::clamp<int64_t>(
                                        busy_timeout.count(), 0, std::numeric_limits<int>::max())));

    // A file whose header already says it is ours, of this schema, in WAL mode -- every open
    // but the first -- needs none of the checks below: they cost a one-shot `ask` a read
    // transaction and four statements (tests/bench/run P1). Those header fields are written
    // once, when the file is made, and reach the main file at the first checkpoint; until then
    // the header says otherwise and the full checks run. (A future schema migration must
    // checkpoint the file before it commits, so that an older detour reads the new version
    // here.) A damaged file passes this but fails its first transaction, which the fallback to
    // memory handles like any other broken state file.
    const bool known = header.wal && header.application_id == std::uint32_t(kApplicationId) &&
                       header.user_version == std::uint32_t(kSchemaVersion);
    if (!known) check_and_initialise(busy_timeout);
    // NORMAL skips the fsync per commit, which in WAL mode risks only the last updates on
    // power loss, never corruption.
    exec("PRAGMA synchronous=NORMAL");
    // Every process's first connection rebuilds the WAL index by reading the whole WAL, so a
    // long WAL is paid for at every start of a one-shot `ask` (tests/bench/run P1). A
    // checkpoint alone does not shorten it here: only a later write on the same connection
    // restarts the log, and a one-shot process has closed by then. So the commit hook counts
    // the WAL's pages, and a store closing with kWalTruncatePages or more checkpoints and
    // truncates it -- once every dozen or so processes rather than at every close.
    sqlite3_wal_hook(db_.get(), &SqliteStore::after_commit, this);
    // The last connection to close would otherwise checkpoint the WAL into the database, with
    // fsyncs, at the end of every one-shot `detour ask`: most of what the store costs a call
    // (tests/bench/run P1; a test in tests/unit/test_store.cpp catches its loss). SQLite still
    // checkpoints when the WAL grows past its limit, and the next opener recovers the WAL.
    sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  }

  nlohmann::json get(std::string_view key) override {
    std::lock_guard lock(mutex_);
    return read(key);
  }

  std::vector<std::pair<std::string, nlohmann::json>> scan(std::string_view prefix) override {
    std::lock_guard lock(mutex_);
    const std::string upper = prefix_successor(prefix);
    Using stmt(upper.empty()
                   ? cached(scan_from_, "SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key")
                   : cached(scan_range_,
                            "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key"));
    bind(stmt, 1, prefix);
    if (!upper.empty()) bind(stmt, 2, upper);
    std::vector<std::pair<std::string, nlohmann::json>> out;
    for (;;) {
      const int rc = sqlite3_step(stmt.get());
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) fail();
      auto doc = column_doc(stmt.get(), 1);
      if (doc.is_null()) continue;
      out.emplace_back(std::string(column_text(stmt.get(), 0)), std::move(doc));
    }
    return out;
  }

  void update(std::string_view key, const std::function<void(nlohmann::json&)>& change) override {
    in_write_transaction([&] {
      nlohmann::json doc = read(key);
      change(doc);
      write(key, doc);
    });
  }

  void transact(const std::function<void(Transaction&)>& body) override {
    struct Open final : Transaction {
      SqliteStore& store;
      explicit Open(SqliteStore& s) : store(s) {}
      nlohmann::json get(std::string_view key) override { return store.read(key); }
      void put(std::string_view key, nlohmann::json doc) override { store.write(key, doc); }
    };
    in_write_transaction([&] {
      Open txn(*this);
      body(txn);
    });
  }

  ~SqliteStore() override {
    // Not once the store has failed: it is destroyed because of that (FallbackStore drops it
    // on its first StoreError), and the file is locked, read-only or damaged. A TRUNCATE
    // checkpoint invokes the busy handler until no other connection writes or reads an older
    // snapshot (sqlite.org/c3ref/wal_checkpoint_v2.html, SQLITE_CHECKPOINT_FULL and RESTART),
    // so after giving up on a lock it waited the busy timeout a second time -- in a batch, with
    // its whole event loop stalled (tests/integration/test_state_faults.cpp, and "waits out a
    // lock once" in tests/unit/test_store.cpp). Nor should a store that found the file damaged
    // write its WAL into it.
    if (!failed_ && wal_pages_ >= kWalTruncatePages) {
      // Best effort: another process reading or writing keeps it from finishing (BUSY), and
      // then the WAL simply stays until a later close.
      (void)sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                                      nullptr);
    }
  }
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  std::string describe() const override {
    return path_.front() == '/' ? "sqlite://" + path_ : "sqlite:" + path_;
  }

 private:
  [[noreturn]] void fail_with(const std::string& reason) {
    failed_ = true;
    throw StoreError("state file " + path_ + ": " + reason);
  }
  [[noreturn]] void fail() { fail_with(sqlite3_errmsg(db_.get())); }

  Stmt prepare(const char* sql) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr) !=
        SQLITE_OK) {
      fail();
    }
    return Stmt(raw);
  }

  // Each statement is compiled on its first use: a one-shot process uses few of them.
  const Stmt& cached(Stmt& slot, const char* sql) {
    if (!slot) slot = prepare(sql);
    return slot;
  }

  void exec(const char* sql) {
    if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail();
  }

  int query_int(const char* sql) {
    Stmt stmt = prepare(sql);
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_ROW) return sqlite3_column_int(stmt.get(), 0);
    if (rc == SQLITE_DONE) return 0;
    fail();
  }

  void step_done(const Stmt& stmt) {
    Using use(stmt);
    if (sqlite3_step(use.get()) != SQLITE_DONE) fail();
  }

  void bind(const Using& stmt, int index, std::string_view text) {
    if (sqlite3_bind_text64(stmt.get(), index, text.data(), text.size(), SQLITE_TRANSIENT,
                            SQLITE_UTF8) != SQLITE_OK) {
      fail();
    }
  }

  // A new file, another program's, or ours in an older state: refuse what is not ours,
  // initialise what is new, switch to WAL and check the schema version.
  void check_and_initialise(Millis busy_timeout) {
    // Reading the header first is the cheap query that finds a corrupt file, and it must come
    // before anything that writes, so that another program's database is left untouched.
    // Both reads see one snapshot: another process initialising this new file commits its
    // table and the application_id together, and two separate reads could see the table
    // without the id and take our own database for another program's.
    exec("BEGIN");
    const bool ours = query_int("PRAGMA application_id") == kApplicationId;
    const bool foreign = !ours && query_int("SELECT count(*) FROM sqlite_master") != 0;
    exec("COMMIT");
    if (foreign) fail_with("not a detour state database (it holds another program's tables)");
    // WAL lets processes read while one writes.
    enable_wal(busy_timeout);
    if (!ours) initialise();
    const int version = query_int("PRAGMA user_version");
    if (version != kSchemaVersion) {
      fail_with("schema version " + std::to_string(version) + ", but this detour reads version " +
                std::to_string(kSchemaVersion));
    }
  }

  // Switching a new file to WAL upgrades a read transaction to a write one, which SQLite
  // never lets wait on the busy handler (two upgraders could deadlock): when another process
  // is opening the same new file at that moment it fails at once with SQLITE_BUSY. Retry it
  // for as long as the busy timeout would have waited.
  void enable_wal(Millis busy_timeout) {
    const auto give_up = std::chrono::steady_clock::now() + busy_timeout;
    for (;;) {
      const int rc = sqlite3_exec(db_.get(), "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) return;
      if ((rc & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() >= give_up) fail();
      std::this_thread::sleep_for(Millis(5));
    }
  }

  // Another process may be initialising the same new file; the write lock settles who does.
  void initialise() {
    exec("BEGIN IMMEDIATE");
    try {
      if (query_int("PRAGMA application_id") != kApplicationId) {
        if (query_int("SELECT count(*) FROM sqlite_master") != 0) {
          fail_with("not a detour state database (it holds another program's tables)");
        }
        exec("CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID");
        exec(("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str());
        exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
      }
      exec("COMMIT");
    } catch (...) {
      if (!sqlite3_get_autocommit(db_.get())) {
        sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      }
      throw;
    }
  }

  // IMMEDIATE takes the write lock before the first read, so no other process can slip an
  // update in between; a deferred BEGIN would fail with SQLITE_BUSY_SNAPSHOT instead of waiting.
  void in_write_transaction(const std::function<void()>& work) {
    std::lock_guard lock(mutex_);
    step_done(cached(begin_, "BEGIN IMMEDIATE"));
    try {
      work();
      step_done(cached(commit_, "COMMIT"));
    } catch (...) {
      if (!sqlite3_get_autocommit(db_.get())) {
        Using stmt(cached(rollback_, "ROLLBACK"));
        (void)sqlite3_step(stmt.get());  // the original exception is the one worth reporting
      }
      throw;
    }
  }

  void write(std::string_view key, const nlohmann::json& doc) {
    if (doc.is_null()) {
      Using stmt(cached(delete_, "DELETE FROM kv WHERE key = ?1"));
      bind(stmt, 1, key);
      if (sqlite3_step(stmt.get()) != SQLITE_DONE) fail();
      return;
    }
    // Invalid UTF-8 (a provider's garbled header, say) is replaced rather than thrown: the
    // memory store takes any string, and this one should not fail where it would not.
    const std::string text = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    Using stmt(cached(put_,
                      "INSERT INTO kv(key, value) VALUES(?1, ?2) "
                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
    bind(stmt, 1, key);
    bind(stmt, 2, text);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) fail();
  }

  nlohmann::json read(std::string_view key) {
    Using stmt(cached(get_, "SELECT value FROM kv WHERE key = ?1"));
    bind(stmt, 1, key);
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) return nullptr;
    if (rc != SQLITE_ROW) fail();
    return column_doc(stmt.get(), 0);
  }

  // Replaces SQLite's automatic checkpoint hook (wal_autocheckpoint is one), so it does that
  // job too.
  static int after_commit(void* self, sqlite3* db, const char* name, int pages) {
    static_cast<SqliteStore*>(self)->wal_pages_ = pages;
    if (pages >= kWalAutoCheckpointPages) {
      (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    }
    return SQLITE_OK;
  }

  std::string path_;
  int wal_pages_ = 0;    // in the WAL after this connection's last commit
  bool failed_ = false;  // some call threw StoreError (for good): the destructor leaves the file be
  std::mutex mutex_;     // one connection and its cached statements, used one call at a time
  std::unique_ptr<sqlite3, DbCloser> db_;  // declared before the statements: closed after them
  // Compiled on first use (cached()).
  Stmt get_, scan_from_, scan_range_, put_, delete_, begin_, commit_, rollback_;
};

}  // namespace

std::unique_ptr<Store> make_sqlite_store(const std::string& path, Millis busy_timeout) {
  return std::make_unique<SqliteStore>(path, busy_timeout);
}

}  // namespace detour::state
