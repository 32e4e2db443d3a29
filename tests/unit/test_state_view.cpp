// Store::transact on every store, and the process's view of the shared state built on it: changes
// wait for the next sync and are replayed on the stored documents, decisions that must not race
// run inside the sync's transaction, and a sync with nothing to do costs no transaction.
#include <catch2/catch.hpp>

#include "counting_store.hpp"
#include "state/store.hpp"
#include "state/view.hpp"
#include "store_fixture.hpp"

using namespace detour;
using namespace detour::testing::store;
using detour::testing::CountingStore;
using nlohmann::json;

namespace {

void add(json& doc, int n) {
  doc = (doc.is_null() ? 0 : doc.get<int>()) + n;
}

// Every kind of store the engine may be given.
std::vector<std::pair<std::string, std::unique_ptr<Store>>> stores(const TempDir& dir) {
  std::vector<std::pair<std::string, std::unique_ptr<Store>>> out;
  out.emplace_back("memory", state::make_memory_store());
  out.emplace_back("sqlite", state::make_sqlite_store(dir / "raw.db"));
  out.emplace_back("open_store sqlite",
                   state::open_store("sqlite://" + dir / "open.db", env_of({}), nullptr));
  return out;
}

}  // namespace

TEST_CASE("store: transact reads, puts and removes many keys at once", "[store][view]") {
  TempDir dir;
  for (auto& [name, store] : stores(dir)) {
    INFO(name);
    store->update("a", [](json& d) { d = 1; });
    store->update("gone", [](json& d) { d = "x"; });
    store->transact([](state::Transaction& t) {
      CHECK(t.get("a") == 1);
      t.put("a", 2);
      CHECK(t.get("a") == 2);  // its own put
      t.put("b", json{{"k", true}});
      t.put("gone", nullptr);
    });
    CHECK(store->get("a") == 2);
    CHECK(store->get("b") == json{{"k", true}});
    CHECK(store->get("gone").is_null());
    // An exception from the body discards everything it put.
    CHECK_THROWS_AS(store->transact([](state::Transaction& t) {
      t.put("a", 99);
      throw std::runtime_error("body failed");
    }),
                    std::runtime_error);
    CHECK(store->get("a") == 2);
  }
}

TEST_CASE("store: a transact whose file is locked carries on in memory, once", "[store][view]") {
  TempDir dir;
  const std::string path = dir / "state.db";
  state::make_sqlite_store(path)->update("counter", [](json& doc) { doc = 10; });
  Warnings warnings;
  auto store =
      state::open_store("sqlite://" + path, env_of({}), warnings.sink(), kShortBusyTimeout);
  RawDb holder(path);
  holder.exec("BEGIN EXCLUSIVE");
  int runs = 0;
  store->transact([&](state::Transaction& t) {
    ++runs;
    json c = t.get("counter");
    add(c, 1);
    t.put("counter", c);
  });
  CHECK(runs == 1);  // the body ran once, against memory
  CHECK(warnings.seen.size() == 1);
  CHECK(store->get("counter") == 1);
  holder.exec("ROLLBACK");
  CHECK(state::make_sqlite_store(path)->get("counter") == 10);
}

TEST_CASE("view: changes wait for the sync and are replayed on the stored document", "[view]") {
  CountingStore store(state::make_memory_store());
  state::View one(store), two(store);
  CHECK(one.get("n").is_null());  // first sight: one read
  CHECK(store.reads == 1);
  one.change("n", [](json& d) { add(d, 1); });
  one.change("n", [](json& d) { add(d, 1); });
  CHECK(one.get("n") == 2);  // the process sees its own changes at once
  CHECK(store.writes == 0);
  // Another process writes meanwhile; the replay adds to it instead of overwriting it.
  store.update("n", [](json& d) { add(d, 40); });
  const auto writes = store.writes;
  one.sync();
  CHECK(store.writes == writes + 1);
  CHECK(store.get("n") == 42);
  CHECK(one.get("n") == 42);  // the view took the stored document
  one.sync();                 // nothing pending: no transaction
  CHECK(store.writes == writes + 1);
  CHECK(two.get("n") == 42);
}

TEST_CASE("view: work queued for a sync runs inside its one transaction", "[view]") {
  CountingStore store(state::make_memory_store());
  state::View view(store);
  int wakes = 0;
  view.on_pending([&] { ++wakes; });
  view.change("a", [](json& d) { add(d, 1); });
  view.change("b", [](json& d) { add(d, 1); });
  CHECK(wakes == 1);  // asked once for the turn, however much became pending
  std::vector<bool> inside;
  view.in_sync([&] {
    inside.push_back(view.syncing());
    view.update_now("c", [](json& d) { d = 5; });  // in the same transaction
  });
  CHECK(inside.empty());  // waits for the loop's sync
  store.writes = 0;
  view.sync();
  REQUIRE(inside.size() == 1);
  CHECK(inside[0]);
  CHECK(store.writes == 1);
  CHECK(store.get("c") == 5);
  CHECK(store.get("a") == 1);
  CHECK(store.get("b") == 1);
  CHECK(wakes == 1);
}

TEST_CASE("view: update_now decides against the store at once, with what is pending", "[view]") {
  CountingStore store(state::make_memory_store());
  state::View view(store);
  view.on_pending([] {});
  view.get("slots");
  view.change("slots", [](json& d) { add(d, -1); });
  store.update("slots", [](json& d) { add(d, 10); });  // another process
  bool queued_ran = false;
  view.in_sync([&] { queued_ran = true; });
  int seen = 0;
  store.writes = 0;
  view.update_now("slots", [&](json& d) {
    seen = d.get<int>();
    add(d, 1);
  });
  CHECK(seen == 9);  // the stored 10, with this process's pending -1 replayed first
  CHECK(store.writes == 1);
  CHECK(store.get("slots") == 10);
  CHECK_FALSE(queued_ran);  // queued work stays for the loop's sync
  view.sync();
  CHECK(queued_ran);
}

TEST_CASE("view: with no loop, work runs at once; what is pending is written on destruction",
          "[view]") {
  CountingStore store(state::make_memory_store());
  {
    state::View view(store);
    bool ran = false;
    view.in_sync([&] { ran = view.syncing(); });
    CHECK(ran);
    view.change("left", [](json& d) { d = "over"; });
    CHECK(store.get("left").is_null());
  }
  CHECK(store.get("left") == "over");
}
