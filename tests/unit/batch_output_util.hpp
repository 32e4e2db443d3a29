#pragma once
// What the `detour batch` output tests share: a temporary directory, whole-file reads and
// writes, a sink that records lines, and call results to format.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "batch/output_file.hpp"
#include "engine/call.hpp"

namespace detour::testing::batch_output {

namespace fs = std::filesystem;

// The keys of a JSON object in their order: the output lines' key order is part of the format.
inline std::vector<std::string> keys_of(const nlohmann::ordered_json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items())
    keys.push_back(item.key());
  return keys;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "detour-batch-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

inline unsigned mode_of(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw std::runtime_error("stat failed: " + path);
  return info.st_mode & 07777;
}

// Records the lines it is given; optionally fails the n-th write.
class RecordingSink : public batch::LineSink {
 public:
  void write_line(std::string_view line) override {
    if (fail_at_ && lines.size() + 1 == *fail_at_) {
      fail_at_.reset();
      throw batch::OutputError("out.jsonl: No space left on device");
    }
    lines.emplace_back(line);
  }
  void fail_write(std::size_t nth) { fail_at_ = nth; }
  std::vector<std::string> lines;

 private:
  std::optional<std::size_t> fail_at_;
};

inline engine::AttemptRecord attempt(const char* model, std::optional<int> status,
                                     engine::ErrorClass error) {
  engine::AttemptRecord a;
  a.provider = "openai";
  a.model = model;
  a.status = status;
  a.error = error;
  return a;
}

// A call answered by openai/gpt-4o-mini after a 429 from openai/gpt-4o and a skipped target.
inline engine::CallResult answered(std::string content = "hello") {
  config::ResolvedTarget target;
  target.target = {"openai", "gpt-4o-mini"};
  engine::CallResult ok;
  ok.ok = true;
  ok.target = target;
  ok.degraded = true;
  ok.reply.content = std::move(content);
  ok.reply.finish_reason = "stop";
  ok.reply.served_model = "gpt-4o-mini-2024-07-18";
  ok.reply.usage = {12, 34, std::nullopt};
  ok.cost_usd = 0.000022;
  ok.latency = Millis(812);
  ok.attempts = {attempt("gpt-4o", 429, engine::ErrorClass::rate_limited),
                 attempt("gpt-4o", std::nullopt, engine::ErrorClass::skipped_open),
                 attempt("gpt-4o-mini", 200, engine::ErrorClass::none)};
  return ok;
}

// A call that ended on a 503 after two attempts.
inline engine::CallResult overloaded() {
  engine::CallResult failed;
  failed.error = engine::ErrorClass::overloaded;
  failed.status = 503;
  failed.message = "openai/gpt-4o: busy";
  failed.latency = Millis(300);
  failed.attempts = {attempt("gpt-4o", 503, engine::ErrorClass::overloaded),
                     attempt("gpt-4o", 503, engine::ErrorClass::overloaded)};
  return failed;
}

}  // namespace detour::testing::batch_output
