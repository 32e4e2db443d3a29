#pragma once
// One line of `detour batch` output (README, "`detour batch`"): what a finished, refused or
// unsent input line becomes, in detour's own format or as an OpenAI Batch API output line.
// Pure: the time a chat.completion says it was created is passed in.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "engine/call.hpp"

namespace detour::batch {

enum class OutputFormat { detour, openai };

// "detour" or "openai" (`--output-format`); nullopt for anything else.
std::optional<OutputFormat> parse_output_format(std::string_view name);

// Classes of lines that were never sent. They are not engine::ErrorClass values: no attempt
// ends in them, only a batch line does.
inline constexpr std::string_view kBadInput = "bad_input";
inline constexpr std::string_view kBudgetExceeded = "budget_exceeded";

// What the output line repeats of the input line it answers.
struct LineContext {
  nlohmann::ordered_json id;  // as the input had it: a string, or the line number
  std::optional<nlohmann::ordered_json> metadata;  // the input's `metadata`, copied unchanged
  std::optional<std::string> route;                // config::Chain::route of the line's chain
};

// The text an id is compared and hashed by: a string id is itself, any other id its JSON text,
// so the line-number id 7 and the string id "7" are the same id.
std::string id_key(const nlohmann::ordered_json& id);
std::string id_key(const nlohmann::json& id);

// How many requests the call sent: its attempts, not counting targets it skipped without
// sending (open circuit, no capacity).
int attempts_sent(const engine::CallResult& result);

// The line for a call that ran, ok or failed. `created_unix_s` is the chat.completion's
// `created` (openai format only).
nlohmann::ordered_json result_line(OutputFormat format, const LineContext& line,
                                   const engine::CallResult& result, std::int64_t created_unix_s);

// The line for a request that was never sent: `bad_input` (the message names the line:
// "line 7: <what>"), `budget_exceeded` after --max-cost. The given class, no status, no attempts.
nlohmann::ordered_json not_sent_line(OutputFormat format, const LineContext& line,
                                     std::string_view error_class, std::string_view message);

// The JSON as one output line, ending in '\n'. Text that is not valid UTF-8 (a provider's
// reply cut mid-character) is replaced rather than failing the whole line.
std::string to_line(const nlohmann::ordered_json& line);

}  // namespace detour::batch
