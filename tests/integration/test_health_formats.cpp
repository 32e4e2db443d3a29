// `detour health` output formats, each checked by parsing what the real binary printed: JSON
// (stable keys), Prometheus text exposition (line grammar, HELP/TYPE, one series per target),
// JUnit XML (well formed, counts that match) and the table (aligned, colour only on a terminal
// and never with NO_COLOR), plus the default format by TTY.
#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "harness.hpp"

using detour::testing::MockServer;
using detour::testing::RunOptions;
using detour::testing::RunResult;
using detour::testing::TempDir;
using nlohmann::json;

namespace {

const char* kKey = "sk-health-SECRET-0123456789abcdef";

// m: healthy (chat replies carry rate-limit headers), wrong: a wrong key, dead: nothing
// listening; the model `a&b<"c">`, awkward in every format, is not found by a chat probe.
struct World {
  MockServer mock;
  TempDir dir;
  std::string config;

  World()
      : mock(json{{"limits", {{"rpm", 6000}, {"tpm", 600000}}},
                  {"models", {{"a&b<\"c\">", {{"fault", "not_found"}}}}}},
             {"--api-key", kKey}) {
    auto provider = [](const std::string& name, const std::string& url, const char* env) {
      return "[providers." + name + "]\nprotocol = \"openai\"\nbase_url = \"" + url +
             "/v1\"\napi_key_env = \"" + env + "\"\n\n";
    };
    config = dir.write(
        "config.toml",
        provider("m", mock.url(), "HKEY") + provider("wrong", mock.url(), "WRONG_KEY") +
            provider("dead", "http://127.0.0.1:" + std::to_string(detour::testing::free_port()),
                     "HKEY") +
            "[models.\"m/mock-1\"]\n[models.\"m/a&b<\\\"c\\\">\"]\n[models.\"wrong/mock-1\"]\n"
            "[models.\"dead/mock-1\"]\n\n[routes.r]\ntargets = [\"dead/primary\", \"m/mock-2\"]\n");
  }

  RunResult health(std::vector<std::string> args, RunOptions options = {}) {
    std::vector<std::string> argv = {
        detour::testing::detour_bin(), "-c", config, "--state", "memory", "health"};
    argv.insert(argv.end(), args.begin(), args.end());
    options.env.emplace("HKEY", kKey);
    options.env.emplace("WRONG_KEY", "sk-not-the-right-one");
    return detour::testing::run(argv, options);
  }
};

bool usable(const json& status) {
  return status == "ok" || status == "degraded";
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

// ---- a minimal XML checker: prolog, balanced elements, quoted attributes, valid entities ----
// (no comments, CDATA or DOCTYPE: detour writes none, so any of them fails the check)

struct XmlElement {
  std::string name;
  std::string parent;
  std::map<std::string, std::string> attrs;  // entities decoded
};

// Decodes the five predefined entities and character references; returns false on a bare '&'
// or '<', which well-formed XML never has in text or attribute values.
bool decode(const std::string& raw, std::string& out) {
  static const std::map<std::string, std::string> entities = {
      {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}};
  out.clear();
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '<') return false;
    if (raw[i] != '&') {
      out += raw[i];
      continue;
    }
    const std::size_t end = raw.find(';', i);
    if (end == std::string::npos) return false;
    const std::string name = raw.substr(i + 1, end - i - 1);
    if (auto e = entities.find(name); e != entities.end()) {
      out += e->second;
    } else if (name.size() > 1 && name[0] == '#') {
      out += '?';
    } else {
      return false;
    }
    i = end;
  }
  return true;
}

// Parses `doc`; on success `problem` stays empty and `elements` lists every element in
// document order with its parent's name.
std::vector<XmlElement> parse_xml(const std::string& doc, std::string& problem) {
  std::vector<XmlElement> elements;
  auto fail = [&](const std::string& why, std::size_t at) {
    problem = why + " at offset " + std::to_string(at);
    return elements;
  };
  if (doc.rfind("<?xml ", 0) != 0) return fail("no <?xml prolog", 0);
  std::size_t i = doc.find("?>");
  if (i == std::string::npos) return fail("unterminated prolog", 0);
  i += 2;
  std::vector<std::string> stack;
  int roots = 0;
  const std::regex name_re("[A-Za-z_][A-Za-z0-9_.-]*");
  while (i < doc.size()) {
    const std::size_t lt = doc.find('<', i);
    const std::string text = doc.substr(i, (lt == std::string::npos ? doc.size() : lt) - i);
    std::string decoded;
    if (!decode(text, decoded)) return fail("bad character data", i);
    if (stack.empty() && decoded.find_first_not_of(" \t\r\n") != std::string::npos)
      return fail("text outside the root element", i);
    if (lt == std::string::npos) break;
    const std::size_t gt = doc.find('>', lt);
    if (gt == std::string::npos) return fail("unterminated tag", lt);
    std::string tag = doc.substr(lt + 1, gt - lt - 1);
    i = gt + 1;
    if (!tag.empty() && tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) return fail("unexpected </" + name + ">", lt);
      stack.pop_back();
      continue;
    }
    const bool self_closing = !tag.empty() && tag.back() == '/';
    if (self_closing) tag.pop_back();
    std::size_t p = tag.find_first_of(" \t\r\n");
    XmlElement element;
    element.name = tag.substr(0, p);
    if (!std::regex_match(element.name, name_re)) return fail("bad element name", lt);
    element.parent = stack.empty() ? "" : stack.back();
    if (stack.empty() && ++roots > 1) return fail("a second root element", lt);
    // Attributes: name="value" or name='value', separated by whitespace, each name once.
    while (p != std::string::npos && p < tag.size()) {
      p = tag.find_first_not_of(" \t\r\n", p);
      if (p == std::string::npos) break;
      const std::size_t eq = tag.find('=', p);
      if (eq == std::string::npos || eq + 1 >= tag.size()) return fail("bad attribute", lt);
      const std::string attr = tag.substr(p, eq - p);
      const char quote = tag[eq + 1];
      if (!std::regex_match(attr, name_re) || (quote != '"' && quote != '\''))
        return fail("bad attribute " + attr, lt);
      const std::size_t close = tag.find(quote, eq + 2);
      if (close == std::string::npos) return fail("unterminated attribute " + attr, lt);
      std::string value;
      if (!decode(tag.substr(eq + 2, close - eq - 2), value))
        return fail("bad attribute value of " + attr, lt);
      if (!element.attrs.emplace(attr, value).second) return fail("repeated " + attr, lt);
      p = close + 1;
      if (p < tag.size() && !std::isspace(static_cast<unsigned char>(tag[p])))
        return fail("no space after attribute " + attr, lt);
    }
    if (!self_closing) stack.push_back(element.name);
    elements.push_back(std::move(element));
  }
  if (!stack.empty()) return fail("<" + stack.back() + "> is never closed", doc.size());
  if (roots != 1) return fail("no root element", doc.size());
  return elements;
}

// ---- Prometheus text exposition ----

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // values unescaped
  std::string label_text;                     // as printed, for duplicate detection
  double value = 0;
};

}  // namespace

TEST_CASE("health --format json: one array, every object with the stable keys", "[health]") {
  World w;
  const std::set<std::string> keys = {"target",  "provider",    "model",      "route",
                                      "status",  "http_status", "latency_ms", "error",
                                      "message", "circuit",     "ratelimit"};
  const std::set<std::string> statuses = {"ok",   "degraded",  "rate_limited", "quota_exhausted",
                                          "auth", "not_found", "down"};
  for (const char* probe : {"models", "chat"}) {
    INFO("--probe " << probe);
    RunResult r = w.health({"--format", "json", "--probe", probe});
    CHECK(r.exit_code == 1);
    json results = json::parse(r.out, nullptr, false);
    REQUIRE(results.is_array());
    REQUIRE(results.size() == 6);
    for (const auto& o : results) {
      INFO(o.dump());
      REQUIRE(o.is_object());
      std::set<std::string> got;
      for (const auto& [k, v] : o.items())
        got.insert(k);
      CHECK(got == keys);
      CHECK(o["target"] == o["provider"].get<std::string>() + "/" + o["model"].get<std::string>());
      CHECK(o["route"].is_null());  // no names given: each target stands on its own
      CHECK(statuses.count(o["status"].get<std::string>()) == 1);
      CHECK((o["http_status"].is_null() || o["http_status"].is_number_integer()));
      CHECK(o["latency_ms"].is_number_integer());
      CHECK((o["error"].is_null() == usable(o["status"])));
      CHECK((o["message"].is_null() || o["message"].is_string()));
      CHECK(o["circuit"].is_string());
      const json& rl = o["ratelimit"];
      REQUIRE(rl.is_object());
      CHECK(rl.size() == 4);
      for (const char* k :
           {"requests_limit", "requests_remaining", "tokens_limit", "tokens_remaining"})
        CHECK((rl.contains(k) && (rl[k].is_null() || rl[k].is_number_integer())));
      if (o["target"] == "m/mock-1" && probe == std::string("chat")) {
        // The limit headers of the mock's reply.
        CHECK(rl["requests_limit"] == 6000);
        CHECK(rl["tokens_limit"] == 600000);
        CHECK(rl["requests_remaining"].is_number_integer());
        CHECK(rl["tokens_remaining"].is_number_integer());
      }
    }
  }

  // Not a terminal: json is the default.
  RunResult piped = w.health({"m/mock-1"});
  CHECK(piped.exit_code == 0);
  json fallback = json::parse(piped.out, nullptr, false);
  REQUIRE(fallback.is_array());
  CHECK(fallback[0]["status"] == "ok");
}

TEST_CASE("health --format prometheus follows the text exposition grammar", "[health]") {
  World w;
  const std::vector<std::string> names = {"r",           "m/mock-1",    "m/mock-2", "wrong/mock-1",
                                          "dead/mock-1", "m/a&b<\"c\">"};
  std::vector<std::string> args = names;
  args.insert(args.end(), {"--probe", "chat", "--format", "prometheus"});
  RunResult r = w.health(args);
  CHECK(r.exit_code == 1);
  INFO(r.out);
  REQUIRE(!r.out.empty());
  CHECK(r.out.back() == '\n');

  const std::string label = R"([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")";
  // The label set is optional in the grammar (detour_health_timestamp_seconds has none).
  const std::regex sample_re("^([a-zA-Z_:][a-zA-Z0-9_:]*)((?:\\{(?:" + label + "(?:," + label +
                             ")*)?\\})?) (-?[0-9.]+(?:e-?[0-9]+)?)$");
  const std::regex help_re(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$)");
  const std::regex type_re(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) gauge$)");
  const std::regex label_re("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\\\n]|\\\\[\\\\\"n])*)\"");

  std::set<std::string> helped, typed, series;
  std::string current;  // the family whose samples may follow
  std::vector<Sample> samples;
  for (const auto& line : lines_of(r.out)) {
    INFO("line: " << line);
    std::smatch m;
    if (std::regex_match(line, m, help_re)) {
      CHECK(helped.insert(m[1]).second);  // one HELP per family
      current.clear();
    } else if (std::regex_match(line, m, type_re)) {
      CHECK(helped.count(m[1]) == 1);  // HELP, then TYPE
      CHECK(typed.insert(m[1]).second);
      current = m[1];
    } else if (std::regex_match(line, m, sample_re)) {
      Sample s;
      s.name = m[1];
      s.label_text = m[2];
      s.value = std::stod(m[3]);
      CHECK(s.name == current);  // after its family's TYPE, before the next family
      CHECK(series.insert(s.name + s.label_text).second);  // no series twice
      const std::string labels = m[2];
      for (std::sregex_iterator it(labels.begin(), labels.end(), label_re), end; it != end; ++it) {
        std::string value, raw = (*it)[2];
        for (std::size_t i = 0; i < raw.size(); ++i) {
          if (raw[i] == '\\' && i + 1 < raw.size()) {
            ++i;
            value += raw[i] == 'n' ? '\n' : raw[i];
          } else {
            value += raw[i];
          }
        }
        s.labels[(*it)[1]] = value;
      }
      samples.push_back(std::move(s));
    } else {
      FAIL_CHECK("not a HELP, TYPE or sample line");
    }
  }
  for (const char* family :
       {"detour_target_up", "detour_target_latency_seconds", "detour_target_requests_remaining",
        "detour_target_tokens_remaining", "detour_target_circuit_open", "detour_route_up",
        "detour_target_status", "detour_health_timestamp_seconds"}) {
    INFO(family);
    CHECK(typed.count(family) == 1);
  }

  // detour_target_up says what the JSON report's status says, per target.
  args = names;
  args.insert(args.end(), {"--probe", "chat", "--format", "json"});
  json results = json::parse(w.health(args).out);
  std::map<std::string, bool> expected;  // provider/model -> usable
  for (const auto& o : results)
    expected[o["target"].get<std::string>()] = usable(o["status"]);
  std::map<std::string, double> up;
  bool route_up_seen = false;
  for (const auto& s : samples) {
    INFO(s.name << s.label_text);
    if (s.name == "detour_route_up") {
      CHECK(s.labels == std::map<std::string, std::string>{{"route", "r"}});
      CHECK(s.value == 1);  // m/mock-2 answers for dead/primary
      route_up_seen = true;
      continue;
    }
    if (s.name == "detour_health_timestamp_seconds") {
      CHECK(s.labels.empty());
      CHECK(s.value > 1.7e9);  // a Unix time, not a duration
      continue;
    }
    if (s.name == "detour_target_status") {
      REQUIRE(s.labels.count("status") == 1);
      const std::string target = s.labels.at("provider") + "/" + s.labels.at("model");
      auto it = std::find_if(results.begin(), results.end(),
                             [&](const json& o) { return o["target"] == target; });
      REQUIRE(it != results.end());
      CHECK(s.value == ((*it)["status"] == s.labels.at("status") ? 1 : 0));
      continue;
    }
    REQUIRE(s.labels.count("provider") == 1);
    REQUIRE(s.labels.count("model") == 1);
    const std::string target = s.labels.at("provider") + "/" + s.labels.at("model");
    CHECK(expected.count(target) == 1);
    if (s.name == "detour_target_up") {
      CHECK((s.value == 0 || s.value == 1));
      up[target] = s.value;
    }
    if (s.name == "detour_target_latency_seconds") CHECK(s.value >= 0);
  }
  CHECK(route_up_seen);
  REQUIRE(up.size() == expected.size());  // the awkward model name survives the labels
  for (const auto& [target, ok] : expected) {
    INFO(target);
    CHECK(up[target] == (ok ? 1 : 0));
  }
  CHECK(up["m/mock-1"] == 1);
  CHECK(up["dead/mock-1"] == 0);
  CHECK(up["wrong/mock-1"] == 0);
  CHECK(up["m/a&b<\"c\">"] == 0);
  CHECK(series.count("detour_target_requests_remaining{provider=\"m\",model=\"mock-1\"}") == 1);
  CHECK(series.count("detour_target_requests_remaining{provider=\"dead\",model=\"mock-1\"}") == 0);
}

TEST_CASE("health --format junit is well-formed XML with one testcase per target", "[health]") {
  World w;
  RunResult r = w.health({"--probe", "chat", "--format", "junit"});
  CHECK(r.exit_code == 1);
  INFO(r.out);
  std::string problem;
  const auto elements = parse_xml(r.out, problem);
  REQUIRE(problem == "");

  json results = json::parse(w.health({"--probe", "chat", "--format", "json"}).out);
  std::map<std::string, std::string> status_of;
  std::size_t unusable = 0;
  for (const auto& o : results) {
    status_of[o["target"].get<std::string>()] = o["status"].get<std::string>();
    unusable += usable(o["status"]) ? 0 : 1;
  }
  REQUIRE(unusable == 4);  // wrong, dead/mock-1, dead/primary, the awkward model

  REQUIRE(!elements.empty());
  CHECK(elements[0].name == "testsuites");
  std::size_t testcases = 0, failures = 0;
  std::vector<const XmlElement*> suites;
  std::set<std::string> names;
  for (std::size_t i = 0; i < elements.size(); ++i) {
    const XmlElement& e = elements[i];
    if (e.name == "testsuite") suites.push_back(&e);
    if (e.name == "testcase") {
      ++testcases;
      CHECK(e.parent == "testsuite");
      CHECK(names.insert(e.attrs.at("name")).second);
      CHECK(e.attrs.count("classname") == 1);
      CHECK(e.attrs.count("time") == 1);
      // Its failure, if any, is its next element.
      const bool failed = i + 1 < elements.size() && elements[i + 1].name == "failure";
      const std::string& target = e.attrs.at("name");
      INFO(target);
      REQUIRE(status_of.count(target) == 1);
      CHECK(failed == !usable(status_of[target]));
      if (failed) {
        CHECK(elements[i + 1].attrs.at("type") == status_of[target]);
        CHECK_THAT(elements[i + 1].attrs.at("message"), Catch::StartsWith(status_of[target]));
      }
    }
    if (e.name == "failure") {
      ++failures;
      CHECK(e.parent == "testcase");
    }
  }
  CHECK(testcases == results.size());
  CHECK(failures == unusable);
  CHECK(names.count("m/a&b<\"c\">") == 1);  // escaped on the way out, intact on the way in
  REQUIRE(suites.size() == 1);
  CHECK(suites[0]->attrs.at("tests") == std::to_string(testcases));
  CHECK(suites[0]->attrs.at("failures") == std::to_string(failures));
  for (const char* count : {"tests", "failures"})  // <testsuites> sums its one suite
    CHECK(elements[0].attrs.at(count) == suites[0]->attrs.at(count));

  // All usable: no failure element at all.
  RunResult good = w.health({"m/mock-1", "--format", "junit"});
  CHECK(good.exit_code == 0);
  REQUIRE(parse_xml(good.out, problem).size() == 4);  // testsuites, testsuite, testcase, out
  CHECK(problem == "");
  CHECK(good.out.find("<failure") == std::string::npos);
}

TEST_CASE("health table on a terminal: aligned, coloured unless NO_COLOR", "[health]") {
  World w;
  auto columns_aligned = [](const std::string& out) {
    auto lines = lines_of(out);
    REQUIRE(!lines.empty());
    const std::string& header = lines[0];
    CHECK_THAT(header, Catch::StartsWith("TARGET"));
    std::vector<std::size_t> starts;
    for (const char* col : {"STATUS", "HTTP", "LATENCY", "HEADROOM", "CIRCUIT", "DETAIL"}) {
      const std::size_t at = header.find(col);
      REQUIRE(at != std::string::npos);
      starts.push_back(at);
    }
    std::size_t rows = 0;
    for (std::size_t i = 1; i < lines.size() && lines[i].rfind("route ", 0) != 0; ++i, ++rows) {
      INFO(lines[i]);
      for (std::size_t at : starts) {
        REQUIRE(lines[i].size() > at);
        CHECK(lines[i][at - 1] == ' ');
        CHECK(lines[i][at] != ' ');
      }
    }
    return rows;
  };
  auto strip_ansi = [](const std::string& text) {
    return std::regex_replace(text, std::regex("\033\\[[0-9;]*m"), "");
  };

  RunOptions tty;
  tty.stdout_is_tty = true;
  RunOptions no_color = tty;
  no_color.env["NO_COLOR"] = "1";
  RunResult plain = w.health({"r", "m/mock-1", "wrong/mock-1"}, no_color);
  CHECK(plain.exit_code == 1);
  INFO(plain.out);
  CHECK(plain.out.find("\033[") == std::string::npos);
  CHECK(columns_aligned(plain.out) == 4);
  CHECK_THAT(plain.out, Catch::Contains("route r: can answer"));
  const std::regex row_re("(^|\n)wrong/mock-1 +auth +401 ");
  CHECK(std::regex_search(plain.out, row_re));

  RunResult coloured = w.health({"r", "m/mock-1", "wrong/mock-1"}, tty);
  INFO(coloured.out);
  CHECK(coloured.exit_code == 1);
  CHECK_THAT(coloured.out, Catch::Contains("\033[32mok\033[0m"));
  CHECK_THAT(coloured.out, Catch::Contains("\033[31mauth\033[0m"));
  CHECK_THAT(coloured.out, Catch::Contains("\033[31mdown\033[0m"));
  CHECK(columns_aligned(strip_ansi(coloured.out)) == 4);  // colour does not skew the columns

  RunOptions dumb = tty;
  dumb.env["TERM"] = "dumb";
  CHECK(w.health({"m/mock-1"}, dumb).out.find("\033[") == std::string::npos);
  CHECK(w.health({"--no-color", "m/mock-1"}, tty).out.find("\033[") == std::string::npos);

  // Asked for explicitly into a pipe: a table, never coloured.
  RunResult piped = w.health({"m/mock-1", "--format", "table"});
  CHECK_THAT(piped.out, Catch::StartsWith("TARGET"));
  CHECK(piped.out.find("\033[") == std::string::npos);
  // On a terminal without --format: the table.
  CHECK_THAT(w.health({"m/mock-1"}, no_color).out, Catch::StartsWith("TARGET"));
}
