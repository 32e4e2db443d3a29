#pragma once
// The three wire protocols, for find_protocol(); everything else goes through Protocol.
#include <string>
#include <string_view>

#include "providers/types.hpp"

namespace detour::providers {

const Protocol& openai_protocol();
const Protocol& anthropic_protocol();
const Protocol& gemini_protocol();

}  // namespace detour::providers
