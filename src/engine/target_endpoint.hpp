#pragma once
// From a resolved target to what its requests need: the key to send now (from the environment,
// or from api_key_cmd, run when first needed), the endpoint with its extras, and the values no
// message may show (README, "Providers").
#include <string>
#include <vector>

#include "config/config.hpp"
#include "providers/types.hpp"

namespace detour::engine {

struct TargetKey {
  std::string value;
  bool from_command = false;
  bool fresh = false;  // the command ran just now: a 401 then means the key itself is bad
};

// Throws config::KeyCommandError (naming the provider, never the command's output).
TargetKey current_key(const config::ResolvedTarget& target);

providers::Endpoint endpoint_for(const config::ResolvedTarget& target, const TargetKey& key);

// The target's key (or the command's cached one) and its header values from the environment.
std::vector<std::string> secrets_of(const config::ResolvedTarget& target);

}  // namespace detour::engine
