#include "engine/router.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>

namespace detour::engine {

namespace {

constexpr double kUnhealthyBelow = 0.5;
constexpr std::int64_t kMinObservedCalls = 5;

// NaN or infinite figures would break the strict weak ordering std::stable_sort relies on (and
// make no sense as latencies, prices or weights), so they count as unknown.
std::optional<double> finite(const std::optional<double>& v) {
  if (v && std::isfinite(*v)) return v;
  return std::nullopt;
}

std::vector<std::size_t> configured_order(std::size_t n) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  return order;
}

std::vector<std::size_t> order_fastest(const std::vector<RouteCandidate>& candidates) {
  std::vector<std::size_t> order = configured_order(candidates.size());
  // Unknown latencies sort before every known one so that a new target gets tried and measured;
  // otherwise the route would never learn whether it is faster than the current favourite.
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const auto la = finite(candidates[a].latency_ms);
    const auto lb = finite(candidates[b].latency_ms);
    if (!la || !lb) return !la && lb;
    return *la < *lb;
  });
  return order;
}

std::optional<double> estimated_cost(const RouteCandidate& c, const RouteContext& context) {
  const auto in = finite(c.input_cost);
  const auto out = finite(c.output_cost);
  // Half a price is no estimate: a target with a known input price and an unknown output price
  // could be the dearest of all.
  if (!in || !out) return std::nullopt;
  constexpr double kPerMillion = 1e-6;
  return (static_cast<double>(context.input_tokens) * *in +
          static_cast<double>(context.output_tokens) * *out) *
         kPerMillion;
}

std::vector<std::size_t> order_cheapest(const std::vector<RouteCandidate>& candidates,
                                        const RouteContext& context) {
  std::vector<std::optional<double>> cost;
  cost.reserve(candidates.size());
  for (const auto& c : candidates)
    cost.push_back(finite(estimated_cost(c, context)));
  std::vector<std::size_t> order = configured_order(candidates.size());
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (!cost[a] || !cost[b]) return cost[a] && !cost[b];
    return *cost[a] < *cost[b];
  });
  return order;
}

// A uniform double in [0, 1) from the top 53 bits of one draw. Done by hand rather than with
// std::uniform_real_distribution, whose algorithm the standard leaves to each library: the same
// seed must give the same order everywhere (tests, and reproducible -v traces).
double unit_interval(std::mt19937_64& rng) {
  constexpr double kTwoToMinus53 = 1.0 / 9007199254740992.0;
  return static_cast<double>(rng() >> 11) * kTwoToMinus53;
}

std::vector<std::size_t> order_weighted(const std::vector<RouteCandidate>& candidates,
                                        std::mt19937_64& rng) {
  std::vector<std::size_t> positive, rest;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const double w = candidates[i].weight;
    (std::isfinite(w) && w > 0 ? positive : rest).push_back(i);
  }

  std::vector<std::size_t> order;
  order.reserve(candidates.size());
  // Draw without replacement: each pick in proportion to weight among those still left.
  while (!positive.empty()) {
    std::size_t pick = positive.size() - 1;
    if (positive.size() > 1) {
      double total = 0;
      for (std::size_t i : positive)
        total += candidates[i].weight;
      const double r = unit_interval(rng) * total;
      double cumulative = 0;
      for (std::size_t k = 0; k < positive.size(); ++k) {
        cumulative += candidates[positive[k]].weight;
        if (r < cumulative) {
          pick = k;
          break;
        }
      }
      // Rounding may leave r just above the last cumulative sum: `pick` then stays the last.
    }
    order.push_back(positive[pick]);
    positive.erase(positive.begin() + static_cast<std::ptrdiff_t>(pick));
  }
  order.insert(order.end(), rest.begin(), rest.end());
  return order;
}

std::vector<std::size_t> order_round_robin(std::size_t n, std::uint64_t turn) {
  std::vector<std::size_t> order = configured_order(n);
  const auto shift = static_cast<std::ptrdiff_t>(turn % n);
  std::rotate(order.begin(), order.begin() + shift, order.end());
  return order;
}

bool unhealthy(const RouteCandidate& c) {
  const auto rate = finite(c.success_rate);
  // Below kMinObservedCalls a couple of unlucky failures would be enough to bury a target.
  return rate && c.observed_calls >= kMinObservedCalls && *rate < kUnhealthyBelow;
}

}  // namespace

std::optional<Strategy> parse_strategy(std::string_view name) {
  for (Strategy s : {Strategy::fallback, Strategy::fastest, Strategy::cheapest, Strategy::weighted,
                     Strategy::round_robin}) {
    if (to_string(s) == name) return s;
  }
  return std::nullopt;
}

std::string_view to_string(Strategy s) {
  switch (s) {
    case Strategy::fallback:
      return "fallback";
    case Strategy::fastest:
      return "fastest";
    case Strategy::cheapest:
      return "cheapest";
    case Strategy::weighted:
      return "weighted";
    case Strategy::round_robin:
      return "round-robin";
  }
  return "fallback";
}

std::vector<std::size_t> order_targets(Strategy strategy,
                                       const std::vector<RouteCandidate>& candidates,
                                       const RouteContext& context, std::mt19937_64& rng) {
  if (candidates.empty()) return {};

  std::vector<std::size_t> order;
  switch (strategy) {
    case Strategy::fastest:
      order = order_fastest(candidates);
      break;
    case Strategy::cheapest:
      order = order_cheapest(candidates, context);
      break;
    case Strategy::weighted:
      order = order_weighted(candidates, rng);
      break;
    case Strategy::round_robin:
      order = order_round_robin(candidates.size(), context.turn);
      break;
    case Strategy::fallback:
      order = configured_order(candidates.size());
      break;
  }

  // Demoted, not removed: when every healthy target fails too, a failing one is still better
  // than no answer.
  std::stable_partition(order.begin(), order.end(),
                        [&](std::size_t i) { return !unhealthy(candidates[i]); });
  return order;
}

}  // namespace detour::engine
