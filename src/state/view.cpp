#include "state/view.hpp"

#include <utility>

namespace detour::state {

View::~View() {
  work_.clear();
  try {
    sync();
  } catch (...) {
    // Shared state only makes calls smarter; a failure to write it at exit must not end the
    // process with an exception.
  }
}

void View::on_pending(std::function<void()> wake) {
  wake_ = std::move(wake);
  wake_asked_ = false;
  ask_for_sync();
}

void View::ask_for_sync() {
  if (wake_asked_ || !wake_ || !pending() || txn_) return;
  wake_asked_ = true;
  wake_();
}

nlohmann::json& View::working(const std::string& key) {
  auto it = working_.find(key);
  if (it == working_.end()) it = working_.emplace(key, txn_->get(key)).first;
  return it->second;
}

const nlohmann::json& View::get(const std::string& key) {
  if (txn_) return working(key);
  auto it = cache_.find(key);
  if (it == cache_.end()) it = cache_.emplace(key, store_.get(key)).first;
  return it->second;
}

void View::change(const std::string& key, Change change) {
  if (txn_) {
    change(working(key));
    dirty_.insert(key);
    return;
  }
  get(key);  // what this process knows of it, so that the change applies to something
  change(cache_[key]);
  replays_.emplace_back(key, std::move(change));
  ask_for_sync();
}

void View::defer(const std::string& key, Change change) {
  if (txn_) {
    change(working(key));
    dirty_.insert(key);
    return;
  }
  replays_.emplace_back(key, std::move(change));
  ask_for_sync();
}

void View::update_now(const std::string& key, const Change& change) {
  if (txn_) {
    change(working(key));
    dirty_.insert(key);
    return;
  }
  // A sync of its own: the waiting changes and this one, but not the queued work, whose
  // owners expect it to run from the loop rather than from inside this caller.
  auto queued = std::exchange(work_, {});
  work_.emplace_back([&] {
    change(working(key));
    dirty_.insert(key);
  });
  sync();
  for (auto it = queued.rbegin(); it != queued.rend(); ++it)
    work_.push_front(std::move(*it));
  ask_for_sync();
}

void View::in_sync(std::function<void()> work) {
  if (txn_) {
    work_.push_back(std::move(work));  // the running sync takes it before it commits
    return;
  }
  work_.push_back(std::move(work));
  if (wake_) {
    ask_for_sync();
  } else {
    sync();
  }
}

void View::sync() {
  if (txn_) return;
  wake_asked_ = false;
  if (!pending()) return;
  auto replays = std::exchange(replays_, {});
  struct Reset {
    View& view;
    ~Reset() {
      view.txn_ = nullptr;
      view.dirty_.clear();
    }
  };
  {
    Reset reset{*this};
    working_.clear();
    store_.transact([&](Transaction& txn) {
      txn_ = &txn;
      // A retried transaction (a store falling back to memory) starts over from scratch.
      working_.clear();
      dirty_.clear();
      for (auto& [key, change] : replays) {
        change(working(key));
        dirty_.insert(key);
      }
      while (!work_.empty()) {
        auto work = std::move(work_.front());
        work_.pop_front();
        work();
      }
      for (const auto& key : dirty_)
        txn.put(key, working_[key]);
      txn_ = nullptr;
    });
  }
  for (auto& [key, doc] : working_)
    cache_.insert_or_assign(key, std::move(doc));
  working_.clear();
  ask_for_sync();  // work queued after the transaction committed waits for the next turn
}

}  // namespace detour::state
