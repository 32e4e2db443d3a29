// The redis:// state store against a real redis-server on loopback (redis_server.hpp): the
// Store contract, atomicity across stores, its scripts surviving a flushed script cache, and
// the faults -- a server that is down at start, killed mid-run and restarted, flushed, or that
// refuses the password.
#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "redis_server.hpp"
#include "state/store.hpp"

using namespace detour;
using namespace detour::testing;
using nlohmann::json;

namespace {

state::RedisAddress address_of(const RedisServer& redis, const std::string& password = "") {
  state::RedisAddress a;
  a.host = "127.0.0.1";
  a.port = redis.port();
  a.password = password;
  return a;
}

std::optional<std::string> no_env(std::string_view) {
  return std::nullopt;
}

}  // namespace

TEST_CASE("redis store: get, update, transact and scan keep documents like any store") {
  RedisServer redis;
  auto store = state::make_redis_store(address_of(redis));
  CHECK(store->get("target:a/m").is_null());
  store->update("target:a/m", [](json& doc) { doc = {{"n", 1}}; });
  store->update("target:a/m", [](json& doc) { doc["n"] = doc["n"].get<int>() + 1; });
  CHECK(store->get("target:a/m") == json{{"n", 2}});
  store->transact([](state::Transaction& txn) {
    txn.put("limits:a", {{"x", 1}});
    txn.put("limits:b*", {{"x", 2}});  // a glob character in a key is matched literally
    txn.put("target:a/m", nullptr);    // null removes
    CHECK(txn.get("limits:a") == json{{"x", 1}});
  });
  CHECK(store->get("target:a/m").is_null());
  const auto limits = store->scan("limits:");
  REQUIRE(limits.size() == 2);
  CHECK(limits[0].first == "limits:a");
  CHECK(limits[1].first == "limits:b*");
  CHECK(store->scan("limits:b*").size() == 1);
  CHECK(store->scan("target:").empty());
  // Namespaced, hash-tagged and expiring: what the server holds.
  CHECK(redis.cli({"EXISTS", "detour:{state}:limits:a"}).out == "1\n");
  const int ttl = std::stoi(redis.cli({"TTL", "detour:{state}:limits:a"}).out);
  CHECK(ttl > 6 * 24 * 3600);
  CHECK(ttl <= 7 * 24 * 3600);
  CHECK(store->describe() == "redis://127.0.0.1:" + std::to_string(redis.port()));
}

TEST_CASE("redis store: an exception from a transaction's body writes nothing and frees the lock") {
  RedisServer redis;
  auto store = state::make_redis_store(address_of(redis));
  CHECK_THROWS_AS(store->transact([](state::Transaction& txn) {
    txn.put("route:r", {{"turn", 1}});
    throw std::logic_error("body failed");
  }),
                  std::logic_error);
  CHECK(store->get("route:r").is_null());
  store->update("route:r", [](json& doc) { doc = {{"turn", 2}}; });  // not locked out
  CHECK(store->get("route:r") == json{{"turn", 2}});
}

TEST_CASE("redis store: no update is lost between processes racing on one document") {
  RedisServer redis;
  constexpr int kStores = 4, kEach = 150;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kStores; ++i) {
    threads.emplace_back([&] {
      try {
        // One connection each, as separate processes would have.
        auto store = state::make_redis_store(address_of(redis));
        for (int n = 0; n < kEach; ++n) {
          store->transact([](state::Transaction& txn) {
            json doc = txn.get("provider:p");
            const int count = doc.is_object() ? doc["count"].get<int>() : 0;
            txn.put("provider:p", {{"count", count + 1}});
          });
        }
      } catch (const std::exception&) {
        ++failures;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(failures == 0);
  auto store = state::make_redis_store(address_of(redis));
  CHECK(store->get("provider:p") == json{{"count", kStores * kEach}});
}

TEST_CASE("redis store: the scripts are loaded again when the server forgot them") {
  RedisServer redis;
  auto store = state::make_redis_store(address_of(redis));
  store->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });
  REQUIRE(redis.cli({"SCRIPT", "FLUSH"}).out == "OK\n");
  store->update("route:r", [](json& doc) { doc["turn"] = 2; });
  CHECK(store->get("route:r") == json{{"turn", 2}});
  CHECK(redis.cli({"SCRIPT", "EXISTS", "0000000000000000000000000000000000000000"}).exit_code == 0);
}

TEST_CASE("redis store: the server's clock is measured, and is this machine's on loopback") {
  RedisServer redis;
  auto store = state::make_redis_store(address_of(redis));
  REQUIRE(store->clock_offset().has_value());  // measured when it connects
  CHECK(std::abs(store->clock_offset()->count()) <= 5);
  store->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });  // and with each transaction
  REQUIRE(store->clock_offset().has_value());
  CHECK(std::abs(store->clock_offset()->count()) <= 5);
}

TEST_CASE("redis store: a lock left by a process that died expires") {
  RedisServer redis;
  // What a process killed between its two scripts leaves behind: the lock, with its TTL.
  REQUIRE(redis.cli({"SET", "detour:{state}!lock", "dead-process", "PX", "300"}).out == "OK\n");
  auto store = state::make_redis_store(address_of(redis));
  const auto started = std::chrono::steady_clock::now();
  store->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });
  CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(200));
  CHECK(store->get("route:r") == json{{"turn", 1}});
}

TEST_CASE("redis store: a wrong or missing password is a configuration error that never shows it") {
  RedisServer redis("c0rrect-h0rse");
  auto warned = std::make_shared<std::vector<std::string>>();
  const auto warn = [warned](const std::string& w) { warned->push_back(w); };
  const std::string wrong = "redis://:wr0ng-batt3ry@127.0.0.1:" + std::to_string(redis.port());
  try {
    state::open_store(wrong, no_env, warn);
    FAIL("a wrong password was accepted");
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    CHECK(message.find("refused the user name or password") != std::string::npos);
    CHECK(message.find("wr0ng-batt3ry") == std::string::npos);
    CHECK(message.find("redis://:***@127.0.0.1") != std::string::npos);
  }
  try {
    state::open_store("redis://127.0.0.1:" + std::to_string(redis.port()), no_env, warn);
    FAIL("a missing password was accepted");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("requires a password") != std::string::npos);
  }
  CHECK(warned->empty());
  auto store = state::open_store(redis.url(), no_env, warn);
  store->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });
  CHECK(redis.cli({"GET", "detour:{state}:route:r"}).out == "{\"turn\":1}\n");
  CHECK(store->describe().find("c0rrect-h0rse") == std::string::npos);
}

TEST_CASE("redis store: down at start, killed mid-run, back again: one warning, never a failure") {
  RedisServer redis;
  redis.stop();
  auto warned = std::make_shared<std::vector<std::string>>();
  auto store = state::open_store(redis.url(), no_env,
                                 [warned](const std::string& w) { warned->push_back(w); });
  REQUIRE(warned->size() == 1);
  CHECK((*warned)[0].find("continuing without shared state") != std::string::npos);
  store->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });  // in memory meanwhile
  CHECK(store->get("route:r") == json{{"turn", 1}});

  redis.start();
  // The store tries the server again after a backoff (500 ms at first).
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  store->update("route:r", [](json& doc) { doc = {{"turn", 7}}; });
  CHECK(redis.cli({"GET", "detour:{state}:route:r"}).out == "{\"turn\":7}\n");

  redis.stop();  // killed mid-run
  store->update("route:r", [](json& doc) { doc = {{"turn", 8}}; });
  CHECK(store->get("route:r") == json{{"turn", 8}});
  redis.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the backoff doubled
  store->update("route:r", [](json& doc) { doc = {{"turn", 9}}; });
  CHECK(redis.cli({"GET", "detour:{state}:route:r"}).out == "{\"turn\":9}\n");
  CHECK(warned->size() == 1);  // one warning for the whole run
}

TEST_CASE("redis store: FLUSHALL during a run loses the documents, not the calls") {
  RedisServer redis;
  auto store = state::open_store(redis.url(), no_env, [](const std::string&) {});
  store->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });
  REQUIRE(redis.cli({"FLUSHALL"}).out == "OK\n");
  CHECK(store->get("route:r").is_null());
  store->update("route:r", [](json& doc) { doc = {{"turn", 2}}; });
  CHECK(store->get("route:r") == json{{"turn", 2}});
}
