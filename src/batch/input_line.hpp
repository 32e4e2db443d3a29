#pragma once
// One line of the `detour batch` input, parsed (README, "detour batch"). Each line is judged
// on its own: a simple line ({"id", "prompt" | "messages", ...}) or an OpenAI Batch API line
// ({"custom_id", "method", "url", "body"}). A line that is wrong in any way becomes a BadLine,
// which the runner reports as a bad_input result; the batch goes on. Pure functions.
//
// Line rules:
// - Blank lines (nothing but spaces, tabs and "\r") are skipped: they are no request and get
//   no output line, but they still count in the line numbers, so "line 7" is line 7 of the
//   file as an editor shows it.
// - A line is an OpenAI Batch API line when it has a "custom_id" or a "body" key; its id is
//   "custom_id". Otherwise its id is "id". An id is a non-empty string, or an integer written
//   as its decimal digits (7 -> "7"). A line without a usable id (none, null, another type,
//   not JSON at all, too long) has its line number as id; a wrong-typed id is also a problem.
// - Keys detour does not know are ignored on a simple line; in an OpenAI "body" they are
//   carried in ChatRequest::extra and reach the wire.
// - Fields the line does not set stay unset (system empty, max_tokens/temperature/schema
//   empty, json_output false), so the runner's command-line defaults apply to them. A field
//   that is null is not set.
// - Messages: "system" and "developer" messages become the system text (after a simple
//   line's "system" field), joined by blank lines; the others must be "user" or "assistant".
//   Content is a string or an array of {"type": "text", "text"} parts, concatenated as the
//   provider would read them; any other part is a problem naming its type.
// - OpenAI "body": "model", "messages", "max_completion_tokens" (else "max_tokens"),
//   "temperature" and "response_format" (json_object -> json_output, json_schema -> schema)
//   are read; "stream" and "stream_options" are dropped because detour chooses whether the
//   wire streams; everything else goes to extra as written. Only POST /v1/chat/completions.
// - Messages count bytes from 1 ("not valid UTF-8 at byte 12"), as nlohmann's do.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "batch/line_reader.hpp"
#include "providers/types.hpp"

namespace detour::batch {

struct LineRequest {
  std::uint64_t line_no = 0;
  std::string id;
  bool openai_format = false;        // came as an OpenAI Batch API line
  std::optional<std::string> model;  // "model" / "body.model"; the runner resolves it
  providers::ChatRequest request;    // model left empty; system, messages, max_tokens, ...
  std::optional<nlohmann::ordered_json> metadata;  // as written, key order kept
};

struct BadLine {
  std::uint64_t line_no = 0;
  std::string id;
  std::string message;  // "line 7: \"max_tokens\" must be a positive integer"
  std::optional<nlohmann::ordered_json> metadata;  // when the line had a readable one
};

using ParsedLine = std::variant<LineRequest, BadLine>;

// True for a line that is skipped (see above).
bool is_blank(std::string_view text);

// Parses one non-blank line.
ParsedLine parse_line(std::string_view text, std::uint64_t line_no);

// The bad line for a line longer than `limit` bytes (InputLine::too_long).
BadLine too_long_line(std::uint64_t line_no, std::size_t limit);

// A line as the run reads it: nothing for a blank line, too_long_line for an over-long one
// (`limit` is the reader's), else parse_line.
std::optional<ParsedLine> parse_input_line(const InputLine& line, std::size_t limit);

// The id parse_line gives the same line, without building the request: the duplicate check
// reads every id before anything is sent. For a too-long line the id is its line number.
std::string line_id(std::string_view text, std::uint64_t line_no);

// Where the first byte that is not valid UTF-8 is, or nullopt when all of `text` is valid.
// Exposed for the output side, which must not write what nlohmann::json cannot dump.
std::optional<std::size_t> invalid_utf8_at(std::string_view text);

}  // namespace detour::batch
