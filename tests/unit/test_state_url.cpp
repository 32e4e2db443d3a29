// What a --state URL means, read without opening anything (state::parse_state_url): the Redis
// forms, that an error never repeats a password, and where the default file goes. Split from
// test_store.cpp, which opens stores.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "state/store.hpp"
#include "store_fixture.hpp"

using namespace detour;
using namespace detour::testing::store;

// redis://[USER:PASSWORD@]HOST[:PORT][/DB], as redis-cli -u and most clients read it; rediss://
// for TLS, as redis-cli -u and redis-py read it, with ?ca_bundle=PATH (our own key's name).
TEST_CASE("store: redis URLs", "[store]") {
  struct Row {
    std::string url, host;
    int port, db;
    std::string user, password, shown;
    bool tls = false;
    std::string ca_bundle = "", cert = "", key = "";
  };
  const std::vector<Row> rows = {
      {"rediss://cache", "cache", 6379, 0, "", "", "rediss://cache:6379", true},
      {"rediss://fleet:pw@cache:6380/3?ca_bundle=%2Fetc%2Fredis%20ca.pem", "cache", 6380, 3,
       "fleet", "pw", "rediss://fleet:***@cache:6380/3", true, "/etc/redis ca.pem"},
      {"rediss://cache?ca_bundle=/etc/ca.pem", "cache", 6379, 0, "", "", "rediss://cache:6379",
       true, "/etc/ca.pem"},
      {"rediss://cache?cert=/etc/me.pem&ca_bundle=/etc/ca.pem&key=%2Fetc%2Fme.key", "cache", 6379,
       0, "", "", "rediss://cache:6379", true, "/etc/ca.pem", "/etc/me.pem", "/etc/me.key"},
      {"rediss://cache?cert=/etc/both.pem", "cache", 6379, 0, "", "", "rediss://cache:6379", true,
       "", "/etc/both.pem"},
      {"redis://cache", "cache", 6379, 0, "", "", "redis://cache:6379"},
      {"redis://cache:6380/2", "cache", 6380, 2, "", "", "redis://cache:6380/2"},
      {"redis://cache:6380/", "cache", 6380, 0, "", "", "redis://cache:6380"},
      {"redis://:pw@cache", "cache", 6379, 0, "", "pw", "redis://:***@cache:6379"},
      {"redis://pw@cache", "cache", 6379, 0, "", "pw", "redis://:***@cache:6379"},
      {"redis://fleet:p%40ss%3Aw%2Fd@10.0.0.5:7000/1", "10.0.0.5", 7000, 1, "fleet", "p@ss:w/d",
       "redis://fleet:***@10.0.0.5:7000/1"},
      {"redis://[::1]:6390", "::1", 6390, 0, "", "", "redis://[::1]:6390"},
      {"redis://[::1]", "::1", 6379, 0, "", "", "redis://[::1]:6379"},
  };
  for (const auto& row : rows) {
    INFO(row.url);
    const auto where = state::parse_state_url(row.url);
    REQUIRE(where.kind == state::StateLocation::Kind::redis);
    CHECK(where.redis.host == row.host);
    CHECK(where.redis.port == row.port);
    CHECK(where.redis.db == row.db);
    CHECK(where.redis.user == row.user);
    CHECK(where.redis.password == row.password);
    CHECK(where.redis.describe() == row.shown);
    CHECK(where.redis.tls == row.tls);
    CHECK(where.redis.ca_bundle == row.ca_bundle);
    CHECK(where.redis.client_cert == row.cert);
    CHECK(where.redis.client_key == row.key);
  }
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"redis://", "no host"},
      {"redis://:hunter22@", "no host"},
      {"redis://cache:0", "port"},
      {"redis://cache:65536", "port"},
      {"redis://:hunter22@cache:x", "port"},
      {"redis://cache/db1", "database"},
      {"redis://cache/1?timeout=5", "options are for rediss://"},
      {"redis://cache?ca_bundle=/etc/ca.pem", "options are for rediss://"},
      {"rediss://:hunter22@cache?insecure=1", "unknown option \"insecure\""},
      {"rediss://cache?ca_bundle=/a.pem&x=1", "unknown option \"x\""},
      {"rediss://cache?ca_bundle=", "ca_bundle needs"},
      {"rediss://cache?cert", "cert needs"},
      {"rediss://cache?cert=/c.pem&cert=/d.pem", "cert is given twice"},
      {"rediss://cache?key=/k.pem", "key is the private key of a cert"},
      {"rediss://cache?ca_bundle=/a.pem&", "unknown option \"\""},
      {"rediss://cache#top", "fragment"},
      {"rediss://:hunter22@", "no host"},
      {"redis://:hunter2%2@cache", "%-escape"},
      {"redis://[::1", "']'"},
      {"redis:cache", "not a redis:// URL"},
  };
  for (const auto& [url, why] : bad) {
    INFO(url);
    try {
      (void)state::parse_state_url(url);
      FAIL("accepted");
    } catch (const UsageError& e) {
      CHECK_THAT(e.what(),
                 Catch::Contains(why) && Catch::Contains("--state") && !Catch::Contains("hunter2"));
    }
  }
}

// Found by tests/fuzz/fuzz_state_url.cpp: the errors that repeat the URL repeated its
// credentials too, for any scheme but the one spelled exactly "redis:".
TEST_CASE("store: a --state error never repeats a password", "[store]") {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"Redis://user:hunter22@cache:6379/0", "\"Redis://***@cache:6379/0\""},
      {"redis+tls://:hunter22@cache/0", "\"redis+tls://***@cache/0\""},
      {"sqlite://me:hunter22@host/x.db", "\"sqlite://***@host/x.db\""},
      {"http://a:hunter22@b@c/d", "\"http://***@c/d\""},
  };
  for (const auto& [url, shown] : rows) {
    INFO(url);
    try {
      (void)state::parse_state_url(url);
      FAIL("accepted");
    } catch (const UsageError& e) {
      CHECK_THAT(e.what(), Catch::Contains(shown) && !Catch::Contains("hunter22"));
    }
  }
  // Without credentials the URL is shown as written, and "@" in a path is not a password.
  CHECK_THROWS_WITH(state::parse_state_url("foo://x/a@b"), Catch::Contains("\"foo://x/a@b\""));
  CHECK(state::parse_state_url("sqlite:///tmp/a@b.db").path == "/tmp/a@b.db");
  CHECK(state::parse_state_url("memory").kind == state::StateLocation::Kind::memory);
  CHECK(state::parse_state_url("").kind == state::StateLocation::Kind::default_file);
}

TEST_CASE("store: default_state_path", "[store]") {
  CHECK(state::default_state_path(env_of({{"XDG_STATE_HOME", "/x/state"}, {"HOME", "/home/u"}})) ==
        "/x/state/detour/state.db");
  CHECK(state::default_state_path(env_of({{"HOME", "/home/u"}})) ==
        "/home/u/.local/state/detour/state.db");
  // Empty or relative XDG_STATE_HOME is ignored, as the XDG spec says.
  CHECK(state::default_state_path(env_of({{"XDG_STATE_HOME", ""}, {"HOME", "/home/u"}})) ==
        "/home/u/.local/state/detour/state.db");
  CHECK(state::default_state_path(env_of({{"XDG_STATE_HOME", "rel"}, {"HOME", "/home/u"}})) ==
        "/home/u/.local/state/detour/state.db");
  CHECK(state::default_state_path(env_of({{"XDG_STATE_HOME", "/x"}})) == "/x/detour/state.db");
  CHECK(state::default_state_path(env_of({})).empty());
  CHECK(state::default_state_path(env_of({{"HOME", ""}})).empty());
}
