#include "providers/protocols.hpp"

namespace detour::providers {

const Protocol* find_protocol(std::string_view name) {
  // Exact names only: the config validator reports anything else with its position.
  if (name == "openai") return &openai_protocol();
  if (name == "anthropic") return &anthropic_protocol();
  if (name == "gemini") return &gemini_protocol();
  if (name == "azure") return &azure_protocol();
  return nullptr;
}

}  // namespace detour::providers
