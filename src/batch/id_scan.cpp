#include "batch/id_scan.hpp"

#include <string>

namespace detour::batch::detail {

namespace {

// Thrown on the first thing the scanner is not sure of; caught in scan_line_id.
struct Unsure {};

class Scanner {
 public:
  explicit Scanner(std::string_view text) : s_(text) {}

  ScannedId line() {
    ws();
    expect('{');
    ws();
    std::optional<std::string> id, custom_id;
    bool openai = false;
    if (!eat('}')) {
      do {
        ws();
        const std::string_view key = plain_string();
        ws();
        expect(':');
        ws();
        if (key == "custom_id" || key == "body") openai = true;
        if (key == "id")
          id = id_value();
        else if (key == "custom_id")
          custom_id = id_value();
        else
          value();
        ws();
      } while (eat(','));
      expect('}');
    }
    ws();
    if (i_ != s_.size()) throw Unsure{};
    return ScannedId{openai ? custom_id : id};
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool eat(char c) {
    if (peek() != c || i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  void expect(char c) {
    if (!eat(c)) throw Unsure{};
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n'))
      ++i_;
  }
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  static bool hex(char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

  // A string after its opening quote; true when it had an escape.
  bool string_body() {
    bool escaped = false;
    while (true) {
      if (i_ >= s_.size()) throw Unsure{};
      const auto c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return escaped;
      if (c < 0x20) throw Unsure{};
      if (c != '\\') continue;
      escaped = true;
      const char e = peek();
      ++i_;
      if (e == 'u') {
        if (i_ + 4 > s_.size()) throw Unsure{};
        for (int k = 0; k < 4; ++k)
          if (!hex(s_[i_ + k])) throw Unsure{};
        // A surrogate must be paired correctly; nlohmann judges those.
        const char h = s_[i_];
        if ((h == 'd' || h == 'D') &&
            std::string_view("89abAB89ABcdefCDEF").find(s_[i_ + 1]) != std::string_view::npos)
          throw Unsure{};
        i_ += 4;
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos || e == '\0') {
        throw Unsure{};
      }
    }
  }

  // A string without escapes, as it is: a top-level key or an id.
  std::string_view plain_string() {
    expect('"');
    const std::size_t start = i_;
    if (string_body()) throw Unsure{};
    return s_.substr(start, i_ - 1 - start);
  }

  // A number; its text. Exponents and very long numbers are left to nlohmann, which may find
  // them out of range.
  std::string_view number() {
    const std::size_t start = i_;
    eat('-');
    if (eat('0')) {
    } else if (digit(peek()) && peek() != '0') {
      while (digit(peek()))
        ++i_;
    } else {
      throw Unsure{};
    }
    if (eat('.')) {
      if (!digit(peek())) throw Unsure{};
      while (digit(peek()))
        ++i_;
    }
    if (peek() == 'e' || peek() == 'E' || i_ - start > 300) throw Unsure{};
    return s_.substr(start, i_ - start);
  }

  // The value of "id" or "custom_id": its text when it is a usable id.
  std::optional<std::string> id_value() {
    const char c = peek();
    if (c == '"') {
      const std::string_view text = plain_string();
      if (text.empty()) return std::nullopt;
      return std::string(text);
    }
    if (c == '-' || digit(c)) {
      const std::string_view n = number();
      if (n.find('.') != std::string_view::npos) return std::nullopt;  // not an integer
      if (n.size() > 18) throw Unsure{};  // may not fit 64 bits: nlohmann decides
      if (n == "-0") return "0";
      return std::string(n);
    }
    value();
    return std::nullopt;
  }

  void literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) throw Unsure{};
    i_ += word.size();
  }

  // Any value, nested ones without recursion (a line may nest deeply).
  void value() {
    std::string closers;
    while (true) {
      // One value starts here.
      const char c = peek();
      if (c == '"') {
        ++i_;
        string_body();
      } else if (c == '{' || c == '[') {
        ++i_;
        ws();
        if (eat(c == '{' ? '}' : ']')) {
          // empty: a complete value
        } else {
          closers += c == '{' ? '}' : ']';
          if (c == '{') member_key();
          continue;
        }
      } else if (c == 't') {
        literal("true");
      } else if (c == 'f') {
        literal("false");
      } else if (c == 'n') {
        literal("null");
      } else if (c == '-' || digit(c)) {
        number();
      } else {
        throw Unsure{};
      }
      // After a value: the next element, or the end of one or more containers.
      while (true) {
        if (closers.empty()) return;
        ws();
        if (eat(',')) {
          ws();
          if (closers.back() == '}') member_key();
          break;
        }
        expect(closers.back());
        closers.pop_back();
      }
    }
  }

  void member_key() {
    expect('"');
    string_body();
    ws();
    expect(':');
    ws();
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

std::optional<ScannedId> scan_line_id(std::string_view text) {
  try {
    return Scanner(text).line();
  } catch (const Unsure&) {
    return std::nullopt;
  }
}

}  // namespace detour::batch::detail
