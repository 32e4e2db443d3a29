// From an input line to its call (batch/plan.hpp): the line's fields over the flags, its model
// resolved once per name, and the lines that cannot be sent named as bad input.
#include <catch2/catch.hpp>

#include "batch/plan.hpp"
#include "config_test_support.hpp"
#include "core/error.hpp"

using namespace detour;

namespace {

const char* kToml = R"(
[providers.p]
protocol = "openai"
base_url = "http://127.0.0.1:1/v1"

[routes.fast]
targets = ["p/a", "p/b"]
)";

batch::LineRequest line(std::uint64_t n, std::string prompt) {
  batch::LineRequest l;
  l.line_no = n;
  l.id = "id" + std::to_string(n);
  l.request.messages.push_back({"user", std::move(prompt)});
  return l;
}

}  // namespace

TEST_CASE("LinePlanner: the line's fields win over the flags'", "[batch]") {
  const config::Config config = config::testing::parse(kToml);
  int resolved = 0;
  auto resolve = [&](const std::vector<std::string>& names) {
    ++resolved;
    return config::resolve_chain(config, names, config::testing::lookup({}));
  };
  engine::CallSpec base;
  base.request.system = "flag system";
  base.request.max_tokens = 100;
  base.request.temperature = 0.5;
  base.request.extra = {{"seed", 1}, {"top_p", 0.9}};
  base.retries = 4;
  batch::LinePlanner planner(base, {"fast"}, resolve);

  auto plain = line(1, "hello");
  auto planned = std::get<batch::PlannedCall>(planner.plan(plain));
  CHECK(planned.spec.request.system == "flag system");
  CHECK(planned.spec.request.max_tokens == 100);
  CHECK(planned.spec.request.messages.at(0).content == "hello");
  CHECK(planned.spec.chain.route == "fast");
  CHECK(planned.spec.chain.targets.size() == 2);
  CHECK(planned.spec.retries == 4);

  auto own = line(2, "x");
  own.request.system = "line system";
  own.request.max_tokens = 7;
  own.request.extra = {{"seed", 2}};
  own.model = "p/b";
  auto mine = std::get<batch::PlannedCall>(planner.plan(own));
  CHECK(mine.spec.request.system == "line system");
  CHECK(mine.spec.request.max_tokens == 7);
  CHECK(mine.spec.request.temperature == 0.5);
  CHECK(mine.spec.request.extra == nlohmann::json{{"seed", 2}, {"top_p", 0.9}});
  REQUIRE(mine.spec.chain.targets.size() == 1);
  CHECK(mine.spec.chain.targets[0].target.name() == "p/b");

  // Each distinct name is resolved once, however many lines name it.
  for (int i = 3; i < 50; ++i) {
    auto again = line(static_cast<std::uint64_t>(i), "y");
    again.model = i % 2 ? std::optional<std::string>("p/b") : std::nullopt;
    CHECK(std::holds_alternative<batch::PlannedCall>(planner.plan(again)));
  }
  CHECK(resolved == 2);
}

TEST_CASE("LinePlanner: lines that cannot be sent say why, naming the line", "[batch]") {
  const config::Config config = config::testing::parse(kToml);
  auto resolve = [&](const std::vector<std::string>& names) {
    return config::resolve_chain(config, names, config::testing::lookup({}));
  };
  SECTION("an unknown model") {
    batch::LinePlanner planner(engine::CallSpec{}, {"fast"}, resolve);
    auto l = line(7, "x");
    l.model = "nowhere/m";
    auto why = std::get<std::string>(planner.plan(l));
    CHECK(why.rfind("line 7: model \"nowhere/m\": ", 0) == 0);
  }
  SECTION("no model anywhere") {
    batch::LinePlanner planner(engine::CallSpec{}, {}, resolve);  // no -m, no [defaults] model
    auto l = line(3, "x");
    auto why = std::get<std::string>(planner.plan(l));
    CHECK(why.rfind("line 3: no model", 0) == 0);
  }
  SECTION("a schema that is not a JSON Schema") {
    batch::LinePlanner planner(engine::CallSpec{}, {"fast"}, resolve);
    auto l = line(4, "x");
    l.request.schema = nlohmann::json::array({1, 2});
    auto why = std::get<std::string>(planner.plan(l));
    CHECK(why.find("line 4: ") != std::string::npos);
    CHECK(why.find("schema") != std::string::npos);
  }
  SECTION("a line's own schema is checked with its own validator") {
    batch::LinePlanner planner(engine::CallSpec{}, {"fast"}, resolve);
    auto l = line(5, "x");
    l.request.schema = nlohmann::json{{"type", "object"}};
    auto planned = std::get<batch::PlannedCall>(planner.plan(l));
    REQUIRE(planned.schema != nullptr);
    CHECK(planned.spec.validation.schema == planned.schema.get());
    CHECK(planned.spec.request.schema == nlohmann::json{{"type", "object"}});
  }
}
