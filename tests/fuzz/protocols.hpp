#pragma once
// The wire protocols a fuzz input can pick, by one byte.
#include <cstdint>

#include "providers/protocols.hpp"

namespace detour::fuzz {

inline const providers::Protocol& protocol_for(std::uint8_t choice) {
  switch (choice % 3) {
    case 0:
      return providers::openai_protocol();
    case 1:
      return providers::anthropic_protocol();
    default:
      return providers::gemini_protocol();
  }
}

}  // namespace detour::fuzz
