// The completion scripts (completions/) loaded in their real shells -- bash (with Debian's
// bash-completion), zsh and fish -- asking the real detour binary, with a config of the user's:
// what each offers for a subcommand, an option, an option's values, -m and a file.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

using detour::testing::RunOptions;
using detour::testing::RunResult;
using Candidates = std::set<std::string>;

namespace {

const std::string kSource = DETOUR_SOURCE_DIR;

// The candidates each shell printed, one block per question, blocks ended by "=end=" lines;
// anything after a tab (fish's descriptions) is dropped.
std::vector<Candidates> blocks_of(const std::string& out) {
  std::vector<Candidates> blocks(1);
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line == "=end=") {
      blocks.emplace_back();
      continue;
    }
    line = line.substr(0, line.find('\t'));
    if (!line.empty()) blocks.back().insert(line);
  }
  blocks.pop_back();  // after the last "=end="
  return blocks;
}

// The five questions, in each shell's words, and what every shell must answer.
const std::vector<Candidates> kExpected = {
    {"batch"},                            // detour ba
    {"--progress"},                       // detour batch --pro
    {"bar", "none", "plain"},             // detour batch --progress
    {"smart", "mock/fast", "mock/slow"},  // detour ask -m
    {"in.jsonl"},                         // detour batch in
};

RunResult run_shell(const std::vector<std::string>& argv, detour::testing::TempDir& dir) {
  RunOptions options;
  const std::string bin = detour::testing::detour_bin();
  options.env["PATH"] = bin.substr(0, bin.rfind('/')) + ":" + std::getenv("PATH");
  options.env["DETOUR_CONFIG"] = dir.write("config.toml",
                                           "[providers.mock]\n"
                                           "protocol = \"openai\"\n"
                                           "base_url = \"http://127.0.0.1:9/v1\"\n"
                                           "[routes.smart]\n"
                                           "targets = [\"mock/fast\", \"mock/slow\"]\n");
  dir.write("work/in.jsonl", "{}\n");
  dir.write("work/notes.txt", "x\n");
  options.cwd = dir.path() + "/work";
  return detour::testing::run(argv, options);
}

void check_answers(const RunResult& r) {
  INFO(r.out);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto blocks = blocks_of(r.out);
  REQUIRE(blocks.size() == kExpected.size());
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    CAPTURE(i);
    CHECK(blocks[i] == kExpected[i]);
  }
}

}  // namespace

TEST_CASE("completions: bash, with bash-completion loaded", "[completions]") {
  detour::testing::TempDir dir;
  const std::string script =
      "source /usr/share/bash-completion/bash_completion\n"
      "source '" +
      kSource +
      "/completions/detour.bash'\n"
      "complete -p detour >/dev/null || exit 9\n"
      "ask() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _detour;\n"
      "  printf '%s\\n' \"${COMPREPLY[@]}\" =end=; }\n"
      "ask detour ba\n"
      "ask detour batch --pro\n"
      "ask detour batch --progress ''\n"
      "ask detour ask -m ''\n"
      "ask detour batch in\n";
  check_answers(run_shell({"bash", "-c", script}, dir));
}

TEST_CASE("completions: zsh", "[completions]") {
  // compadd and _files exist only inside zsh's completion widgets, which need a terminal: they
  // are stood in for by functions that print what the script hands them.
  detour::testing::TempDir dir;
  const std::string script =
      "compadd() { [[ $1 == -- ]] && shift; print -rl -- \"$@\"; }\n"
      "_files() { print -rl -- ${words[CURRENT]}*(N); }\n"
      "source '" +
      kSource +
      "/completions/_detour'\n"
      "ask() { words=(\"$@\"); CURRENT=$#; _detour; print -r -- '=end='; }\n"
      "ask detour ba\n"
      "ask detour batch --pro\n"
      "ask detour batch --progress ''\n"
      "ask detour ask -m ''\n"
      "ask detour batch in\n";
  check_answers(run_shell({"zsh", "-f", "-c", script}, dir));
}

TEST_CASE("completions: fish", "[completions]") {
  detour::testing::TempDir dir;
  const std::string script = "source '" + kSource +
                             "/completions/detour.fish'\n"
                             "complete -C 'detour ba'; echo =end=\n"
                             "complete -C 'detour batch --pro'; echo =end=\n"
                             "complete -C 'detour batch --progress '; echo =end=\n"
                             "complete -C 'detour ask -m '; echo =end=\n"
                             "complete -C 'detour batch in'; echo =end=\n";
  check_answers(run_shell({"fish", "--no-config", "-c", script}, dir));
}
