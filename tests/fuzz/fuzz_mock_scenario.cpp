// detour-mock's scenario (--scenario FILE, POST /_mock/scenario): any JSON is a scenario or
// an std::invalid_argument naming the key (the server's 400), never a crash or another
// exception; and a scenario it accepts round-trips through its normalised form.
#include <cstdlib>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "../mock/scenario.hpp"
#include "fuzz_input.hpp"

using namespace detour::mock;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  detour::fuzz::Input in(data, size);
  const auto json = nlohmann::json::parse(in.rest(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  Scenario scenario;
  try {
    scenario = parse_scenario(json);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  const nlohmann::json normal = to_json(scenario);
  if (to_json(parse_scenario(normal)) != normal) std::abort();
  return 0;
}
