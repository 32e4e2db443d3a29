#include "engine/target_endpoint.hpp"

#include "config/key_command.hpp"

namespace detour::engine {

std::optional<TargetKey> key_if_ready(const config::ResolvedTarget& target) {
  if (!target.key_command) return TargetKey{target.api_key, false, false};
  auto key = target.key_command->poll();
  if (!key) return std::nullopt;
  return TargetKey{std::move(key->value), true, key->fresh};
}

providers::Endpoint endpoint_for(const config::ResolvedTarget& target, const TargetKey& key) {
  providers::Endpoint endpoint;
  endpoint.base_url = target.provider->base_url;
  endpoint.api_key = key.value;
  endpoint.key_is_token = key.from_command;
  endpoint.api_version = target.provider->api_version;
  for (const auto& header : target.headers)
    endpoint.headers.push_back(header);
  endpoint.query = target.query;
  endpoint.ca_bundle = target.ca_bundle;
  endpoint.ca_path = target.ca_path;
  endpoint.secrets = target.secrets;
  return endpoint;
}

std::vector<std::string> secrets_of(const config::ResolvedTarget& target) {
  std::vector<std::string> secrets = target.secrets;
  if (!target.api_key.empty()) secrets.push_back(target.api_key);
  if (target.key_command) {
    if (auto key = target.key_command->cached()) secrets.push_back(*key);
  }
  return secrets;
}

}  // namespace detour::engine
