#pragma once
// One process's view of the shared state (docs/architecture.md, "Shared state"). The engine
// reads and writes documents here, never in the Store directly, so that a process pays a few
// store transactions per turn of its event loop rather than a few per attempt:
//
// - Outside a sync, reads come from what this process last saw (a document it has never seen
//   is read once), and changes apply to that view at once and wait to be replayed on the
//   stored document in the next sync.
// - A sync is ONE Store::transact: it replays the waiting changes on the documents as stored
//   (so no other process's update is lost), then runs the work queued for it -- decisions that
//   must see the store as it is now, like reserving capacity or claiming a breaker's probe --
//   against the same transaction, and writes every document that changed.
//
// Whoever runs the event loop asks for a sync at the end of the turn in which something became
// pending (on_pending); the view itself knows nothing of the loop.
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "state/store.hpp"

namespace detour::state {

class View {
 public:
  using Change = std::function<void(nlohmann::json&)>;

  explicit View(Store& store) : store_(store) {}
  ~View();  // writes the changes still waiting (not the queued work: its owners are gone)
  View(const View&) = delete;
  View& operator=(const View&) = delete;

  // The document under key (null when none). Inside a sync: as stored now. Outside: as this
  // process last saw it, with its own changes since.
  const nlohmann::json& get(const std::string& key);

  // Changes a document. Inside a sync it is written by that sync's transaction; outside, it
  // changes this process's view now and is replayed on the stored document at the next sync.
  // `change` must therefore depend only on what it captures by value and the document.
  void change(const std::string& key, Change change);

  // As change, but outside a sync the view itself sees it only after the next sync: for
  // changes nobody reads before then, which need not be applied twice.
  void defer(const std::string& key, Change change);

  // Changes a document against the store as it is now, for decisions other processes must not
  // race (a reservation, a probe claim). Inside a sync: in its transaction. Outside: in a
  // transaction of its own, at once, together with the changes waiting.
  void update_now(const std::string& key, const Change& change);

  // Runs `work` inside the next sync (at once when nobody runs a loop for this view).
  void in_sync(std::function<void()> work);

  // One transaction for everything waiting, or none when nothing is.
  void sync();
  bool syncing() const { return txn_ != nullptr; }
  bool pending() const { return !replays_.empty() || !work_.empty(); }

  // Called once each time something becomes pending with no sync asked for yet.
  void on_pending(std::function<void()> wake);

 private:
  nlohmann::json& working(const std::string& key);
  void ask_for_sync();

  Store& store_;
  std::map<std::string, nlohmann::json, std::less<>> cache_;  // as this process last saw them
  std::deque<std::pair<std::string, Change>> replays_;        // changes not yet in the store
  std::deque<std::function<void()>> work_;                    // to run inside the next sync
  // During a sync: its transaction, the documents it read or wrote, and those it changed.
  Transaction* txn_ = nullptr;
  std::map<std::string, nlohmann::json, std::less<>> working_;
  std::set<std::string, std::less<>> dirty_;
  std::function<void()> wake_;
  bool wake_asked_ = false;
};

}  // namespace detour::state
