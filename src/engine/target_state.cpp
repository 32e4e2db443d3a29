#include "engine/target_state.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace detour::engine {

using nlohmann::json;

std::string target_key(const config::Target& target) {
  return "target:" + target.name();
}
std::string provider_key(const std::string& provider) {
  return "provider:" + provider;
}
std::string route_key(const std::string& route) {
  return "route:" + route;
}

std::string key_fingerprint(const std::string& api_key) {
  if (api_key.empty()) return "";
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : api_key) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  // 32 of 64 bits: enough to notice a changed key, too few to help anyone guess one.
  char out[9];
  std::snprintf(out, sizeof out, "%08x", static_cast<unsigned>(hash >> 32));
  return out;
}

namespace {

std::string_view stored_name(BreakerSnapshot::Stored s) {
  switch (s) {
    case BreakerSnapshot::Stored::closed:
      return "closed";
    case BreakerSnapshot::Stored::open:
      return "open";
    case BreakerSnapshot::Stored::half_open:
      return "half_open";
  }
  return "closed";
}

template <typename T>
std::optional<T> field(const json& doc, const char* name) {
  if (!doc.is_object()) return std::nullopt;
  auto it = doc.find(name);
  if (it == doc.end() || it->is_null()) return std::nullopt;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return std::nullopt;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return std::nullopt;
  } else {
    if (!it->is_number()) return std::nullopt;
  }
  return it->get<T>();
}

// Lists of numbers are stored as one string of space-separated decimals: nlohmann parses a JSON
// number in about a thousand instructions, and the breaker window and latency lists -- 250
// numbers -- are most of a target document, which every process parses twice (tests/bench/run
// P1). A string is one token; std::from_chars reads its numbers in a few dozen each.
std::string pack(const std::vector<std::int64_t>& values) {
  std::string out;
  out.reserve(values.size() * 4);
  char digits[24];
  for (const std::int64_t v : values) {
    const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
    if (!out.empty()) out += ' ';
    out.append(digits, end);
  }
  return out;
}

std::vector<std::int64_t> unpack(std::string_view text) {
  std::vector<std::int64_t> out;
  const char* at = text.data();
  const char* const end = text.data() + text.size();
  while (at < end) {
    if (*at == ' ') {
      ++at;
      continue;
    }
    std::int64_t v = 0;
    const auto [next, error] = std::from_chars(at, end, v);
    if (error != std::errc()) return out;  // damaged: what was read so far
    out.push_back(v);
    at = next;
  }
  return out;
}

// A packed list, or the JSON array an older detour wrote (a state file outlives an upgrade).
std::vector<std::int64_t> int_list(const json& doc, const char* name) {
  std::vector<std::int64_t> out;
  if (!doc.is_object()) return out;
  const auto list = doc.find(name);
  if (list == doc.end()) return out;
  if (list->is_string()) return unpack(list->get_ref<const std::string&>());
  if (!list->is_array()) return out;
  out.reserve(list->size());
  for (const auto& v : *list) {
    if (v.is_number()) out.push_back(v.get<std::int64_t>());
  }
  return out;
}

json optional_json(const auto& value) {
  if (value) return *value;
  return nullptr;
}

void push_recent(std::vector<std::int64_t>& values, std::int64_t value) {
  values.push_back(value);
  if (values.size() > TargetStats::kRecent) values.erase(values.begin());
}

double ewma(std::optional<double> previous, double sample) {
  if (!previous) return sample;
  return TargetStats::kAlpha * sample + (1 - TargetStats::kAlpha) * *previous;
}

}  // namespace

namespace {

std::optional<std::int64_t> shifted(std::optional<std::int64_t> ms, std::int64_t by) {
  if (ms) *ms += by;
  return ms;
}

}  // namespace

json to_json(const TargetState& s, std::int64_t clock_shift_ms) {
  // The times as offsets from the oldest (short numbers), packed, and the outcomes as a string
  // of '0' (ok) and '1' (failed).
  std::vector<std::int64_t> offsets;
  std::string failures;
  offsets.reserve(s.breaker.window.size());
  failures.reserve(s.breaker.window.size());
  const std::int64_t from = s.breaker.window.empty() ? 0 : s.breaker.window.front().first;
  for (const auto& [ms, failed] : s.breaker.window) {
    offsets.push_back(ms - from);
    failures.push_back(failed ? '1' : '0');
  }
  json window = {{"from_ms", from + clock_shift_ms},
                 {"after_ms", pack(offsets)},
                 {"failed", std::move(failures)}};
  json breaker = {
      {"state", stored_name(s.breaker.state)},
      {"open_until_ms", optional_json(shifted(s.breaker.open_until_ms, clock_shift_ms))},
      {"consecutive_failures", s.breaker.consecutive_failures},
      {"trips", s.breaker.trips},
      {"window", std::move(window)}};
  json stats = {{"calls", s.stats.calls},
                {"success_rate", optional_json(s.stats.success_rate)},
                {"latency_ms", optional_json(s.stats.latency_ms)},
                {"latencies_ms", pack(s.stats.latencies_ms)},
                {"ttft_ms", pack(s.stats.ttft_ms)},
                {"last_success_ms", optional_json(s.stats.last_success_ms)}};
  if (s.stats.last_error) {
    const auto& e = *s.stats.last_error;
    stats["last_error"] = {{"class", e.error_class},
                           {"status", optional_json(e.status)},
                           {"message", e.message},
                           {"at_ms", e.at_ms}};
  }
  return {{"breaker", std::move(breaker)},
          {"key_id", s.key_id},
          {"probe_claimed_ms", optional_json(shifted(s.probe_claimed_ms, clock_shift_ms))},
          {"stats", std::move(stats)}};
}

namespace {

const json& member_object(const json& doc, const char* key) {
  static const json empty = json::object();
  const auto it = doc.find(key);
  return it != doc.end() && it->is_object() ? *it : empty;
}

// {"from_ms": T, "after_ms": "0 16 33", "failed": "010"}, or the [[ms, failed], ...] pairs an
// older detour wrote. Entries that do not parse are skipped.
void read_window(const json& w, std::int64_t shift,
                 std::vector<std::pair<std::int64_t, bool>>& out) {
  if (w.is_object()) {
    const auto from = shifted(field<std::int64_t>(w, "from_ms"), -shift);
    const auto failed = w.find("failed");
    if (!from || failed == w.end() || !failed->is_string()) return;
    const std::string& flags = failed->get_ref<const std::string&>();
    const std::vector<std::int64_t> offsets = int_list(w, "after_ms");
    out.reserve(std::min(offsets.size(), flags.size()));
    for (std::size_t i = 0; i < offsets.size() && i < flags.size(); ++i) {
      if (flags[i] == '0' || flags[i] == '1') out.emplace_back(*from + offsets[i], flags[i] == '1');
    }
    return;
  }
  if (!w.is_array()) return;
  out.reserve(w.size());
  for (const auto& entry : w) {
    if (entry.is_array() && entry.size() == 2 && entry[0].is_number() && entry[1].is_boolean())
      out.emplace_back(entry[0].get<std::int64_t>() - shift, entry[1].get<bool>());
  }
}

}  // namespace

TargetState target_state_from_json(const json& doc, std::int64_t clock_shift_ms) {
  TargetState s;
  if (!doc.is_object()) return s;
  s.key_id = field<std::string>(doc, "key_id").value_or("");
  s.probe_claimed_ms = shifted(field<std::int64_t>(doc, "probe_claimed_ms"), -clock_shift_ms);

  // References, not json::value's copies: the window and the latency lists are most of the
  // document, and every call's plan reads it (tests/bench/run P2, E1).
  const json& breaker = member_object(doc, "breaker");
  const std::string state = field<std::string>(breaker, "state").value_or("closed");
  s.breaker.state = state == "open"        ? BreakerSnapshot::Stored::open
                    : state == "half_open" ? BreakerSnapshot::Stored::half_open
                                           : BreakerSnapshot::Stored::closed;
  s.breaker.open_until_ms = shifted(field<std::int64_t>(breaker, "open_until_ms"), -clock_shift_ms);
  s.breaker.consecutive_failures = field<int>(breaker, "consecutive_failures").value_or(0);
  s.breaker.trips = field<int>(breaker, "trips").value_or(0);
  if (const auto w = breaker.find("window"); w != breaker.end())
    read_window(*w, clock_shift_ms, s.breaker.window);

  const json& stats = member_object(doc, "stats");
  s.stats.calls = field<std::int64_t>(stats, "calls").value_or(0);
  s.stats.success_rate = field<double>(stats, "success_rate");
  s.stats.latency_ms = field<double>(stats, "latency_ms");
  s.stats.latencies_ms = int_list(stats, "latencies_ms");
  s.stats.ttft_ms = int_list(stats, "ttft_ms");
  s.stats.last_success_ms = field<std::int64_t>(stats, "last_success_ms");
  if (const auto le = stats.find("last_error"); le != stats.end() && le->is_object()) {
    const json& e = *le;
    s.stats.last_error = LastError{
        field<std::string>(e, "class").value_or("unknown"), field<int>(e, "status"),
        field<std::string>(e, "message").value_or(""), field<std::int64_t>(e, "at_ms").value_or(0)};
  }
  return s;
}

void record_outcome(TargetStats& stats, ErrorClass outcome, std::optional<int> status,
                    const std::string& message, Millis latency, std::optional<Millis> ttft,
                    std::int64_t wall_ms) {
  if (outcome == ErrorClass::none) {
    ++stats.calls;
    stats.success_rate = ewma(stats.success_rate, 1.0);
    stats.latency_ms = ewma(stats.latency_ms, static_cast<double>(latency.count()));
    push_recent(stats.latencies_ms, latency.count());
    if (ttft) push_recent(stats.ttft_ms, ttft->count());
    stats.last_success_ms = wall_ms;
    return;
  }
  if (outcome == ErrorClass::cancelled || outcome == ErrorClass::skipped_open ||
      outcome == ErrorClass::skipped_budget) {
    return;  // nothing was learned about the target
  }
  stats.last_error = LastError{std::string(to_string(outcome)), status, message, wall_ms};
  // Rate limits are capacity, and request rejections are the caller's fault: neither says
  // the target is unreliable, so they do not lower its success rate.
  if (outcome == ErrorClass::rate_limited || is_request_rejection(outcome)) return;
  ++stats.calls;
  stats.success_rate = ewma(stats.success_rate, 0.0);
}

std::optional<std::int64_t> percentile(std::vector<std::int64_t> values, double p) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const double rank =
      std::ceil(std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(values.size()));
  const std::size_t index = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  return values[std::min(index, values.size() - 1)];
}

}  // namespace detour::engine
