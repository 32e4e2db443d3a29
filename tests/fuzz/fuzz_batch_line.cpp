// One line of a batch input file, and one line of a batch output file (read by --resume).
// A line is a request or a bad line, never a crash; and the id the duplicate check reads
// (line_id, with its fast scanner) is the id the run gives the line.
#include <cstdlib>
#include <string>
#include <variant>

#include "batch/input_line.hpp"
#include "batch/resume.hpp"
#include "fuzz_input.hpp"

using namespace detour;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint64_t line_no = in.byte() + 1;
  const std::string_view text = in.rest();

  (void)batch::judge_output_line(text);
  if (batch::is_blank(text)) return 0;
  const batch::ParsedLine parsed = batch::parse_line(text, line_no);
  const std::string& id =
      std::visit([](const auto& line) -> const std::string& { return line.id; }, parsed);
  if (batch::line_id(text, line_no) != id) std::abort();
  return 0;
}
