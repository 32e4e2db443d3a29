#include <map>
#include <mutex>

#include "core/error.hpp"
#include "state/store.hpp"

namespace detour::state {

namespace {

constexpr const char* kContinuing = "; continuing without shared state (memory)";

// The real store until its first StoreError, then an in-memory one for the rest of the
// process: shared state makes calls smarter, but losing it must never fail a call.
class FallbackStore final : public Store {
 public:
  using Warn = std::function<void(const std::string&)>;

  FallbackStore(std::unique_ptr<Store> primary, Warn warn)
      : primary_(std::move(primary)), memory_(make_memory_store()), warn_(std::move(warn)) {}

  nlohmann::json get(std::string_view key) override {
    std::lock_guard lock(mutex_);
    if (primary_) {
      try {
        return primary_->get(key);
      } catch (const StoreError& e) {
        fall_back(e.what());
      }
    }
    return memory_->get(key);
  }

  std::vector<std::pair<std::string, nlohmann::json>> scan(std::string_view prefix) override {
    std::lock_guard lock(mutex_);
    if (primary_) {
      try {
        return primary_->scan(prefix);
      } catch (const StoreError& e) {
        fall_back(e.what());
      }
    }
    return memory_->scan(prefix);
  }

  void update(std::string_view key, const std::function<void(nlohmann::json&)>& change) override {
    std::lock_guard lock(mutex_);
    if (primary_) {
      // Whatever `change` throws is the caller's own error, even a StoreError, and must reach
      // the caller rather than be mistaken for the store failing.
      bool change_threw = false;
      const auto tracked = [&](nlohmann::json& doc) {
        try {
          change(doc);
        } catch (...) {
          change_threw = true;
          throw;
        }
      };
      try {
        primary_->update(key, tracked);
        return;
      } catch (const StoreError& e) {
        if (change_threw) throw;
        fall_back(e.what());
      }
    }
    // The caller goes on as if its update landed; against a fresh memory store `change` sees
    // less history than the file had, which is the price of carrying on.
    memory_->update(key, change);
  }

  // The body runs once, whatever happens to the real store: what it reads comes from the real
  // store until that fails and from memory after; what it puts is kept aside and written at its
  // end, to the real store or, if that failed anywhere in the transaction, to memory.
  void transact(const std::function<void(Transaction&)>& body) override {
    std::lock_guard lock(mutex_);
    if (!primary_) {
      memory_->transact(body);
      return;
    }
    struct Reading final : Transaction {
      Transaction* primary = nullptr;  // null once the real store failed
      Store& memory;
      std::string failure;
      std::map<std::string, nlohmann::json, std::less<>> puts;
      explicit Reading(Store& m) : memory(m) {}
      nlohmann::json get(std::string_view key) override {
        if (auto it = puts.find(key); it != puts.end()) return it->second;
        if (primary) {
          try {
            return primary->get(key);
          } catch (const StoreError& e) {
            failure = e.what();
            primary = nullptr;
          }
        }
        return memory.get(key);
      }
      void put(std::string_view key, nlohmann::json doc) override {
        puts.insert_or_assign(std::string(key), std::move(doc));
      }
    } reading(*memory_);
    struct Abandon {};
    bool started = false, finished = false;
    try {
      primary_->transact([&](Transaction& txn) {
        started = true;
        reading.primary = &txn;
        body(reading);  // reading catches the store's errors: what escapes is the body's own
        finished = true;
        if (!reading.primary) throw Abandon{};  // roll the real store back; memory takes it
        for (auto& [key, doc] : reading.puts)
          txn.put(key, doc);
      });
      return;
    } catch (const Abandon&) {
    } catch (const StoreError& e) {
      if (started && !finished) throw;
      if (reading.failure.empty()) reading.failure = e.what();
    }
    fall_back(reading.failure);
    if (!started) {
      memory_->transact(body);  // the real store never began: the body has not run yet
      return;
    }
    memory_->transact([&](Transaction& txn) {
      for (auto& [key, doc] : reading.puts)
        txn.put(key, std::move(doc));
    });
  }

  std::string describe() const override {
    std::lock_guard lock(mutex_);
    return primary_ ? primary_->describe() : memory_->describe();
  }

  // Public so that a store that could not even be opened can start out in memory. Called with
  // mutex_ held, or before the store is shared.
  void fall_back(const std::string& reason) {
    primary_.reset();
    if (warn_) {
      auto warn = std::move(warn_);
      warn_ = nullptr;
      warn(reason + kContinuing);
    }
  }

 private:
  mutable std::mutex mutex_;
  std::unique_ptr<Store> primary_;  // null once it has failed
  std::unique_ptr<Store> memory_;
  Warn warn_;  // emptied by its one call
};

std::unique_ptr<Store> in_memory_after(const std::string& reason, FallbackStore::Warn warn) {
  auto store = std::make_unique<FallbackStore>(nullptr, std::move(warn));
  store->fall_back(reason);
  return store;
}

std::unique_ptr<Store> open_sqlite(const std::string& path, FallbackStore::Warn warn,
                                   Millis busy_timeout) {
  try {
    return std::make_unique<FallbackStore>(make_sqlite_store(path, busy_timeout), std::move(warn));
  } catch (const StoreError& e) {
    return in_memory_after(e.what(), std::move(warn));
  }
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return std::string_view(s).starts_with(prefix);
}

// A URL as an error may show it: "user:password@" (of any scheme, a mistyped "Redis://" or
// "redis+tls://" included) becomes "***@".
std::string without_userinfo(const std::string& url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  const auto authority = scheme_end + 3;
  const auto at = url.rfind('@', url.find_first_of("/?#", authority));
  if (at == std::string::npos || at < authority) return url;
  return url.substr(0, authority) + "***" + url.substr(at);
}

}  // namespace

std::string default_state_path(
    const std::function<std::optional<std::string>(std::string_view)>& env) {
  // The XDG spec says a relative XDG_STATE_HOME is invalid and must be ignored.
  if (auto xdg = env("XDG_STATE_HOME"); xdg && !xdg->empty() && xdg->front() == '/') {
    return *xdg + "/detour/state.db";
  }
  if (auto home = env("HOME"); home && !home->empty()) {
    return *home + "/.local/state/detour/state.db";
  }
  return "";
}

StateLocation parse_state_url(const std::string& url) {
  if (url == "memory") return {StateLocation::Kind::memory, ""};
  if (url.empty() || url == "sqlite") return {StateLocation::Kind::default_file, ""};

  if (starts_with(url, "sqlite://")) {
    const std::string path = url.substr(std::string_view("sqlite://").size());
    if (path.size() < 2 || path.front() != '/') {
      throw UsageError(
          "--state: \"" + without_userinfo(url) +
          "\" is not a sqlite URL (use sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH)");
    }
    return {StateLocation::Kind::file, path};
  }

  if (starts_with(url, "sqlite:")) {
    const std::string path = url.substr(std::string_view("sqlite:").size());
    if (path.empty()) throw UsageError("--state: \"sqlite:\" names no file");
    return {StateLocation::Kind::file, path};
  }

  // Not echoed: a redis URL may carry a password.
  if (starts_with(url, "redis:") || starts_with(url, "rediss:")) {
    throw UsageError(
        "--state: redis state stores are not supported yet (use sqlite, sqlite:///PATH, or "
        "memory)");
  }

  throw UsageError("--state: unknown state store \"" + without_userinfo(url) +
                   "\" (use sqlite, sqlite:///PATH, or memory)");
}

std::unique_ptr<Store> open_store(
    const std::string& url, const std::function<std::optional<std::string>(std::string_view)>& env,
    std::function<void(const std::string&)> warn, Millis busy_timeout) {
  const StateLocation where = parse_state_url(url);
  switch (where.kind) {
    case StateLocation::Kind::memory:
      return make_memory_store();
    case StateLocation::Kind::default_file: {
      const std::string path = default_state_path(env);
      if (path.empty()) {
        return in_memory_after("state file: neither XDG_STATE_HOME nor HOME is set",
                               std::move(warn));
      }
      return open_sqlite(path, std::move(warn), busy_timeout);
    }
    case StateLocation::Kind::file:
      return open_sqlite(where.path, std::move(warn), busy_timeout);
  }
  return make_memory_store();  // unreachable: every kind is handled above
}

}  // namespace detour::state
