#pragma once
// A Store that counts the transactions made through it (each get, scan, update and transact is
// one), for tests and benchmarks of what the engine costs the shared state.
#include <cstdint>
#include <memory>

#include "state/store.hpp"

namespace detour::testing {

class CountingStore final : public state::Store {
 public:
  explicit CountingStore(std::unique_ptr<state::Store> inner) : inner_(std::move(inner)) {}

  nlohmann::json get(std::string_view key) override {
    ++reads;
    return inner_->get(key);
  }
  std::vector<std::pair<std::string, nlohmann::json>> scan(std::string_view prefix) override {
    ++reads;
    return inner_->scan(prefix);
  }
  void update(std::string_view key, const std::function<void(nlohmann::json&)>& change) override {
    ++writes;
    inner_->update(key, change);
  }
  void transact(const std::function<void(state::Transaction&)>& body) override {
    ++writes;
    inner_->transact(body);
  }
  std::string describe() const override { return inner_->describe(); }

  std::uint64_t transactions() const { return reads + writes; }

  std::uint64_t reads = 0;   // read-only transactions
  std::uint64_t writes = 0;  // write transactions

 private:
  std::unique_ptr<state::Store> inner_;
};

}  // namespace detour::testing
