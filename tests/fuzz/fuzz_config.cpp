// The configuration file: any text is either a Config or a ConfigError naming what is wrong,
// never a crash or another exception. Every name the file defines is then resolved, as
// `detour ask -m NAME` would.
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/error.hpp"
#include "fuzz_input.hpp"

using namespace detour;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  // Some API key variables set, others not: both paths of resolve_target.
  const config::EnvLookup env = [](std::string_view name) -> std::optional<std::string> {
    if (name.size() % 2 == 0) return std::string("fuzz-key");
    return std::nullopt;
  };
  config::Config config;
  try {
    config = config::parse_config(in.rest(), "fuzz.toml", env);
  } catch (const DetourError&) {
    return 0;
  }
  std::vector<std::string> names;
  for (const auto& [name, route] : config.routes)
    names.push_back(name);
  for (const auto& [name, model] : config.models)
    names.push_back(name);
  names.push_back(config.defaults.model);
  for (const auto& name : names) {
    try {
      config::resolve_chain(config, {name}, env);
    } catch (const DetourError&) {
    }
  }
  return 0;
}
