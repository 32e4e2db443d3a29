#pragma once
// From a resolved target to what its requests need: the key to send now (from the environment,
// or from api_key_cmd, run when first needed), the endpoint with its extras, and the values no
// message may show (README, "Providers").
#include <optional>
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

// The key to send now; nothing yet while the provider's api_key_cmd runs on its own thread
// (it was started by this or an earlier ask): ask again on a later turn of the loop, after
// kKeyPoll, so that other requests go on meanwhile. Throws config::KeyCommandError (naming the
// provider, never the command's output).
std::optional<TargetKey> key_if_ready(const config::ResolvedTarget& target);
inline constexpr Millis kKeyPoll{10};

providers::Endpoint endpoint_for(const config::ResolvedTarget& target, const TargetKey& key);

// The target's key (or the command's cached one) and its header values from the environment.
std::vector<std::string> secrets_of(const config::ResolvedTarget& target);

}  // namespace detour::engine
