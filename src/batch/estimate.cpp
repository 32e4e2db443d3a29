#include "batch/estimate.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/context.hpp"

namespace detour::batch {

namespace {

// The answer a request allows: its max_tokens. Anthropic requires one, and detour sends its
// default when none is given, so that is what the provider counts.
std::int64_t answer_tokens(const engine::CallSpec& spec) {
  if (spec.request.max_tokens) return *spec.request.max_tokens;
  const auto& first = spec.chain.targets.front();
  if (first.provider && first.provider->protocol == "anthropic") {
    return providers::kAnthropicDefaultMaxTokens;
  }
  return 0;
}

// The limiter's burst (docs/architecture.md, "The limiter"): the configured one, else one
// second's worth of the rate, at least 1.
double burst_of(std::optional<std::int64_t> configured, std::int64_t per_minute) {
  if (configured) return static_cast<double>(*configured);
  return std::max(1.0, static_cast<double>(per_minute) / 60.0);
}

void add_to(Load& load, std::int64_t tokens) {
  ++load.requests;
  load.tokens += tokens;
}

}  // namespace

std::int64_t estimated_tokens(const engine::CallSpec& spec) {
  return engine::estimate_input_tokens(spec.request) + answer_tokens(spec);
}

std::optional<double> estimated_cost(const engine::CallSpec& spec) {
  if (spec.chain.targets.empty()) return std::nullopt;
  const config::ModelConfig& model = spec.chain.targets.front().model;
  if (!model.input_cost && !model.output_cost) return std::nullopt;
  const double input = static_cast<double>(engine::estimate_input_tokens(spec.request));
  const double output = static_cast<double>(answer_tokens(spec));
  return (input * model.input_cost.value_or(0) + output * model.output_cost.value_or(0)) / 1e6;
}

std::optional<Millis> minimum_time(const Load& load) {
  std::optional<double> minutes;
  auto longest = [&](double m) { minutes = std::max(minutes.value_or(0.0), m); };
  if (load.rpm && *load.rpm > 0) {
    const double beyond = static_cast<double>(load.requests) - burst_of(load.burst, *load.rpm);
    longest(std::max(0.0, beyond) / static_cast<double>(*load.rpm));
  }
  if (load.tpm && *load.tpm > 0) {
    const double beyond = static_cast<double>(load.tokens) - burst_of(std::nullopt, *load.tpm);
    longest(std::max(0.0, beyond) / static_cast<double>(*load.tpm));
  }
  if (!minutes) return std::nullopt;
  return Millis(static_cast<Millis::rep>(std::ceil(*minutes * 60'000.0)));
}

void Estimator::add(const engine::CallSpec& spec) {
  ++estimate_.lines;
  const std::int64_t tokens = estimated_tokens(spec);
  estimate_.tokens += tokens;
  if (auto cost = estimated_cost(spec)) {
    estimate_.cost_usd += *cost;
  } else {
    ++estimate_.unpriced_lines;
  }
  if (spec.chain.targets.empty()) return;
  // The minimum time assumes each line is answered by its first target: spill-over can only
  // shorten it, and retries only lengthen it.
  const config::ResolvedTarget& first = spec.chain.targets.front();
  const std::string name = first.target.name();
  ++estimate_.lines_per_target[name];
  Load& target = per_target_[name];
  target.rpm = first.model.rpm;
  target.tpm = first.model.tpm;
  target.burst = first.model.burst;
  add_to(target, tokens);
  Load& provider = per_provider_[first.target.provider];
  if (first.provider) {
    provider.rpm = first.provider->rpm;
    provider.tpm = first.provider->tpm;
    provider.burst = first.provider->burst;
  }
  add_to(provider, tokens);
}

Estimate Estimator::finish() const {
  Estimate out = estimate_;
  for (const auto* loads : {&per_target_, &per_provider_}) {
    for (const auto& [name, load] : *loads) {
      if (auto t = minimum_time(load))
        out.minimum_time = std::max(out.minimum_time.value_or(Millis(0)), *t);
    }
  }
  return out;
}

std::size_t default_concurrency(const std::vector<config::ResolvedTarget>& targets) {
  constexpr double kAssumedAnswerSeconds = 10.0;
  std::int64_t concurrency = 0;
  double per_second = 0;
  std::set<std::string> providers_seen;
  for (const auto& target : targets) {
    const auto& model = target.model;
    std::optional<std::int64_t> slots = model.concurrency;
    std::optional<std::int64_t> rpm = model.rpm;
    // A provider-wide limit counts once, however many of its models the chain names.
    if (target.provider && providers_seen.insert(target.target.provider).second) {
      if (!slots) slots = target.provider->concurrency;
      if (!rpm) rpm = target.provider->rpm;
    }
    if (slots) concurrency += *slots;
    if (rpm) per_second += static_cast<double>(*rpm) / 60.0;
  }
  double wanted = 64;
  if (concurrency > 0) {
    wanted = static_cast<double>(concurrency);
  } else if (per_second > 0) {
    wanted = std::ceil(per_second * kAssumedAnswerSeconds);
  }
  return static_cast<std::size_t>(std::clamp(wanted, 1.0, 512.0));
}

}  // namespace detour::batch
