#include <map>
#include <mutex>

#include "state/store.hpp"

namespace detour::state {

namespace {

class MemoryStore final : public Store {
 public:
  nlohmann::json get(std::string_view key) override {
    std::lock_guard lock(mutex_);
    auto it = docs_.find(key);
    return it == docs_.end() ? nlohmann::json() : it->second;
  }

  std::vector<std::pair<std::string, nlohmann::json>> scan(std::string_view prefix) override {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<std::string, nlohmann::json>> out;
    for (auto it = docs_.lower_bound(prefix);
         it != docs_.end() && std::string_view(it->first).starts_with(prefix); ++it) {
      out.emplace_back(it->first, it->second);
    }
    return out;
  }

  void update(std::string_view key, const std::function<void(nlohmann::json&)>& change) override {
    std::lock_guard lock(mutex_);
    auto it = docs_.find(key);
    // `change` works on a copy so that an exception from it leaves the map as it was.
    nlohmann::json doc = it == docs_.end() ? nlohmann::json() : it->second;
    change(doc);
    if (doc.is_null()) {
      if (it != docs_.end()) docs_.erase(it);
    } else if (it != docs_.end()) {
      it->second = std::move(doc);
    } else {
      docs_.emplace(std::string(key), std::move(doc));
    }
  }

  void transact(const std::function<void(Transaction&)>& body) override {
    std::lock_guard lock(mutex_);
    // Puts are kept aside until the body returns, so that an exception leaves the map as it was.
    struct Pending final : Transaction {
      MemoryStore& store;
      std::map<std::string, nlohmann::json, std::less<>> puts;
      explicit Pending(MemoryStore& s) : store(s) {}
      nlohmann::json get(std::string_view key) override {
        if (auto it = puts.find(key); it != puts.end()) return it->second;
        auto it = store.docs_.find(key);
        return it == store.docs_.end() ? nlohmann::json() : it->second;
      }
      void put(std::string_view key, nlohmann::json doc) override {
        puts.insert_or_assign(std::string(key), std::move(doc));
      }
    } txn(*this);
    body(txn);
    for (auto& [key, doc] : txn.puts) {
      if (doc.is_null()) {
        docs_.erase(key);
      } else {
        docs_.insert_or_assign(key, std::move(doc));
      }
    }
  }

  std::string describe() const override { return "memory"; }

 private:
  std::mutex mutex_;
  std::map<std::string, nlohmann::json, std::less<>> docs_;
};

}  // namespace

std::unique_ptr<Store> make_memory_store() {
  return std::make_unique<MemoryStore>();
}

}  // namespace detour::state
