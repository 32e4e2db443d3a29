#pragma once
// The wire protocols, for find_protocol(); everything else goes through Protocol.
#include <string>
#include <string_view>

#include "providers/types.hpp"

namespace detour::providers {

const Protocol& openai_protocol();
const Protocol& anthropic_protocol();
const Protocol& gemini_protocol();
const Protocol& azure_protocol();

// OpenAI's chat-completions body for a request, which Azure OpenAI takes too.
nlohmann::json openai_chat_body(const ChatRequest& request, bool max_completion_tokens);

}  // namespace detour::providers
