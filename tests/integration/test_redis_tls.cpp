// The rediss:// state store: Redis over TLS, against a real redis-server that speaks only TLS
// (redis_server.hpp with a certificate directory from certificates.hpp; Debian's redis-server
// 7.0 is built with TLS: `redis-server --tls-port`). The same store as redis://, so these tests
// cover what TLS changes: the certificate is verified (ca_bundle in the URL, else
// $SSL_CERT_FILE / $SSL_CERT_DIR, else the system's CAs), a certificate that cannot be verified
// is the user's configuration (exit 3, like a wrong password), a password travels inside the
// TLS, and a server lost mid-run is carried over in memory and used again when it is back.
#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "certificates.hpp"
#include "core/error.hpp"
#include "redis_server.hpp"
#include "resilience_util.hpp"
#include "state/store.hpp"

using namespace detour;
using namespace detour::testing;
using nlohmann::json;

namespace {

using Env = std::map<std::string, std::string>;

std::function<std::optional<std::string>(std::string_view)> env_of(Env values) {
  return [values = std::move(values)](std::string_view name) -> std::optional<std::string> {
    auto it = values.find(std::string(name));
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

struct Warnings {
  std::shared_ptr<std::vector<std::string>> seen = std::make_shared<std::vector<std::string>>();
  std::function<void(const std::string&)> sink() {
    return [seen = seen](const std::string& w) { seen->push_back(w); };
  }
};

// The message of the ConfigError opening `url` throws; fails the test when it opens.
std::string config_error(const std::string& url, const Env& env = {}) {
  try {
    state::open_store(url, env_of(env), [](const std::string& w) { FAIL("warned: " << w); });
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("opened " << url);
  return "";
}

// Makes the test's certificates; false (and a warning) when openssl cannot be run.
bool have_certificates(const TempDir& certs) {
  if (make_certificates(certs)) return true;
  WARN("the openssl command-line tool is not available: rediss:// tests skipped");
  return false;
}

}  // namespace

TEST_CASE("rediss store: documents over TLS, from several connections at once", "[redis][tls]") {
  TempDir certs;
  if (!have_certificates(certs)) return;
  RedisServer redis("", certs.path());
  Warnings warnings;
  auto store = state::open_store(redis.url(), env_of({}), warnings.sink());
  CHECK(store->describe() == "rediss://127.0.0.1:" + std::to_string(redis.port()));
  store->update("target:a/m", [](json& doc) { doc = {{"n", 1}}; });
  store->transact([](state::Transaction& txn) {
    json doc = txn.get("target:a/m");
    doc["n"] = doc["n"].get<int>() + 1;
    txn.put("target:a/m", doc);
    txn.put("limits:a", {{"x", 1}});
  });
  CHECK(store->get("target:a/m") == json{{"n", 2}});
  CHECK(store->scan("limits:").size() == 1);
  REQUIRE(store->clock_offset().has_value());  // TIME came back through the stream
  // What the server holds, read by redis-cli over its own TLS connection.
  CHECK(redis.cli({"GET", "detour:{state}:target:a/m"}).out == "{\"n\":2}\n");

  // A reply far larger than one TLS record or one read: a document of 300 KB.
  const std::string big(300 * 1024, 'x');
  store->update("route:big", [&](json& doc) { doc = {{"text", big}}; });
  CHECK(store->get("route:big")["text"].get<std::string>().size() == big.size());

  // Transactions of four connections racing on one document lose no update: the lock and the
  // scripts work over TLS as over TCP.
  constexpr int kStores = 4, kEach = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kStores; ++i) {
    threads.emplace_back([&] {
      try {
        auto own = state::open_store(redis.url(), env_of({}), nullptr);
        for (int n = 0; n < kEach; ++n)
          own->update("provider:p", [](json& doc) {
            doc = {{"count", doc.is_object() ? doc["count"].get<int>() + 1 : 1}};
          });
      } catch (const std::exception&) {
        ++failures;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(failures == 0);
  CHECK(store->get("provider:p") == json{{"count", kStores * kEach}});
  CHECK(warnings.seen->empty());
}

TEST_CASE("rediss store: the certificate is verified; one nobody trusts is exit 3",
          "[redis][tls]") {
  TempDir certs;
  if (!have_certificates(certs)) return;
  RedisServer redis("", certs.path());
  const std::string bare = redis.url(false);

  // The system's CAs do not know a private CA: a configuration error, not an outage to wait out.
  std::string message = config_error(bare);
  CHECK_THAT(message, Catch::Contains("rediss://127.0.0.1:" + std::to_string(redis.port())));
  CHECK_THAT(message, Catch::Contains("certificate"));
  CHECK_THAT(message, Catch::Contains("ca_bundle=PATH"));
  // Another CA is no better.
  message = config_error(bare + "?ca_bundle=" + certs.path() + "/other-ca.pem");
  CHECK_THAT(message, Catch::Contains("certificate"));
  // A CA file that is not there.
  message = config_error(bare + "?ca_bundle=" + certs.path() + "/missing.pem");
  CHECK_THAT(message, Catch::Contains("missing.pem"));

  // Trusted in the URL, through $SSL_CERT_FILE, or through $SSL_CERT_DIR: the store opens.
  for (const Env& env : {Env{}, Env{{"SSL_CERT_FILE", certs.path() + "/ca.pem"}},
                         Env{{"SSL_CERT_DIR", certs.path() + "/hashed"}}}) {
    const std::string url = env.empty() ? redis.url() : bare;
    INFO(url << (env.empty() ? "" : " with " + env.begin()->first));
    Warnings warnings;
    auto store = state::open_store(url, env_of(env), warnings.sink());
    store->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });
    CHECK(redis.cli({"EXISTS", "detour:{state}:route:r"}).out == "1\n");
    CHECK(warnings.seen->empty());
    redis.cli({"FLUSHALL"});
  }
  // ?ca_bundle wins over $SSL_CERT_FILE.
  Warnings warnings;
  auto store = state::open_store(
      redis.url(), env_of({{"SSL_CERT_FILE", certs.path() + "/other-ca.pem"}}), warnings.sink());
  store->update("route:r", [](json& doc) { doc = {{"turn", 2}}; });
  CHECK(warnings.seen->empty());
}

TEST_CASE("rediss store: the password goes inside TLS; a wrong one is exit 3 and never shown",
          "[redis][tls]") {
  TempDir certs;
  if (!have_certificates(certs)) return;
  RedisServer redis("tls-c0rrect-h0rse", certs.path());
  const std::string ca = "?ca_bundle=" + certs.path() + "/ca.pem";
  const std::string message =
      config_error("rediss://:wr0ng-batt3ry@127.0.0.1:" + std::to_string(redis.port()) + ca);
  CHECK_THAT(message, Catch::Contains("refused the user name or password"));
  CHECK_THAT(message, Catch::Contains("rediss://:***@127.0.0.1"));
  CHECK_THAT(message, !Catch::Contains("wr0ng-batt3ry"));
  Warnings warnings;
  auto store = state::open_store(redis.url(), env_of({}), warnings.sink());
  store->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });
  CHECK(redis.cli({"GET", "detour:{state}:route:r"}).out == "{\"turn\":1}\n");
  CHECK_THAT(store->describe(), !Catch::Contains("tls-c0rrect-h0rse"));
  CHECK(warnings.seen->empty());
}

TEST_CASE("rediss store: a client certificate for a server that asks; without one, exit 3",
          "[redis][tls]") {
  TempDir certs;
  if (!have_certificates(certs)) return;
  RedisServer redis("", certs.path(), /*client_certificates=*/true);
  // Redis's TLS port asks for a client certificate by default. With TLS 1.3 the refusal comes
  // after the handshake: an alert ("certificate required"), and a reset that often overtakes it.
  std::string message = config_error(redis.url());
  CHECK_THAT(message, Catch::Contains("cert=PATH&key=PATH"));
  // A certificate from a CA the server does not trust ("unknown ca", or the reset).
  TempDir strangers;
  REQUIRE(make_certificates(strangers));
  message = config_error(redis.url() + "&cert=" + strangers.path() +
                         "/client.pem&key=" + strangers.path() + "/client.key");
  CHECK_THAT(message, Catch::Contains("cert=PATH&key=PATH"));
  // A key file that is not there.
  message = config_error(redis.url() + "&cert=" + certs.path() + "/client.pem&key=" + certs.path() +
                         "/missing.key");
  CHECK_THAT(message, Catch::Contains("cert=PATH&key=PATH"));

  Warnings warnings;
  auto store = state::open_store(
      redis.url() + "&cert=" + certs.path() + "/client.pem&key=" + certs.path() + "/client.key",
      env_of({}), warnings.sink());
  store->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });
  CHECK(redis.cli({"GET", "detour:{state}:route:r"}).out == "{\"turn\":1}\n");
  CHECK(warnings.seen->empty());
}

TEST_CASE("rediss store: killed mid-run, back again, or not TLS at all: a warning, never a failure",
          "[redis][tls]") {
  TempDir certs;
  if (!have_certificates(certs)) return;
  RedisServer redis("", certs.path());
  Warnings warnings;
  auto store = state::open_store(redis.url(), env_of({}), warnings.sink());
  store->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });

  redis.stop();  // the TLS connection breaks under the store
  store->update("route:r", [](json& doc) { doc = {{"turn", 2}}; });
  CHECK(store->get("route:r") == json{{"turn", 2}});  // in memory meanwhile
  REQUIRE(warnings.seen->size() == 1);
  CHECK_THAT((*warnings.seen)[0], Catch::Contains("continuing without shared state"));

  redis.start();
  // The store tries the server again after a backoff (500 ms at first), with a new handshake.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  store->update("route:r", [](json& doc) { doc = {{"turn", 3}}; });
  CHECK(redis.cli({"GET", "detour:{state}:route:r"}).out == "{\"turn\":3}\n");
  CHECK(warnings.seen->size() == 1);

  // rediss:// to a server that speaks plain Redis: the handshake fails, the calls go on.
  RedisServer plain;
  Warnings plain_warnings;
  auto mismatched = state::open_store("rediss://127.0.0.1:" + std::to_string(plain.port()),
                                      env_of({}), plain_warnings.sink());
  mismatched->update("route:r", [](json& doc) { doc = {{"turn", 1}}; });
  CHECK(mismatched->get("route:r") == json{{"turn", 1}});
  REQUIRE(plain_warnings.seen->size() == 1);
  CHECK_THAT((*plain_warnings.seen)[0], Catch::Contains("TLS"));
}

// The real binary: what one machine learns over rediss:// another knows.
TEST_CASE("rediss: a circuit opened by three processes over TLS is skipped by a fourth",
          "[redis][tls]") {
  TempDir certs;
  if (!have_certificates(certs)) return;
  RedisServer redis("", certs.path());
  using resilience::parse_json;
  resilience::Env env(json::object(), resilience::dead_provider_toml());
  const auto ask = [&](std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--state",      redis.url(), "--json", "-m",
                                     "dead/primary", "-m",        "oa/ok",  "hi"};
    args.insert(args.begin(), extra.begin(), extra.end());
    return env.ask(args);  // a fresh HOME each: no state file in common
  };
  for (int i = 0; i < 3; ++i)
    CHECK(parse_json(ask())["attempts"][0]["error"] == "connection");
  const RunResult fourth = ask({"-vvv"});
  INFO(fourth.err);
  CHECK(parse_json(fourth)["attempts"][0]["error"] == "skipped_open");
  CHECK_THAT(fourth.err,
             Catch::Contains("state: rediss://127.0.0.1:" + std::to_string(redis.port())));
  CHECK_THAT(fourth.err, !Catch::Contains("warning"));
  CHECK(redis.cli({"EXISTS", "detour:{state}:target:oa/ok"}).out == "1\n");
}
