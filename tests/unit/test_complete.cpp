// Tab completion's decisions (src/cli/complete.hpp): what may come at the cursor, from the
// command line's own CLI11 definition and a fake config lookup.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cli/app.hpp"
#include "cli/complete.hpp"

using detour::cli::Completion;

namespace {

Completion complete_words(const std::vector<std::string>& words) {
  CLI::App app{"detour"};
  detour::cli::CommandLine line;
  detour::cli::build_command_line(app, line, "");
  const auto names = [](std::string_view kind) {
    std::vector<std::string> out = {"smart", "openai/gpt-4o", "anthropic/claude-haiku"};
    if (kind == detour::cli::kNameValue) out.push_back("openai");
    return out;
  };
  return detour::cli::complete(app, words, names);
}

}  // namespace

TEST_CASE("completion: the words offered at the cursor") {
  using Words = std::vector<std::string>;
  struct Case {
    Words line;      // after "detour", the last word at the cursor
    Words expected;  // sorted
  };
  const Case cases[] = {
      {{""}, {"ask", "batch", "health", "limits"}},
      {{"ba"}, {"batch"}},
      {{"-q", "he"}, {"health"}},
      {{"--log-format", ""}, {"json", "text"}},
      {{"--log-format", "j"}, {"json"}},
      {{"batch", "--pro"}, {"--progress"}},
      {{"batch", "--progress", ""}, {"bar", "none", "plain"}},
      {{"batch", "--progress", "p"}, {"plain"}},
      {{"batch", "--output-format", ""}, {"detour", "openai"}},
      {{"health", "--format", ""}, {"json", "junit", "prometheus", "table"}},
      {{"health", "--probe", ""}, {"chat", "models"}},
      {{"health", "--fail-on", ""}, {"all", "any", "none"}},
      {{"ask", "-m", ""}, {"anthropic/claude-haiku", "openai/gpt-4o", "smart"}},
      {{"ask", "--model", "o"}, {"openai/gpt-4o"}},
      {{"batch", "in.jsonl", "-m", "s"}, {"smart"}},
      {{"ask", "--max-tokens", "5", "-m", "a"}, {"anthropic/claude-haiku"}},
      {{"health", ""}, {"anthropic/claude-haiku", "openai", "openai/gpt-4o", "smart"}},
      {{"limits", "--json", "op"}, {"openai", "openai/gpt-4o"}},
      {{"ask", "--js"}, {"--json"}},
      {{"ask", "--conf"}, {"--config"}},  // global options after the subcommand too
      {{"-c", "x.toml", "ask", "--sch"}, {"--schema"}},
      {{"batch", "--sha"}, {"--shard"}},
      {{"batch", "--shard", ""}, {}},   // free text: nothing to offer
      {{"ask", ""}, {}},                // the prompt
      {{"ask", "--", "-"}, {}},         // after --, words are the prompt
      {{"batch", "in.jsonl", ""}, {}},  // batch takes one input
      {{"nonsense", "--x"}, {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.line);
    const Completion got = complete_words(c.line);
    CHECK_FALSE(got.files);
    CHECK(got.words == c.expected);
  }
}

TEST_CASE("completion: where a file is expected the shell completes files") {
  const std::vector<std::vector<std::string>> lines = {
      {"-c", ""},
      {"--config", "con"},
      {"batch", ""},
      {"batch", "-o", ""},
      {"batch", "in.jsonl", "-o", "a"},
      {"ask", "-f", ""},
      {"ask", "--schema", "s"},
  };
  for (const auto& line : lines) {
    CAPTURE(line);
    const Completion got = complete_words(line);
    CHECK(got.files);
    CHECK(got.words.empty());
  }
}

TEST_CASE("completion: option lists hold the subcommand's options and the global ones") {
  const Completion got = complete_words({"ask", "-"});
  for (const char* name : {"-m", "--model", "--json", "--hedge", "-c", "--state", "--help"}) {
    CAPTURE(name);
    CHECK(std::find(got.words.begin(), got.words.end(), name) != got.words.end());
  }
  // batch's options are not ask's
  CHECK(std::find(got.words.begin(), got.words.end(), "--resume") == got.words.end());
}
