#pragma once
// The three wire protocols, for find_protocol(); everything else goes through Protocol.
#include <string>
#include <string_view>

#include "providers/types.hpp"

namespace detour::providers {

const Protocol& openai_protocol();
const Protocol& anthropic_protocol();
const Protocol& gemini_protocol();

// Neutral finish reasons from each protocol's words (see ChatReply::finish_reason).
std::string openai_finish_reason(std::string_view reason);
std::string anthropic_finish_reason(std::string_view reason);
std::string gemini_finish_reason(std::string_view reason);

}  // namespace detour::providers
