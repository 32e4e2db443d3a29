// What a batch will cost and how long its limits make it take (batch/estimate.hpp): the figures
// of `--dry-run`, the per-line estimate of `--max-cost` and -j's default.
#include <catch2/catch.hpp>

#include "batch/estimate.hpp"
#include "engine/context.hpp"

using namespace detour;
using namespace std::chrono_literals;

namespace {

config::ProviderConfig provider(std::string protocol, std::optional<std::int64_t> rpm = {},
                                std::optional<std::int64_t> concurrency = {}) {
  config::ProviderConfig p;
  p.protocol = std::move(protocol);
  p.rpm = rpm;
  p.concurrency = concurrency;
  return p;
}

config::ResolvedTarget target(const config::ProviderConfig& p, std::string provider_name,
                              std::string model) {
  config::ResolvedTarget t;
  t.target.provider = std::move(provider_name);
  t.target.model = std::move(model);
  t.provider = &p;
  return t;
}

engine::CallSpec spec_for(const config::ResolvedTarget& t, std::string prompt,
                          std::optional<std::int64_t> max_tokens) {
  engine::CallSpec spec;
  spec.request.messages.push_back({"user", std::move(prompt)});
  spec.request.max_tokens = max_tokens;
  spec.chain.targets.push_back(t);
  return spec;
}

}  // namespace

TEST_CASE("a request's estimate is its input and the answer it allows", "[batch]") {
  const auto openai = provider("openai");
  const auto anthropic = provider("anthropic");
  auto spec = spec_for(target(openai, "o", "m"), std::string(400, 'x'), 100);
  const auto input = engine::estimate_input_tokens(spec.request);
  CHECK(batch::estimated_tokens(spec) == input + 100);
  // Without max_tokens: nothing for the answer, except where detour sends its own default.
  spec.request.max_tokens.reset();
  CHECK(batch::estimated_tokens(spec) == input);
  auto claude = spec_for(target(anthropic, "a", "m"), std::string(400, 'x'), std::nullopt);
  CHECK(batch::estimated_tokens(claude) == input + providers::kAnthropicDefaultMaxTokens);
}

TEST_CASE("a request's cost estimate uses its first target's prices", "[batch]") {
  const auto openai = provider("openai");
  auto t = target(openai, "o", "m");
  auto unpriced = spec_for(t, "hello there", 1000);
  CHECK_FALSE(batch::estimated_cost(unpriced).has_value());
  t.model.input_cost = 2.0;    // USD per million tokens
  t.model.output_cost = 10.0;  // USD per million tokens
  auto priced = spec_for(t, "hello there", 1000);
  const double input = static_cast<double>(engine::estimate_input_tokens(priced.request));
  CHECK(*batch::estimated_cost(priced) == Approx((input * 2.0 + 1000 * 10.0) / 1e6));
}

TEST_CASE("minimum_time: requests beyond the burst at rpm, tokens at tpm, the longer wins",
          "[batch]") {
  struct Row {
    const char* what;
    batch::Load load;
    std::optional<Millis> expected;
  };
  const Row rows[] = {
      {"no limits known", {100, 1000, {}, {}, {}}, std::nullopt},
      // 600 rpm: burst 10 (one second's worth), 1,000 requests: 990 / 600 min = 99 s.
      {"rpm, default burst", {1000, 0, 600, {}, {}}, Millis(99'000)},
      {"rpm, configured burst", {1000, 0, 600, {}, 400}, Millis(60'000)},
      {"within the burst", {5, 0, 600, {}, {}}, Millis(0)},
      // 60,000 tokens at 6,000 tpm: burst 100, 59,900 / 6,000 min = 599 s; rpm allows 90 s.
      {"tpm longer than rpm", {1000, 60'000, 600, 6'000, 100}, Millis(599'000)},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    CHECK(batch::minimum_time(row.load) == row.expected);
  }
}

TEST_CASE("Estimator adds lines up per target and provider", "[batch]") {
  auto limited = provider("openai", /*rpm=*/60);
  const auto free = provider("openai");
  auto a = target(limited, "lim", "a");
  auto b = target(limited, "lim", "b");
  auto c = target(free, "free", "c");
  c.model.input_cost = 1.0;
  batch::Estimator estimator;
  for (int i = 0; i < 40; ++i) {
    estimator.add(spec_for(a, "q", 10));
    estimator.add(spec_for(b, "q", 10));
    estimator.add(spec_for(c, "q", 10));
  }
  estimator.add_bad();
  const batch::Estimate e = estimator.finish();
  CHECK(e.lines == 120);
  CHECK(e.bad_lines == 1);
  CHECK(e.unpriced_lines == 80);
  CHECK(e.lines_per_target.at("lim/a") == 40);
  CHECK(e.lines_per_target.at("free/c") == 40);
  // The provider's 60 rpm carries both of its models: 80 requests, burst 1: 79 s.
  CHECK(e.minimum_time == Millis(79'000));
  CHECK(e.cost_usd > 0);
}

TEST_CASE("default_concurrency follows the known limits", "[batch]") {
  const auto none = provider("openai");
  const auto slots = provider("openai", {}, /*concurrency=*/12);
  const auto paced = provider("openai", /*rpm=*/600);
  const auto fast = provider("openai", /*rpm=*/600'000);
  CHECK(batch::default_concurrency({target(none, "n", "m")}) == 64);
  CHECK(batch::default_concurrency({target(slots, "s", "m"), target(slots, "s", "m2")}) == 12);
  // 600 rpm is 10 a second; at ~10 s an answer, 100 in flight keep it busy.
  CHECK(batch::default_concurrency({target(paced, "p", "m")}) == 100);
  CHECK(batch::default_concurrency({target(fast, "f", "m")}) == 512);
  auto one = target(none, "n", "m");
  one.model.concurrency = 0;  // a nonsense limit still leaves one call in flight
  CHECK(batch::default_concurrency({one}) == 64);
}
