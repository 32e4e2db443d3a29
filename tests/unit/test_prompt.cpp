#include <catch2/catch.hpp>
#include <map>

#include "core/error.hpp"
#include "io/prompt.hpp"

using detour::UsageError;
using detour::io::assemble_prompt;
using detour::io::PromptInput;
using detour::io::PromptSources;

namespace {

struct World {
  bool tty = false;
  std::string stdin_text;
  std::map<std::string, std::string> files;
  int stdin_reads = 0;

  PromptInput input() {
    PromptInput in;
    in.stdin_is_tty = tty;
    in.read_stdin = [this] {
      ++stdin_reads;
      return stdin_text;
    };
    in.read_file = [this](const std::string& path) {
      auto it = files.find(path);
      if (it == files.end()) throw UsageError("-f " + path + ": No such file or directory");
      return it->second;
    };
    return in;
  }
};

}  // namespace

TEST_CASE("prompt sources combine as the command line contract says", "[prompt]") {
  struct Row {
    const char* name;
    std::vector<std::string> words;
    std::vector<std::string> files;
    bool tty;
    std::string stdin_text;
    std::string expected;
  };
  const std::vector<Row> rows = {
      {"words joined by spaces", {"hello", "there", "world"}, {}, true, "", "hello there world"},
      {"piped stdin alone", {}, {}, false, "from stdin\n", "from stdin"},
      {"only one trailing newline dropped", {}, {}, false, "two\n\n", "two\n"},
      {"words then stdin after a blank line",
       {"summarise:"},
       {},
       false,
       "text\n",
       "summarise:\n\ntext"},
      {"empty stdin adds nothing", {"hi"}, {}, false, "", "hi"},
      {"file appended", {"explain"}, {"a.txt"}, true, "", "explain\n\nA contents"},
      {"files in order", {}, {"a.txt", "b.txt"}, true, "", "A contents\n\nB"},
      {"-f - reads stdin in its place",
       {"x"},
       {"-", "a.txt"},
       false,
       "in\n",
       "x\n\nin\n\nA contents"},
      {"file then piped stdin last", {}, {"a.txt"}, false, "tail", "A contents\n\ntail"},
      {"CRLF trailing newline dropped", {}, {}, false, "dos\r\n", "dos"},
  };
  for (const auto& row : rows) {
    SECTION(row.name) {
      World world;
      world.tty = row.tty;
      world.stdin_text = row.stdin_text;
      world.files = {{"a.txt", "A contents\n"}, {"b.txt", "B"}};
      CHECK(assemble_prompt(PromptSources{row.words, row.files}, world.input()) == row.expected);
    }
  }
}

TEST_CASE("a terminal on stdin is never read", "[prompt]") {
  World world;
  world.tty = true;
  CHECK(assemble_prompt(PromptSources{{"hi"}, {}}, world.input()) == "hi");
  CHECK(world.stdin_reads == 0);
}

TEST_CASE("no prompt at all is a usage error", "[prompt]") {
  World world;
  world.tty = true;
  CHECK_THROWS_AS(assemble_prompt(PromptSources{}, world.input()), UsageError);
  world.tty = false;  // empty pipe
  CHECK_THROWS_WITH(assemble_prompt(PromptSources{}, world.input()), Catch::Contains("no prompt"));
}

TEST_CASE("-f - on a terminal and missing files are usage errors naming them", "[prompt]") {
  World world;
  world.tty = true;
  CHECK_THROWS_WITH(assemble_prompt(PromptSources{{}, {"-"}}, world.input()),
                    Catch::Contains("-f -"));
  CHECK_THROWS_WITH(assemble_prompt(PromptSources{{"x"}, {"missing.txt"}}, world.input()),
                    Catch::Contains("missing.txt"));
}

TEST_CASE("stdin is read once even when -f - is repeated", "[prompt]") {
  World world;
  world.stdin_text = "once";
  CHECK(assemble_prompt(PromptSources{{}, {"-", "-"}}, world.input()) == "once");
  CHECK(world.stdin_reads == 1);
}
