#pragma once
// What a batch will cost before it is sent (README, "detour batch"): the tokens and dollars a
// `--dry-run` prints, the minimum time the known limits allow, the per-line estimate that
// `--max-cost` admits against, and -j's default. Pure functions of the lines' specs and the
// configured limits.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/duration.hpp"
#include "engine/call.hpp"

namespace detour::batch {

// Tokens a request may cost at most: its input estimate and the answer it allows (max_tokens;
// without one, nothing is assumed for the answer).
std::int64_t estimated_tokens(const engine::CallSpec& spec);

// The most one request may cost in USD if its first target answers it: input tokens at the
// input price, max_tokens at the output price. nullopt when that target has no price.
std::optional<double> estimated_cost(const engine::CallSpec& spec);

// What one target (or one provider, for a provider-wide limit) is asked to carry.
struct Load {
  std::uint64_t requests = 0;
  std::int64_t tokens = 0;
  std::optional<std::int64_t> rpm, tpm, burst;
};

// The shortest time `load` takes under its limits: requests beyond the burst at rpm, tokens
// at tpm, whichever is longer. nullopt when neither limit is known.
std::optional<Millis> minimum_time(const Load& load);

struct Estimate {
  std::uint64_t lines = 0;      // lines that would be sent
  std::uint64_t bad_lines = 0;  // lines that would be answered bad_input
  std::int64_t tokens = 0;
  double cost_usd = 0;
  std::uint64_t unpriced_lines = 0;  // lines whose first target has no price
  // The longest minimum_time over the targets and providers with limits; nullopt when no
  // line's target has a known limit.
  std::optional<Millis> minimum_time;
  std::map<std::string, std::uint64_t> lines_per_target;  // "provider/model" -> lines
};

// Adds up lines one at a time, so a dry run over a million lines holds only the totals.
class Estimator {
 public:
  void add(const engine::CallSpec& spec);
  void add_bad() { ++estimate_.bad_lines; }
  Estimate finish() const;

 private:
  Estimate estimate_;
  std::map<std::string, Load> per_target_;    // "provider/model"
  std::map<std::string, Load> per_provider_;  // provider name
};

// -j's default: enough calls in flight that the limiter sets the pace, not -j. The sum of the
// known concurrency limits of the targets; else, from requests per minute, what is in flight
// when each answer takes about 10 s; else 64. Never below 1 nor above 512.
std::size_t default_concurrency(const std::vector<config::ResolvedTarget>& targets);

}  // namespace detour::batch
