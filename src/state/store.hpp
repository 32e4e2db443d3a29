#pragma once
// Shared state (docs/architecture.md, "Shared state"): what one detour process learned, kept for
// the next one. A Store is a small key -> JSON document map whose one write operation is an atomic
// read-modify-write, so concurrent processes never lose each other's updates. What the documents
// mean (circuit states, stats, retry budgets, later limiter buckets) is decided by the engine
// (engine/target_state.*); stores only keep them.
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/duration.hpp"

namespace detour::state {

// Thrown by a store that cannot do what it was asked (locked past its busy timeout, read-only,
// corrupt, disk full). open_store() wraps stores so that callers never see it.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A store that answered but refused this user's configuration (a Redis password, ACL or
// database number): not an outage to ride out but a mistake to report (exit 3).
class StoreAuthError : public StoreError {
 public:
  using StoreError::StoreError;
};

// What one Store::transact body sees: documents as the store holds them at that moment, and
// the ones it puts, written when the body returns.
class Transaction {
 public:
  virtual ~Transaction() = default;
  // The document under key (as put earlier in this transaction, if it was); null when none.
  virtual nlohmann::json get(std::string_view key) = 0;
  // Replaces the document under key; a null document removes the key.
  virtual void put(std::string_view key, nlohmann::json doc) = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // The document stored under key; null when there is none.
  virtual nlohmann::json get(std::string_view key) = 0;

  // Every (key, document) whose key starts with prefix, sorted by key.
  virtual std::vector<std::pair<std::string, nlohmann::json>> scan(std::string_view prefix) = 0;

  // Atomically reads the document under key (null when none), lets `change` modify it, and
  // writes it back; no other process's update to the same store happens in between. When
  // `change` leaves the document null the key is removed. `change` must not call the store.
  virtual void update(std::string_view key, const std::function<void(nlohmann::json&)>& change) = 0;

  // Runs `body` as one atomic transaction over any number of keys: no other process's update
  // comes between what it reads and what it puts. This is how the engine writes a whole turn
  // of its event loop at once (docs/architecture.md, "Shared state"). `body` must not call the
  // store; an exception from it discards its puts and propagates.
  virtual void transact(const std::function<void(Transaction&)>& body) = 0;

  // Where the state lives, for messages: "sqlite:///home/u/.local/state/detour/state.db",
  // "memory", "redis://user:***@host:6379" (never a password).
  virtual std::string describe() const = 0;

  // How far the store's clock is ahead of this machine's, for a store shared by machines (Redis:
  // its server's TIME), so that wall-clock times in the documents -- limiter slots, circuit
  // cooldowns -- mean the same on every machine. None for a store on this machine.
  virtual std::optional<Millis> clock_offset() const { return std::nullopt; }
};

// Nothing persists; one process's map. Also what every store falls back to.
std::unique_ptr<Store> make_memory_store();

// How long a SQLite store waits for another process's write lock before giving up with
// StoreError. Updates hold the lock for microseconds, so only a stuck process makes it expire.
inline constexpr Millis kDefaultBusyTimeout{2000};

// A SQLite file (created with its directory, mode 0600), WAL journal, busy timeout, one short
// BEGIN IMMEDIATE transaction per update. Throws StoreError when the file cannot be opened
// as a detour state database.
std::unique_ptr<Store> make_sqlite_store(const std::string& path,
                                         Millis busy_timeout = kDefaultBusyTimeout);

// The default file: $XDG_STATE_HOME/detour/state.db, else ~/.local/state/detour/state.db;
// empty when neither variable is usable. `env` looks up an environment variable (empty
// optional when unset).
std::string default_state_path(
    const std::function<std::optional<std::string>(std::string_view)>& env);

// A Redis server: redis://[USER:PASSWORD@]HOST[:PORT][/DB], or over TLS
// rediss://[USER:PASSWORD@]HOST[:PORT][/DB][?ca_bundle=PATH&cert=PATH&key=PATH].
struct RedisAddress {
  std::string host;
  int port = 6379;
  int db = 0;
  std::string user, password;  // percent-decoded
  bool tls = false;            // rediss://
  std::string ca_bundle;       // TLS: PEM file of the CAs to trust; empty: ca_path or the system's
  std::string ca_path;         // TLS: directory of hashed CA files ($SSL_CERT_DIR)
  std::string client_cert;     // TLS: ?cert=, a client certificate (PEM) for a server that asks
  std::string client_key;      // TLS: ?key=, its private key; empty: in client_cert
  std::string describe() const;  // the URL with the password as "***"
};

// A Redis server's documents, shared by every process and machine that names it (one lock per
// transaction, taken and released by Lua scripts). Throws StoreError when the server cannot be
// reached, StoreAuthError when it refuses the password, user or database.
std::unique_ptr<Store> make_redis_store(const RedisAddress& address,
                                        Millis busy_timeout = kDefaultBusyTimeout);

// Where a --state URL points, read without opening anything: "" or "sqlite" (the default
// file), "sqlite:///abs.db", "sqlite:relative.db", "memory". Anything else throws
// detour::UsageError naming --state (and the value, unless it may carry a password).
struct StateLocation {
  enum class Kind { memory, default_file, file, redis };
  Kind kind = Kind::default_file;
  std::string path;    // Kind::file
  RedisAddress redis;  // Kind::redis
};
StateLocation parse_state_url(const std::string& url);

// Opens the store a --state URL names: "" or "sqlite" (the default file), "sqlite:///abs.db",
// "sqlite:relative.db", "memory", "redis://...". A Redis server that cannot be reached, at
// start or later, is warned about once; the process carries on in memory and tries the server
// again with backoff, using it again once it answers. A Redis server that refuses the password
// throws detour::ConfigError (exit 3). An unknown scheme throws detour::UsageError naming --state
// and the value. A store that is missing, locked, read-only or corrupt never fails a call:
// `warn` is called once with the reason and the store carries on in memory from then on (the
// returned store wraps the real one and switches over on its first StoreError).
std::unique_ptr<Store> open_store(
    const std::string& url, const std::function<std::optional<std::string>(std::string_view)>& env,
    std::function<void(const std::string&)> warn, Millis busy_timeout = kDefaultBusyTimeout);

}  // namespace detour::state
