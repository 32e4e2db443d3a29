// --schema FILE: any JSON is either a schema (then any answer is checked against it, and
// extract_json finds JSON in any answer text) or a usage error naming the file, never a crash.
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "engine/validate.hpp"
#include "fuzz_input.hpp"

using namespace detour;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  // The schema, a NUL, then the answer text.
  const auto schema = nlohmann::json::parse(in.until('\0'), nullptr, /*allow_exceptions=*/false);
  const std::string_view answer = in.rest();
  const auto document = engine::extract_json(answer);
  (void)engine::looks_like_refusal(answer);
  if (schema.is_discarded()) return 0;
  try {
    engine::SchemaValidator validator(schema, "fuzz.json");
    if (document) (void)validator.check(*document);
  } catch (const UsageError&) {
  }
  return 0;
}
