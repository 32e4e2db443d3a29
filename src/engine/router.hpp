#pragma once
// Routing strategies (docs/architecture.md, "Routing") as one pure function: the order in which a
// call tries the targets of its chain. No I/O: what the engine has learned of each target is passed
// in, and randomness comes from a caller-owned generator. Open circuits are not decided here; the
// call skips them (recording `skipped_open`) wherever they land in the order.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace detour::engine {

// What routing knows of one target of the chain.
struct RouteCandidate {
  std::optional<double> latency_ms;    // observed latency (EWMA) of successful calls
  std::optional<double> success_rate;  // observed success rate (EWMA), 0..1
  std::int64_t observed_calls = 0;     // how many outcomes the two figures above rest on
  std::optional<double> input_cost;    // USD per million input tokens
  std::optional<double> output_cost;   // USD per million output tokens
  double weight = 1.0;                 // `weighted`; <= 0 means never first
};

struct RouteContext {
  std::int64_t input_tokens = 0;   // estimate for this request, to weigh prices
  std::int64_t output_tokens = 0;  // max tokens (or a default) for this request
  std::uint64_t turn = 0;          // `round-robin`: how many calls this route has served
};

enum class Strategy { fallback, fastest, cheapest, weighted, round_robin };

// "fallback", "fastest", "cheapest", "weighted", "round-robin"; nullopt otherwise.
std::optional<Strategy> parse_strategy(std::string_view name);
std::string_view to_string(Strategy s);

// Returns a permutation of [0, candidates.size()): the order to try the targets in.
//   fallback:    as configured.
//   fastest:     ascending latency; targets with no latency yet come first (in configured
//                order) so that the route learns them, then the known ones.
//   cheapest:    ascending estimated cost of this request (input_tokens * input_cost +
//                output_tokens * output_cost); targets with unknown prices last, as configured
//                (a price is unknown when either of the two is).
//   weighted:    a weighted random permutation (each next pick drawn in proportion to weight
//                among those left; zero weights last, as configured).
//   round-robin: configured order rotated left by turn % size.
// Health-aware, for every strategy: a target whose success rate is below 0.5 over at least 5
// observed calls is moved behind the healthy ones (keeping the strategy's order within each
// group), so a failing target is tried last rather than first.
std::vector<std::size_t> order_targets(Strategy strategy,
                                       const std::vector<RouteCandidate>& candidates,
                                       const RouteContext& context, std::mt19937_64& rng);

}  // namespace detour::engine
