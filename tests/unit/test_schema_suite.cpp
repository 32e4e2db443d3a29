// SchemaValidator against the official JSON-Schema-Test-Suite (Debian package
// json-schema-test-suite, installed by scripts/deps): every case of every keyword we claim to
// support, checked one by one. Cases that need the suite's remote-ref server are not run, but
// their schemas must be refused (nothing is fetched). Known valijson limitations are listed
// case by case below, never by skipping a whole file.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "engine/validate.hpp"

using detour::UsageError;
using detour::engine::SchemaValidator;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kDebianSuiteDir = "/usr/share/json-schema-test-suite/tests";

// One file per keyword (src/engine/validate.cpp lists them). refRemote.json is here so that its
// schemas are seen to be refused rather than fetched; all its cases need the server.
const std::vector<std::string> kKeywordFiles = {
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "items",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "contains",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "propertyNames",
    "dependencies",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if-then-else",
    "boolean_schema",
    "default",
    "ref",
    "definitions",
    "refRemote",
};

// Groups (file, group description) whose schema detour refuses although it needs no server.
struct KnownLimitation {
  const char* file;
  const char* group;
  const char* why;
};
const std::vector<KnownLimitation> kKnownLimitations = {
    {"ref.json", "Recursive references between schemas",
     "the $refs \"node\" and \"tree\" name subschemas by their $id "
     "(http://localhost:1234/node); valijson 1.0 does not index $id and would fetch the URI, so "
     "detour refuses $refs that are not JSON pointers (\"#/...\") at load time"},
};

// Where the suite is: $JSON_SCHEMA_TEST_SUITE (a checkout's tests/ directory), else the Debian
// package's directory. Empty when neither exists.
fs::path suite_dir() {
  if (const char* env = std::getenv("JSON_SCHEMA_TEST_SUITE"); env && *env) {
    if (fs::is_directory(fs::path(env) / "draft7")) return env;
  }
  if (fs::is_directory(fs::path(kDebianSuiteDir) / "draft7")) return kDebianSuiteDir;
  return {};
}

bool is_absolute_uri(std::string_view uri) {
  const auto colon = uri.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const auto slash = uri.find_first_of("/?#");
  return slash == std::string_view::npos || colon < slash;
}

std::string without_fragment(const std::string& uri) {
  return uri.substr(0, uri.find('#'));
}

// `ref` resolved against `base` (RFC 3986 section 5.2, as much as the suite's schemas use).
std::string resolve_uri(const std::string& base, const std::string& ref) {
  if (is_absolute_uri(ref)) return ref;
  if (ref.empty() || ref.front() == '#') return without_fragment(base) + ref;
  const std::string doc = without_fragment(base);
  if (ref.front() == '/') {
    const auto scheme_end = doc.find("://");
    const auto path_start =
        scheme_end == std::string::npos ? std::string::npos : doc.find('/', scheme_end + 3);
    return (path_start == std::string::npos ? doc : doc.substr(0, path_start)) + ref;
  }
  const auto last_slash = doc.rfind('/');
  return (last_slash == std::string::npos ? std::string() : doc.substr(0, last_slash + 1)) + ref;
}

// Collects the documents the schema's $ids declare and those its $refs point into.
void collect_uris(const json& node, const std::string& base, bool names,
                  std::set<std::string>& declared, std::set<std::string>& referenced) {
  if (node.is_array()) {
    for (const auto& item : node)
      collect_uris(item, base, false, declared, referenced);
    return;
  }
  if (!node.is_object()) return;
  std::string scope = base;
  if (!names) {
    const auto id = node.find("$id");
    if (id != node.end() && id->is_string()) {
      scope = resolve_uri(base, id->get<std::string>());
      declared.insert(without_fragment(scope));
    }
    const auto ref = node.find("$ref");
    if (ref != node.end() && ref->is_string())
      referenced.insert(without_fragment(resolve_uri(scope, ref->get<std::string>())));
  }
  for (const auto& [key, value] : node.items()) {
    if (!names && (key == "const" || key == "enum" || key == "default" || key == "examples"))
      continue;  // data, not schemas
    const bool child_names = !names && (key == "properties" || key == "patternProperties" ||
                                        key == "definitions" || key == "dependencies");
    collect_uris(value, scope, child_names, declared, referenced);
  }
}

// True when a $ref leads to a document the schema itself does not contain, i.e. one the suite
// serves from http://localhost:1234 (or a meta-schema on json-schema.org).
bool has_remote_ref(const json& schema) {
  std::set<std::string> declared{""};  // "": the schema document itself, when it has no $id
  std::set<std::string> referenced;
  collect_uris(schema, "", false, declared, referenced);
  for (const auto& doc : referenced)
    if (!declared.count(doc)) return true;
  return false;
}

const KnownLimitation* known_limitation(const std::string& file, const std::string& group) {
  for (const auto& k : kKnownLimitations)
    if (file == k.file && group == k.group) return &k;
  return nullptr;
}

struct Counts {
  int cases = 0;        // run through check()
  int remote = 0;       // not run: need the remote-ref server
  int limitations = 0;  // not run: kKnownLimitations
};

void run_file(const fs::path& path, const std::string& draft, Counts& counts) {
  const std::string file = path.filename().string();
  std::ifstream in(path);
  REQUIRE(in);
  const json groups = json::parse(in);
  REQUIRE(groups.is_array());
  for (const auto& group : groups) {
    const std::string group_name = group.at("description").get<std::string>();
    const json& schema = group.at("schema");
    const json& tests = group.at("tests");
    INFO(draft << "/" << file << " | " << group_name);
    INFO("schema: " << schema.dump());

    const KnownLimitation* limitation = known_limitation(file, group_name);
    if (has_remote_ref(schema) || limitation) {
      // Not run, but never fetched either: the schema is refused when loaded.
      CHECK_THROWS_AS(SchemaValidator(schema, file), UsageError);
      (limitation ? counts.limitations : counts.remote) += static_cast<int>(tests.size());
      continue;
    }

    std::optional<SchemaValidator> validator;
    try {
      validator.emplace(schema, file);
    } catch (const UsageError& e) {
      FAIL_CHECK("schema refused: " << e.what());
      continue;
    }
    for (const auto& test : tests) {
      const bool valid = test.at("valid").get<bool>();
      const std::string violations = validator->check(test.at("data"));
      INFO("case: " << test.at("description").get<std::string>());
      INFO("data: " << test.at("data").dump() << ", expected " << (valid ? "valid" : "invalid")
                    << ", check(): \"" << violations << "\"");
      CHECK(violations.empty() == valid);
      ++counts.cases;
    }
  }
}

}  // namespace

TEST_CASE("validate: has_remote_ref tells the suite's server refs from local ones",
          "[validate][schema-suite]") {
  CHECK(has_remote_ref(json::parse(R"({"$ref": "http://localhost:1234/integer.json"})")));
  CHECK(has_remote_ref(json::parse(
      R"({"$id": "http://localhost:1234/", "items": {"$id": "folder/",
          "items": {"$ref": "folderInteger.json"}}})")));
  CHECK(has_remote_ref(json::parse(R"({"properties": {"a": {"$ref": "other.json"}}})")));
  CHECK_FALSE(has_remote_ref(json::parse(R"({"$ref": "#/definitions/a"})")));
  CHECK_FALSE(has_remote_ref(json::parse(R"({"properties": {"$ref": {"type": "string"}}})")));
  CHECK_FALSE(has_remote_ref(json::parse(
      R"({"$id": "http://localhost:1234/tree", "items": {"$ref": "node"},
          "definitions": {"node": {"$id": "http://localhost:1234/node"}}})")));
}

TEST_CASE("validate: JSON-Schema-Test-Suite, supported keywords", "[validate][schema-suite]") {
  const fs::path dir = suite_dir();
  if (dir.empty()) {
    FAIL("JSON-Schema-Test-Suite not found at "
         << kDebianSuiteDir
         << " (nor $JSON_SCHEMA_TEST_SUITE): run "
            "scripts/deps to install json-schema-test-suite");
  }

  // draft-07 is what SchemaValidator implements. The draft-06 files test the same keywords
  // (draft-07 only added if/then/else and content*), so they are run through the same validator
  // for more cases per keyword.
  Counts total;
  for (const std::string draft : {"draft7", "draft6"}) {
    Counts counts;
    int files = 0;
    for (const auto& keyword : kKeywordFiles) {
      const fs::path path = dir / draft / (keyword + ".json");
      if (!fs::exists(path)) continue;  // older suites lack some files
      ++files;
      run_file(path, draft, counts);
    }
    INFO(draft << ": " << files << " files, " << counts.cases << " cases run, " << counts.remote
               << " need the remote-ref server, " << counts.limitations
               << " known valijson limitations");
    CHECK(files >= 30);
    if (draft == "draft7") CHECK(counts.cases >= 380);
    total.cases += counts.cases;
    total.remote += counts.remote;
    total.limitations += counts.limitations;
  }
  INFO(total.cases << " cases run, " << total.remote << " remote-ref cases refused, "
                   << total.limitations << " known limitations");
  CHECK(total.cases > 500);
}
