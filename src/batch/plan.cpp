#include "batch/plan.hpp"

#include "core/error.hpp"

namespace detour::batch {

LinePlanner::LinePlanner(engine::CallSpec base, std::vector<std::string> default_models,
                         ResolveChain resolve)
    : base_(std::move(base)),
      default_models_(std::move(default_models)),
      resolve_(std::move(resolve)) {
  base_.request.messages.clear();
  base_.chain = {};
  base_.reserve_ahead = kReserveAhead;
}

const std::variant<config::Chain, std::string>& LinePlanner::chain_for(const std::string& model) {
  auto it = chains_.find(model);
  if (it != chains_.end()) return it->second;
  std::variant<config::Chain, std::string> resolved;
  try {
    resolved = resolve_(model.empty() ? default_models_ : std::vector<std::string>{model});
  } catch (const DetourError& e) {
    resolved = std::string(e.what());
  }
  return chains_.emplace(model, std::move(resolved)).first->second;
}

std::variant<PlannedCall, std::string> LinePlanner::plan(LineRequest& line) {
  const std::string where = "line " + std::to_string(line.line_no) + ": ";
  const auto& chain = chain_for(line.model.value_or(""));
  if (const auto* why = std::get_if<std::string>(&chain)) {
    if (line.model) return where + "model \"" + *line.model + "\": " + *why;
    return where + "no model: the line names none, and " + *why;
  }

  PlannedCall planned;
  engine::CallSpec& spec = planned.spec;
  spec = base_;
  spec.chain = std::get<config::Chain>(chain);
  spec.route_moves_on_content_filter = spec.chain.next_on_content_filter;
  providers::ChatRequest& request = spec.request;
  providers::ChatRequest& own = line.request;
  request.messages = std::move(own.messages);
  if (!own.system.empty()) request.system = std::move(own.system);
  if (own.max_tokens) request.max_tokens = own.max_tokens;
  if (own.temperature) request.temperature = own.temperature;
  // The line's body fields win over --option's.
  for (auto& [key, value] : own.extra.items())
    request.extra[key] = std::move(value);
  if (own.json_output) request.json_output = true;
  if (own.schema) {
    try {
      planned.schema = std::make_unique<engine::SchemaValidator>(*own.schema, where + "\"schema\"");
    } catch (const DetourError& e) {
      return std::string(e.what());
    }
    request.schema = std::move(own.schema);
    spec.validation.schema = planned.schema.get();
  }
  return planned;
}

}  // namespace detour::batch
