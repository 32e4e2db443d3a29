// The Redis store (docs/architecture.md, "Shared state", "Redis"): the documents of a fleet of
// detour processes on many machines, in one Redis server. Only this file includes hiredis.
//
// A transaction is two Lua scripts, loaded once and called with EVALSHA:
//   begin   takes the store's lock (SET NX PX, with a token of this process), reads the server's
//           TIME and the documents this process is likely to need, all in one round trip;
//   commit  checks that the lock is still ours, writes what the transaction put (each document
//           with a TTL, so that abandoned keys expire) and releases the lock.
// A document the body reads that `begin` did not bring is one GET, under the lock. The lock
// makes a transaction atomic across processes and machines exactly like SQLite's write lock;
// a holder that dies loses it after kLockTtl, and a commit whose lock expired writes nothing.
// Every key shares one hash tag, so that any transaction (which may touch several providers)
// stays in one Redis Cluster slot.
//
// redis:// goes through hiredis's own connection. rediss:// (TLS) goes through libcurl's TLS
// stream (net/tls_stream.hpp), because Debian's hiredis 0.14 has no TLS: hiredis still writes
// the commands (redisFormatCommandArgv) and reads the replies (redisReader), so both carry the
// same RESP and give the same redisReply.
#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "net/tls_stream.hpp"
#include "state/store.hpp"

namespace detour::state {

namespace {

constexpr std::string_view kKeyPrefix = "detour:{state}:";
constexpr const char* kLockKey = "detour:{state}!lock";
constexpr std::int64_t kLockTtlMs = 1000;
// A document nobody has written for this long disappears: a target or provider that is no
// longer used should not stay in the server forever.
constexpr std::int64_t kDocumentTtlSeconds = 7 * 24 * 3600;
// How many of the keys recent transactions touched `begin` reads ahead, at most.
constexpr std::size_t kPrefetchKeys = 64;
constexpr std::uint64_t kPrefetchWindow = 16;  // transactions

// KEYS[1] the lock, KEYS[2..] documents to read. ARGV[1] this process's token, ARGV[2] the
// lock's TTL in ms. Returns {0, lock's remaining ms} when another holds the lock, else
// {1, seconds, microseconds, doc...} (a missing document is a nil).
constexpr const char* kBeginScript = R"lua(
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
local t = redis.call('TIME')
local out = {1, tonumber(t[1]), tonumber(t[2])}
for i = 2, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) end
return out
)lua";

// KEYS[1] the lock, KEYS[2..] documents to write. ARGV[1] the token, ARGV[2] the documents'
// TTL in seconds, ARGV[3..] their values, "" to delete. Returns 1, or 0 (nothing written)
// when the lock is no longer this token's.
constexpr const char* kCommitScript = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #KEYS do
  local value = ARGV[i + 1]
  if value == '' then
    redis.call('DEL', KEYS[i])
  else
    redis.call('SET', KEYS[i], value, 'EX', ARGV[2])
  end
end
redis.call('DEL', KEYS[1])
return 1
)lua";

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};

// How long the TCP connect (and, for rediss://, the TLS handshake) may take.
constexpr Millis kConnectTimeout{500};
constexpr Millis kTlsConnectTimeout{2000};
// How long a TLS connection whose first command failed is watched for the server's alert.
constexpr Millis kAlertWait{250};

timeval to_timeval(Millis ms) {
  return {static_cast<time_t>(ms.count() / 1000),
          static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

// SCAN's MATCH is a glob: a prefix is matched literally by escaping its special characters.
std::string glob_literal(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

nlohmann::json parse_document(const redisReply* reply) {
  if (reply == nullptr || reply->type != REDIS_REPLY_STRING) return nullptr;
  // A value that is not JSON (written by hand, or by something else) counts as no document.
  auto doc = nlohmann::json::parse(reply->str, reply->str + reply->len, nullptr, false);
  return doc.is_discarded() ? nlohmann::json() : doc;
}

std::string random_token() {
  std::random_device device;
  std::mt19937_64 bits((std::uint64_t{device()} << 32) ^ device());
  char text[40];
  std::snprintf(text, sizeof text, "%d-%016llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(bits()));
  return text;
}

class RedisStore final : public Store {
 public:
  RedisStore(const RedisAddress& address, Millis busy_timeout)
      : address_(address), busy_timeout_(busy_timeout), token_(random_token()) {
    connect();
  }

  nlohmann::json get(std::string_view key) override {
    const std::string name = stored_name(key);
    return parse_document(command({"GET", name}).get());
  }

  std::vector<std::pair<std::string, nlohmann::json>> scan(std::string_view prefix) override {
    const std::string pattern = glob_literal(std::string(kKeyPrefix) + std::string(prefix)) + "*";
    std::set<std::string> names;
    std::string cursor = "0";
    do {
      Reply reply = command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) fail("SCAN: unexpected reply");
      cursor.assign(reply->element[0]->str, reply->element[0]->len);
      const redisReply* keys = reply->element[1];
      for (std::size_t i = 0; i < keys->elements; ++i)
        names.emplace(keys->element[i]->str, keys->element[i]->len);
    } while (cursor != "0");
    std::vector<std::pair<std::string, nlohmann::json>> out;
    std::vector<std::string> batch{"MGET"};
    const auto read_batch = [&] {
      if (batch.size() == 1) return;
      Reply reply = command(batch);
      for (std::size_t i = 0; i + 1 < batch.size() && i < reply->elements; ++i) {
        nlohmann::json doc = parse_document(reply->element[i]);
        if (!doc.is_null())
          out.emplace_back(batch[i + 1].substr(kKeyPrefix.size()), std::move(doc));
      }
      batch.resize(1);
    };
    for (const auto& name : names) {
      batch.push_back(name);
      if (batch.size() > 256) read_batch();
    }
    read_batch();
    return out;  // sorted: `names` is
  }

  void update(std::string_view key, const std::function<void(nlohmann::json&)>& change) override {
    transact([&](Transaction& txn) {
      nlohmann::json doc = txn.get(key);
      change(doc);
      txn.put(key, std::move(doc));
    });
  }

  void transact(const std::function<void(Transaction&)>& body) override;

  std::string describe() const override { return address_.describe(); }

  std::optional<Millis> clock_offset() const override { return offset_; }

 private:
  struct Txn;

  void connect();
  void connect_tls();
  bool connected() const { return context_ || stream_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw StoreError(address_.describe() + ": " + what);
  }
  static std::string stored_name(std::string_view key) {
    return std::string(kKeyPrefix) + std::string(key);
  }
  Reply command(const std::vector<std::string>& args);
  redisReply* round_trip_tls(int argc, const char** argv, const size_t* lengths);
  [[noreturn]] void drop_tls(const std::string& why);
  [[noreturn]] void fail_tls(const net::StreamError& e, const std::string& doing);
  void why_tls_closed();
  Reply finish(Reply reply, const std::vector<std::string>& args);
  Reply script(const std::string& sha, const char* text, const std::vector<std::string>& keys,
               const std::vector<std::string>& args);
  Reply begin(const std::vector<std::string>& prefetch);
  void note_time(std::int64_t server_us, std::chrono::steady_clock::time_point sent,
                 std::chrono::system_clock::time_point sent_wall);
  std::vector<std::string> prefetch_keys() const;

  RedisAddress address_;
  Millis busy_timeout_;
  std::string token_;
  std::unique_ptr<redisContext, ContextDeleter> context_;  // redis://
  std::unique_ptr<net::ByteStream> stream_;                // rediss://
  std::unique_ptr<redisReader, ReaderDeleter> reader_;     // rediss://: the replies' parser
  std::string begin_sha_, commit_sha_;
  std::map<std::string, std::uint64_t> recent_;  // key -> the transaction that last touched it
  std::uint64_t transactions_ = 0;
  std::optional<Millis> offset_;
  Millis offset_rtt_{0};
};

void RedisStore::connect_tls() {
  net::TlsStreamOptions options;
  options.host = address_.host;
  options.port = address_.port;
  options.ca_bundle = address_.ca_bundle;
  options.ca_path = address_.ca_path;
  options.client_cert = address_.client_cert;
  options.client_key = address_.client_key;
  options.connect_timeout = kTlsConnectTimeout;
  try {
    stream_ = net::connect_tls(options);
  } catch (const net::StreamError& e) {
    fail_tls(e, "cannot connect: ");
  }
  reader_.reset(redisReaderCreate());
  if (!reader_) fail("cannot allocate a reply reader");
}

void RedisStore::connect() {
  if (address_.tls) {
    connect_tls();
  } else {
    context_.reset(
        redisConnectWithTimeout(address_.host.c_str(), address_.port, to_timeval(kConnectTimeout)));
    if (!context_) fail("cannot allocate a connection");
    if (context_->err) fail(std::string("cannot connect: ") + context_->errstr);
    redisSetTimeout(context_.get(), to_timeval(busy_timeout_));
    redisEnableKeepAlive(context_.get());
  }
  // Every refusal from here on is the user's configuration (a password, an ACL, a database
  // number), not an outage: it ends the command (exit 3) instead of falling back to memory.
  std::string_view step = "AUTH";
  try {
    if (!address_.password.empty()) {
      std::vector<std::string> auth{"AUTH"};
      if (!address_.user.empty()) auth.push_back(address_.user);
      auth.push_back(address_.password);
      command(auth);
    }
    step = "SELECT";
    if (address_.db != 0) command({"SELECT", std::to_string(address_.db)});
    step = "SCRIPT";
    const auto load = [&](const char* text) {
      Reply reply = command({"SCRIPT", "LOAD", text});
      return std::string(reply->str, reply->len);
    };
    begin_sha_ = load(kBeginScript);
    commit_sha_ = load(kCommitScript);
    // The server's clock from the start, for a process that only reads (detour limits).
    const auto sent = std::chrono::steady_clock::now();
    const auto sent_wall = std::chrono::system_clock::now();
    Reply time = command({"TIME"});
    // Two decimal strings, seconds and microseconds; anything else (a proxy that rewrote the
    // reply, say) leaves the clock unmeasured until the first transaction's TIME.
    const auto number = [](const redisReply* r) -> std::optional<std::int64_t> {
      std::int64_t value = 0;
      if (r->type != REDIS_REPLY_STRING) return std::nullopt;
      const auto [end, err] = std::from_chars(r->str, r->str + r->len, value);
      if (err != std::errc() || end != r->str + r->len) return std::nullopt;
      return value;
    };
    if (time->type == REDIS_REPLY_ARRAY && time->elements == 2) {
      const auto seconds = number(time->element[0]), micros = number(time->element[1]);
      if (seconds && micros) note_time(*seconds * 1'000'000 + *micros, sent, sent_wall);
    }
  } catch (const StoreError& e) {
    if (!connected()) {  // the connection failed, not the server refusing
      if (address_.tls) why_tls_closed();
      throw;
    }
    // The server's own words are not repeated for AUTH: they never hold the password, but what
    // a proxy in between answers might.
    const std::string_view said = e.what();
    std::string why;
    if (said.find("NOAUTH") != std::string_view::npos) {
      why = "the Redis server requires a password (redis://[USER]:PASSWORD@HOST:PORT)";
    } else if (step == "AUTH") {
      why = "the Redis server refused the user name or password";
    } else if (step == "SCRIPT" && said.find("NOPERM") == std::string_view::npos) {
      throw;  // a server still loading its data, say: an outage like any other
    } else {
      why = std::string(said.substr(said.find(": ") + 2));
    }
    throw StoreAuthError(address_.describe() + ": " + why);
  }
}

// One command and its reply over the TLS stream. A lost connection, a timeout or a reply
// that is not RESP ends the connection, as hiredis does with its own.
void RedisStore::drop_tls(const std::string& why) {
  stream_.reset();
  reader_.reset();
  fail(why);
}

// A server that refuses our client certificate after a TLS 1.3 handshake sends its alert and
// closes, and what we see first is often only a reset. So when the first command on a new TLS
// connection failed, a second connection listens a moment without writing (only a connection
// that already failed pays for the wait). A server that answers a handshake and then, unasked,
// sends an alert about a certificate or ends the connection at once (its reset can overtake its
// alert) refuses this client's certificate, or the lack of one: the user's configuration, not an
// outage. A server that stays silent waits for a command: the first failure stands.
void RedisStore::why_tls_closed() {
  try {
    connect_tls();
    char byte = 0;
    stream_->receive(&byte, 1, kAlertWait);
  } catch (const net::StreamError& e) {
    if (e.certificate() != net::StreamError::Certificate::none) fail_tls(e, "");
    if (!e.timed_out()) {
      fail_tls(net::StreamError(std::string(e.what()) +
                                    " (the server ended the connection right after the "
                                    "handshake, before any command)",
                                net::StreamError::Certificate::client),
               "");
    }
  } catch (const StoreAuthError&) {
    throw;
  } catch (const std::exception&) {
    // Silence (the server waits for a command) or another failure: not a certificate.
  }
  stream_.reset();
  reader_.reset();
}

// A certificate problem is the same on every try: the user's configuration (or someone in
// between), not an outage, so it ends the command like a wrong password.
void RedisStore::fail_tls(const net::StreamError& e, const std::string& doing) {
  stream_.reset();
  reader_.reset();
  using Certificate = net::StreamError::Certificate;
  switch (e.certificate()) {
    case Certificate::server:
      throw StoreAuthError(address_.describe() + ": " + e.what() +
                           " (name the CA that signed the server's certificate with "
                           "rediss://HOST:PORT?ca_bundle=PATH, or in $SSL_CERT_FILE)");
    case Certificate::client:
      throw StoreAuthError(address_.describe() + ": " + e.what() +
                           " (the server wants a client certificate its CA signed: "
                           "rediss://HOST:PORT?cert=PATH&key=PATH)");
    case Certificate::none:
      break;
  }
  fail(doing + e.what());
}

redisReply* RedisStore::round_trip_tls(int argc, const char** argv, const size_t* lengths) {
  char* wire = nullptr;
  const int size = redisFormatCommandArgv(&wire, argc, argv, lengths);
  if (size < 0) fail("cannot encode a command");
  const std::unique_ptr<char, void (*)(char*)> owned(wire, redisFreeCommand);
  try {
    stream_->send_all(std::string_view(wire, static_cast<std::size_t>(size)), busy_timeout_);
    for (;;) {
      void* reply = nullptr;
      if (redisReaderGetReply(reader_.get(), &reply) != REDIS_OK)
        drop_tls(std::string("not a Redis reply: ") + reader_->errstr);
      if (reply != nullptr) return static_cast<redisReply*>(reply);
      char buffer[16 * 1024];
      const std::size_t got = stream_->receive(buffer, sizeof buffer, busy_timeout_);
      if (redisReaderFeed(reader_.get(), buffer, got) != REDIS_OK)
        drop_tls(std::string("not a Redis reply: ") + reader_->errstr);
    }
  } catch (const net::StreamError& e) {
    fail_tls(e, "");
  }
}

Reply RedisStore::command(const std::vector<std::string>& args) {
  if (!connected()) fail("not connected");
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  const int argc = static_cast<int>(argv.size());
  if (stream_) return finish(Reply(round_trip_tls(argc, argv.data(), lengths.data())), args);
  Reply reply(static_cast<redisReply*>(
      redisCommandArgv(context_.get(), argc, argv.data(), lengths.data())));
  if (!reply) {
    const std::string why = context_->errstr[0] ? context_->errstr : "connection lost";
    context_.reset();  // a context with an error cannot be used again
    fail(why);
  }
  return finish(std::move(reply), args);
}

// A reply that is an error: NOSCRIPT for script() to reload, else the command's failure.
Reply RedisStore::finish(Reply reply, const std::vector<std::string>& args) {
  if (reply->type == REDIS_REPLY_ERROR) {
    const std::string why(reply->str, reply->len);
    if (why.rfind("NOSCRIPT", 0) == 0) throw std::out_of_range(why);  // script() reloads
    fail(args.front() + ": " + why);
  }
  return reply;
}

Reply RedisStore::script(const std::string& sha, const char* text,
                         const std::vector<std::string>& keys,
                         const std::vector<std::string>& args) {
  std::vector<std::string> call{"EVALSHA", sha, std::to_string(keys.size())};
  call.insert(call.end(), keys.begin(), keys.end());
  call.insert(call.end(), args.begin(), args.end());
  try {
    return command(call);
  } catch (const std::out_of_range&) {
    // The server lost its script cache (a restart, SCRIPT FLUSH): EVAL sends the script itself
    // and caches it again under the same SHA.
    call[0] = "EVAL";
    call[1] = text;
    return command(call);
  }
}

std::vector<std::string> RedisStore::prefetch_keys() const {
  std::vector<std::pair<std::uint64_t, std::string>> by_age;
  for (const auto& [key, when] : recent_)
    if (when + kPrefetchWindow >= transactions_) by_age.emplace_back(when, key);
  std::sort(by_age.rbegin(), by_age.rend());
  if (by_age.size() > kPrefetchKeys) by_age.resize(kPrefetchKeys);
  std::vector<std::string> keys;
  for (auto& [when, key] : by_age)
    keys.push_back(std::move(key));
  return keys;
}

// The server's clock against this machine's, from the round trip with the least delay seen:
// limiter slots are wall-clock times, and machines whose clocks disagree must agree on them.
void RedisStore::note_time(std::int64_t server_us, std::chrono::steady_clock::time_point sent,
                           std::chrono::system_clock::time_point sent_wall) {
  using namespace std::chrono;
  const auto rtt = duration_cast<Millis>(steady_clock::now() - sent);
  if (offset_ && rtt > offset_rtt_ * 2 + Millis(1)) return;
  const std::int64_t local_us = duration_cast<microseconds>(sent_wall.time_since_epoch()).count() +
                                duration_cast<microseconds>(steady_clock::now() - sent).count() / 2;
  offset_ = Millis((server_us - local_us) / 1000);
  offset_rtt_ = rtt;
}

Reply RedisStore::begin(const std::vector<std::string>& prefetch) {
  std::vector<std::string> keys{kLockKey};
  for (const auto& key : prefetch)
    keys.push_back(stored_name(key));
  const std::vector<std::string> args{token_, std::to_string(kLockTtlMs)};
  const auto deadline = std::chrono::steady_clock::now() + busy_timeout_;
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    const auto sent = std::chrono::steady_clock::now();
    const auto sent_wall = std::chrono::system_clock::now();
    Reply reply = script(begin_sha_, kBeginScript, keys, args);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) fail("begin: unexpected reply");
    if (reply->element[0]->integer == 1) {
      if (reply->elements != keys.size() + 2) fail("begin: unexpected reply");
      note_time(reply->element[1]->integer * 1'000'000 + reply->element[2]->integer, sent,
                sent_wall);
      return reply;
    }
    // Another process holds the lock, for microseconds unless it died holding it.
    if (std::chrono::steady_clock::now() + pause > deadline)
      fail("the store stayed locked for " + std::to_string(busy_timeout_.count()) + " ms");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(2000));
  }
}

struct RedisStore::Txn final : Transaction {
  RedisStore& store;
  std::map<std::string, nlohmann::json, std::less<>> read;
  std::map<std::string, nlohmann::json, std::less<>> puts;
  explicit Txn(RedisStore& s) : store(s) {}

  nlohmann::json get(std::string_view key) override {
    if (auto it = puts.find(key); it != puts.end()) return it->second;
    if (auto it = read.find(key); it != read.end()) return it->second;
    nlohmann::json doc = parse_document(store.command({"GET", stored_name(key)}).get());
    read.emplace(std::string(key), doc);
    return doc;
  }
  void put(std::string_view key, nlohmann::json doc) override {
    puts.insert_or_assign(std::string(key), std::move(doc));
  }
};

void RedisStore::transact(const std::function<void(Transaction&)>& body) {
  const std::vector<std::string> prefetch = prefetch_keys();
  Reply begun = begin(prefetch);
  Txn txn(*this);
  for (std::size_t i = 0; i < prefetch.size(); ++i)
    txn.read.emplace(prefetch[i], parse_document(begun->element[i + 3]));
  std::vector<std::string> keys{kLockKey};
  std::vector<std::string> args{token_, std::to_string(kDocumentTtlSeconds)};
  try {
    body(txn);
  } catch (...) {
    try {
      script(commit_sha_, kCommitScript, keys, {token_, "0"});  // only releases the lock
    } catch (...) {
      // The lock expires on its own; the body's exception is the one to report.
    }
    throw;
  }
  ++transactions_;
  for (const auto& [key, doc] : txn.read)
    recent_[key] = transactions_;
  for (auto& [key, doc] : txn.puts) {
    recent_[key] = transactions_;
    keys.push_back(stored_name(key));
    args.push_back(doc.is_null() ? std::string() : doc.dump());
  }
  if (recent_.size() > 4 * kPrefetchKeys) {
    std::erase_if(
        recent_, [&](const auto& entry) { return entry.second + kPrefetchWindow < transactions_; });
  }
  // A commit that finds its lock expired (this process stalled for kLockTtlMs) writes nothing:
  // another process may have read and written the same documents since.
  script(commit_sha_, kCommitScript, keys, args);
}

}  // namespace

std::string RedisAddress::describe() const {
  std::string out = tls ? "rediss://" : "redis://";
  if (!user.empty() || !password.empty()) out += (user.empty() ? "" : user) + ":***@";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  out += ":" + std::to_string(port);
  if (db != 0) out += "/" + std::to_string(db);
  return out;
}

std::unique_ptr<Store> make_redis_store(const RedisAddress& address, Millis busy_timeout) {
  return std::make_unique<RedisStore>(address, busy_timeout);
}

}  // namespace detour::state
