#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include "core/error.hpp"
#include "core/text.hpp"
#include "state/store.hpp"

namespace detour::state {

namespace {

constexpr const char* kContinuing = "; continuing without shared state (memory)";

// The real store until its first StoreError, then an in-memory one for the rest of the
// process: shared state makes calls smarter, but losing it must never fail a call.
//
// A store on another machine (Redis) can come back: given `reopen`, the store tries it again
// after kFirstReopen, doubling the wait up to kMaxReopen, and uses it again once it answers.
// What the process learned in memory meanwhile stays behind; the shared documents win.
class FallbackStore final : public Store {
 public:
  using Warn = std::function<void(const std::string&)>;
  using Reopen = std::function<std::unique_ptr<Store>()>;
  static constexpr Millis kFirstReopen{500};
  static constexpr Millis kMaxReopen{30'000};

  FallbackStore(std::unique_ptr<Store> primary, Warn warn, Reopen reopen = nullptr)
      : primary_(std::move(primary)),
        memory_(make_memory_store()),
        warn_(std::move(warn)),
        reopen_(std::move(reopen)) {}

  nlohmann::json get(std::string_view key) override {
    std::lock_guard lock(mutex_);
    try_reopen();
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
    try_reopen();
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
    try_reopen();
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
    try_reopen();
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

  std::optional<Millis> clock_offset() const override {
    std::lock_guard lock(mutex_);
    if (primary_) last_offset_ = primary_->clock_offset();
    return last_offset_;  // kept while the store is away: the clocks have not moved apart
  }

  // Public so that a store that could not even be opened can start out in memory. Called with
  // mutex_ held, or before the store is shared.
  void fall_back(const std::string& reason) {
    if (primary_) last_offset_ = primary_->clock_offset();
    primary_.reset();
    next_reopen_ = std::chrono::steady_clock::now() + reopen_wait_;
    reopen_wait_ = std::min(reopen_wait_ * 2, kMaxReopen);
    if (warn_) {
      auto warn = std::move(warn_);
      warn_ = nullptr;
      warn(reason + kContinuing);
    }
  }

 private:
  // Called with mutex_ held, before each use while the real store is away.
  void try_reopen() {
    if (primary_ || !reopen_ || std::chrono::steady_clock::now() < next_reopen_) return;
    try {
      primary_ = reopen_();
      reopen_wait_ = kFirstReopen;
    } catch (const StoreError&) {
      next_reopen_ = std::chrono::steady_clock::now() + reopen_wait_;
      reopen_wait_ = std::min(reopen_wait_ * 2, kMaxReopen);
    }
  }

  // Recursive: a transaction's body may ask clock_offset() (the engine converts times with it).
  mutable std::recursive_mutex mutex_;
  std::unique_ptr<Store> primary_;  // null while it is away (for good without reopen_)
  std::unique_ptr<Store> memory_;
  Warn warn_;  // emptied by its one call
  Reopen reopen_;
  std::chrono::steady_clock::time_point next_reopen_{};
  Millis reopen_wait_ = kFirstReopen;
  mutable std::optional<Millis> last_offset_;
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

// Reconnects in the background of the calls: at start and whenever the server goes away, the
// process carries on in memory (one warning) and tries again with backoff.
std::unique_ptr<Store> open_redis(const RedisAddress& address, FallbackStore::Warn warn,
                                  Millis busy_timeout) {
  FallbackStore::Reopen reopen = [address, busy_timeout] {
    return make_redis_store(address, busy_timeout);
  };
  try {
    return std::make_unique<FallbackStore>(reopen(), std::move(warn), std::move(reopen));
  } catch (const StoreAuthError& e) {
    throw ConfigError(std::string("--state: ") + e.what());
  } catch (const StoreError& e) {
    auto store = std::make_unique<FallbackStore>(nullptr, std::move(warn), std::move(reopen));
    store->fall_back(e.what());
    return store;
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

// RFC 3986 percent-decoding, for a user name or password that holds ':', '@' or '/'. Empty
// optional when an escape is malformed.
std::optional<std::string> percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex_value(text[i + 1]), low = hex_value(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

std::optional<int> number_in(std::string_view text, int low, int high) {
  int value = 0;
  const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || err != std::errc() || end != text.data() + text.size() || value < low ||
      value > high)
    return std::nullopt;
  return value;
}

// redis://[USER:PASSWORD@]HOST[:PORT][/DB], the form redis-cli and most clients take, and
// rediss:// for TLS, whose options are ?ca_bundle=PATH (the CAs to trust), cert=PATH and
// key=PATH (a client certificate), joined by '&'. Errors name the URL without its user and
// password.
RedisAddress parse_redis_url(const std::string& url) {
  const auto bad = [&](const std::string& why) {
    // The form is spelled so that no part of it reads as a URL with a password: the fuzzer
    // (tests/fuzz/fuzz_state_url.cpp) checks that an error never contains the URL it was given.
    return UsageError(
        "--state: \"" + without_userinfo(url) + "\": " + why +
        " (use redis://HOST[:PORT][/DB], or rediss://HOST[:PORT][/DB][?ca_bundle=PEM] "
        "for TLS, with USER:PASSWORD@ before the host)");
  };
  RedisAddress address;
  address.tls = starts_with(url, "rediss://");
  if (!address.tls && !starts_with(url, "redis://")) throw bad("not a redis:// URL");
  std::string_view rest = std::string_view(url).substr(url.find("://") + 3);
  if (rest.find('#') != std::string_view::npos)
    throw bad("a URL fragment ('#') means nothing here");
  if (const auto question = rest.find('?'); question != std::string_view::npos) {
    const std::string_view query = rest.substr(question + 1);
    rest = rest.substr(0, question);
    if (!address.tls) throw bad("options are for rediss:// (TLS) only");
    std::set<std::string_view> seen;
    for (std::size_t start = 0; start <= query.size();) {
      const std::size_t end = std::min(query.find('&', start), query.size());
      const std::string_view option = query.substr(start, end - start);
      start = end + 1;
      const auto equals = option.find('=');
      const std::string_view name = option.substr(0, equals);
      std::string* field = name == "ca_bundle" ? &address.ca_bundle
                           : name == "cert"    ? &address.client_cert
                           : name == "key"     ? &address.client_key
                                               : nullptr;
      if (field == nullptr) {
        throw bad("unknown option \"" + std::string(name) +
                  "\" (the options are ca_bundle, cert and key)");
      }
      if (!seen.insert(name).second) throw bad(std::string(name) + " is given twice");
      const auto path = equals == std::string_view::npos
                            ? std::optional<std::string>()
                            : percent_decoded(option.substr(equals + 1));
      if (!path || path->empty()) throw bad(std::string(name) + " needs the path of a PEM file");
      *field = *path;
    }
    if (!address.client_key.empty() && address.client_cert.empty())
      throw bad("key is the private key of a cert, which is missing");
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      const auto n = number_in(db, 0, 1'000'000);
      if (!n) throw bad("the database must be a number");
      address.db = *n;
    }
  }
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    const auto user = percent_decoded(userinfo.substr(0, colon));
    const auto password = colon == std::string_view::npos
                              ? std::optional<std::string>("")
                              : percent_decoded(userinfo.substr(colon + 1));
    if (!user || !password) throw bad("a malformed %-escape in the user name or password");
    address.user = *user;
    address.password = *password;
    // redis://PASSWORD@HOST, as some clients write it: a user with no password is a password.
    if (colon == std::string_view::npos) std::swap(address.user, address.password);
  }
  std::string_view port;
  if (starts_with(std::string(authority), "[")) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) throw bad("an IPv6 address needs its closing ']'");
    address.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') throw bad("unexpected text after the host");
    if (!after.empty()) port = after.substr(1);
  } else {
    const auto colon = authority.rfind(':');
    address.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (address.host.empty()) throw bad("no host");
  if (!port.empty()) {
    const auto n = number_in(port, 1, 65535);
    if (!n) throw bad("the port must be a number from 1 to 65535");
    address.port = *n;
  }
  return address;
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
  if (url == "memory") return {StateLocation::Kind::memory, "", {}};
  if (url.empty() || url == "sqlite") return {StateLocation::Kind::default_file, "", {}};

  if (starts_with(url, "sqlite://")) {
    const std::string path = url.substr(std::string_view("sqlite://").size());
    if (path.size() < 2 || path.front() != '/') {
      throw UsageError(
          "--state: \"" + without_userinfo(url) +
          "\" is not a sqlite URL (use sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH)");
    }
    return {StateLocation::Kind::file, path, {}};
  }

  if (starts_with(url, "sqlite:")) {
    const std::string path = url.substr(std::string_view("sqlite:").size());
    if (path.empty()) throw UsageError("--state: \"sqlite:\" names no file");
    return {StateLocation::Kind::file, path, {}};
  }

  if (starts_with(url, "redis:") || starts_with(url, "rediss:")) {
    StateLocation where{StateLocation::Kind::redis, "", {}};
    where.redis = parse_redis_url(url);
    return where;
  }

  throw UsageError("--state: unknown state store \"" + without_userinfo(url) +
                   "\" (use sqlite, sqlite:///PATH, memory, redis://HOST:PORT or "
                   "rediss://HOST:PORT)");
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
    case StateLocation::Kind::redis: {
      RedisAddress address = where.redis;
      // Without ?ca_bundle, TLS trusts what a provider without ca_bundle would.
      if (address.tls && address.ca_bundle.empty()) {
        if (auto file = env("SSL_CERT_FILE"); file && !file->empty()) {
          address.ca_bundle = *file;
        } else if (auto dir = env("SSL_CERT_DIR"); dir && !dir->empty()) {
          address.ca_path = *dir;
        }
      }
      return open_redis(address, std::move(warn), busy_timeout);
    }
  }
  return make_memory_store();  // unreachable: every kind is handled above
}

}  // namespace detour::state
