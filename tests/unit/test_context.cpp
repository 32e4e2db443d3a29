// Context windows: token estimates and --truncate, case by case. Estimates are 1 token per 3
// bytes (rounded up) plus 4 per message, so every expected figure below can be checked by hand.
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/context.hpp"

using namespace detour;
using engine::estimate_input_tokens;
using engine::estimate_tokens;
using engine::truncate_to_fit;
using providers::ChatRequest;
using providers::Message;

namespace {

ChatRequest request(std::string system, std::vector<Message> messages,
                    std::optional<int64_t> max_tokens = std::nullopt) {
  ChatRequest r;
  r.system = std::move(system);
  r.messages = std::move(messages);
  r.max_tokens = max_tokens;
  return r;
}

// `n` bytes of ASCII: exactly n / 3 tokens when n is a multiple of 3.
std::string bytes(std::size_t n, char c = 'a') {
  return std::string(n, c);
}

bool valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t len = b < 0x80           ? 1
                      : (b >> 5) == 0x6  ? 2
                      : (b >> 4) == 0xE  ? 3
                      : (b >> 3) == 0x1E ? 4
                                         : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

TEST_CASE("context: estimate_tokens is bytes / 3 rounded up", "[context]") {
  struct Row {
    std::string text;
    int64_t tokens;
  };
  const std::vector<Row> rows = {
      {"", 0},
      {"a", 1},
      {"ab", 1},
      {"abc", 1},
      {"abcd", 2},
      {"abcdef", 2},
      {"abcdefg", 3},
      {"é", 1},       // 2 bytes
      {"日本", 2},    // 6 bytes
      {"日本語", 3},  // 9 bytes
      {"😀", 2},       // 4 bytes
      {bytes(3000), 1000},
  };
  for (const auto& row : rows) {
    INFO("'" << row.text << "'");
    CHECK(estimate_tokens(row.text) == row.tokens);
  }
}

TEST_CASE("context: estimate_input_tokens adds the system prompt and 4 per message", "[context]") {
  CHECK(estimate_input_tokens(request("", {})) == 0);
  CHECK(estimate_input_tokens(request(bytes(30), {})) == 10);
  CHECK(estimate_input_tokens(request("", {{"user", ""}})) == 4);
  CHECK(estimate_input_tokens(
            request(bytes(30), {{"user", bytes(9)}, {"assistant", bytes(10)}, {"user", "hi"}})) ==
        10 + (3 + 4) + (4 + 4) + (1 + 4));
}

TEST_CASE("context: a request that already fits is untouched", "[context]") {
  const ChatRequest original =
      request(bytes(30), {{"user", bytes(30)}, {"assistant", bytes(30)}, {"user", bytes(30)}});
  // Estimate: 10 + 3 * (10 + 4) = 52.
  ChatRequest r = original;
  auto res = truncate_to_fit(r, 52 + 100, 100);
  CHECK(res.fits);
  CHECK(res.dropped_messages == 0);
  CHECK_FALSE(res.cut_last);
  CHECK(res.estimate == 52);
  CHECK(r.messages.size() == 3);
  CHECK(r.system == original.system);

  // max_tokens, when set, is the reserve instead of the default.
  r = request(bytes(30), {{"user", bytes(30)}}, 10);  // estimate 24
  res = truncate_to_fit(r, 34, 100000);
  CHECK(res.fits);
  CHECK(res.estimate == 24);
  CHECK(r.messages[0].content == bytes(30));
}

TEST_CASE("context: drops the oldest messages first", "[context]") {
  // Each message is 10 + 4 = 14 tokens; system 10. Total 10 + 5 * 14 = 80.
  ChatRequest r = request(bytes(30),
                          {{"user", bytes(30, '1')},
                           {"assistant", bytes(30, '2')},
                           {"user", bytes(30, '3')},
                           {"assistant", bytes(30, '4')},
                           {"user", bytes(30, '5')}},
                          20);
  // Budget 70 - 20 = 50: dropping one leaves 66, two 52, three 38, which fits.
  auto res = truncate_to_fit(r, 70, 0);
  CHECK(res.fits);
  CHECK(res.dropped_messages == 3);
  CHECK_FALSE(res.cut_last);
  CHECK(res.estimate == 38);
  REQUIRE(r.messages.size() == 2);
  CHECK(r.messages[0].content == bytes(30, '4'));
  CHECK(r.messages[0].role == "assistant");
  CHECK(r.messages[1].content == bytes(30, '5'));
  CHECK(r.system == bytes(30));

  // One token over only needs the oldest message gone.
  r = request("", {{"user", bytes(30, '1')}, {"assistant", bytes(30, '2')}, {"user", "q"}});
  res = truncate_to_fit(r, 14 + 14 + 5 - 1, 0);
  CHECK(res.fits);
  CHECK(res.dropped_messages == 1);
  REQUIRE(r.messages.size() == 2);
  CHECK(r.messages[0].content == bytes(30, '2'));
}

TEST_CASE("context: never drops the last message, cuts its start and keeps its end", "[context]") {
  const std::string question = "... so what is the answer?";
  std::string long_text = bytes(3000, 'x') + question;
  ChatRequest r =
      request(bytes(30), {{"user", bytes(300)}, {"assistant", bytes(300)}, {"user", long_text}});
  // Budget 200 - 100 = 100: system 10, last message overhead 4, so 86 tokens = 258 bytes left.
  auto res = truncate_to_fit(r, 200, 100);
  CHECK(res.fits);
  CHECK(res.dropped_messages == 2);
  CHECK(res.cut_last);
  REQUIRE(r.messages.size() == 1);
  const std::string& kept = r.messages[0].content;
  CHECK(kept.size() == 258);
  CHECK(ends_with(long_text, kept));
  CHECK(ends_with(kept, question));
  CHECK(r.messages[0].role == "user");
  CHECK(res.estimate == 100);
  CHECK(res.estimate == estimate_input_tokens(r));
  CHECK(r.system == bytes(30));
}

TEST_CASE("context: cutting respects UTF-8 boundaries", "[context]") {
  // Budget leaves 2 tokens = 6 bytes for the last message's text, after its 4 overhead.
  struct Row {
    const char* name;
    std::string text;
    std::string kept;
  };
  const std::vector<Row> rows = {
      // 6 bytes from the end start inside "日" (3 bytes each): only complete characters stay.
      {"3-byte characters, aligned", "日本語日本語", "本語"},
      {"3-byte characters, cut mid-character", "日本語x", "語x"},
      {"2-byte characters, aligned", "xééééé", "ééé"},
      {"2-byte characters, cut mid-character", "ééééy", "ééy"},
      {"4-byte character, aligned", "aa😀bc", "😀bc"},
      // The last 6 bytes start one byte into the emoji: all of it goes.
      {"4-byte character, cut inside it", "a😀bcd", "bcd"},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    ChatRequest r = request("", {{"user", row.text}});
    const auto res = truncate_to_fit(r, 4 + 2, 0);
    CHECK(res.fits);
    CHECK(res.cut_last);
    CHECK(r.messages[0].content == row.kept);
    CHECK(valid_utf8(r.messages[0].content));
    CHECK(res.estimate <= 6);
  }

  // A long text of mixed widths, cut at every budget: always valid UTF-8, always a suffix.
  std::string text;
  for (int i = 0; i < 40; ++i)
    text += "é日本😀a";
  for (int64_t budget = 5; budget < estimate_tokens(text) + 4; ++budget) {
    INFO("budget " << budget);
    ChatRequest r = request("", {{"user", text}});
    const auto res = truncate_to_fit(r, budget, 0);
    REQUIRE(res.fits);
    REQUIRE(res.estimate <= budget);
    REQUIRE(valid_utf8(r.messages[0].content));
    REQUIRE(ends_with(text, r.messages[0].content));
    REQUIRE_FALSE(r.messages[0].content.empty());
  }
}

TEST_CASE("context: the system prompt is never touched", "[context]") {
  const std::string system = bytes(150, 's');  // 50 tokens
  ChatRequest r = request(system, {{"user", bytes(300)}, {"user", bytes(300)}});
  const auto res = truncate_to_fit(r, 50 + 4 + 10, 0);
  CHECK(res.fits);
  CHECK(r.system == system);
  CHECK(res.dropped_messages == 1);
  CHECK(res.cut_last);
  CHECK(r.messages[0].content == bytes(30));

  // A system-role message inside the list is part of the system prompt too: never dropped.
  r = request("", {{"system", bytes(30, 's')}, {"user", bytes(30)}, {"user", "q"}});
  const auto res2 = truncate_to_fit(r, 14 + 5, 0);
  CHECK(res2.fits);
  CHECK(res2.dropped_messages == 1);
  REQUIRE(r.messages.size() == 2);
  CHECK(r.messages[0].role == "system");
  CHECK(r.messages[1].content == "q");
}

TEST_CASE("context: fits is false when the system prompt and the reserve cannot fit", "[context]") {
  const std::string system = bytes(300, 's');  // 100 tokens
  const ChatRequest original = request(system, {{"user", bytes(30)}, {"user", "question"}}, 50);

  struct Row {
    const char* name;
    int64_t window;
  };
  const std::vector<Row> rows = {
      {"system alone exceeds the window", 90},
      {"system plus reserve exceed it", 140},
      // 100 + 50 + 4 leaves nothing for the last message's text: emptying it is not fitting.
      {"no room for any of the last message", 154},
      {"zero window", 0},
      {"negative window", -10},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    ChatRequest r = original;
    const auto res = truncate_to_fit(r, row.window, 0);
    CHECK_FALSE(res.fits);
    // Left as it was: the caller reports the error with the request's real size.
    CHECK(res.dropped_messages == 0);
    CHECK_FALSE(res.cut_last);
    CHECK(res.estimate == estimate_input_tokens(original));
    CHECK(r.system == system);
    REQUIRE(r.messages.size() == 2);
    CHECK(r.messages[1].content == "question");
  }

  // One token more and the last message keeps its last 3 bytes.
  ChatRequest r = original;
  const auto res = truncate_to_fit(r, 155, 0);
  CHECK(res.fits);
  REQUIRE(r.messages.size() == 1);
  CHECK(r.messages[0].content == "ion");

  // No messages at all: only the system prompt, which is never cut.
  ChatRequest bare = request(system, {});
  const auto res_bare = truncate_to_fit(bare, 50, 0);
  CHECK_FALSE(res_bare.fits);
  CHECK(res_bare.estimate == 100);
  CHECK(bare.system == system);
}
