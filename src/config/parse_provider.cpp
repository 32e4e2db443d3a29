// [providers.NAME]: where a provider is, how detour proves who it is, and what else its requests
// carry (README, "Providers"). Values that would be secrets never appear in an error: the file
// names environment variables and commands, not keys.
#include <cctype>

#include "config/catalog.hpp"
#include "config/internal.hpp"
#include "config/key_command.hpp"
#include "config/parser.hpp"

namespace detour::config::detail {

namespace {

constexpr std::string_view kProviderKeys[] = {
    "protocol", "base_url",    "api_key_env", "api_key_cmd", "api_key_ttl",
    "headers",  "headers_env", "query",       "api_version", "ca_bundle",
    "catalog",  "rpm",         "tpm",         "burst",       "concurrency"};
constexpr std::string_view kProtocols[] = {"openai", "anthropic", "gemini", "azure"};

bool is_env_name(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// RFC 9110 token characters: what a header name may be made of.
bool is_header_name(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

bool has_line_break(std::string_view text) {
  return text.find_first_of("\r\n") != std::string_view::npos;
}

}  // namespace

std::span<const std::string_view> provider_keys() {
  return kProviderKeys;
}

ProviderConfig Parser::parse_provider(const toml::key& name, const toml::node& node) const {
  const std::string path = join_path("providers", name.str());
  check_name(name, path, "provider");
  const auto& table = get_table(node, path);
  check_keys(table, path, kProviderKeys);

  ProviderConfig provider;
  provider.name = name.str();
  const auto* known = find_known_provider(provider.name);

  if (auto n = table.get("protocol")) {
    provider.protocol = get_choice(*n, path + ".protocol", kProtocols);
  } else if (known) {
    provider.protocol = known->protocol;
  } else {
    fail(table.source(), path, "missing key 'protocol' (one of " + join(kProtocols, ", ") + ")");
  }
  // The built-in URL and key variable of a well-known name only fit its own protocol.
  if (known && provider.protocol != known->protocol) known = nullptr;

  if (auto n = table.get("base_url")) {
    auto url = normalize_base_url(get_string(*n, path + ".base_url"));
    if (!url) wrong_type(*n, path + ".base_url", "a URL starting with http:// or https://");
    provider.base_url = *url;
  } else if (known) {
    // Only the built-in default moves with OPENAI_BASE_URL and the like: a base_url written
    // in the file is deliberate and beats a variable that may be set for other tools.
    provider.base_url = known->base_url;
    if (auto moved = env_value(env_, known->base_url_env)) {
      auto url = normalize_base_url(*moved);
      if (!url) {
        throw ConfigError(std::string(known->base_url_env) +
                          ": expected a URL starting with http:// or https://, got \"" + *moved +
                          "\"");
      }
      provider.base_url = *url;
    }
    if (provider.base_url.empty()) {  // azure: the endpoint is the user's own resource
      fail(table.source(), path,
           "missing key 'base_url' (your resource's endpoint, e.g. "
           "\"https://NAME.openai.azure.com\"; or set " +
               std::string(known->base_url_env) + ")");
    }
  } else {
    fail(table.source(), path,
         provider.protocol == "azure"
             ? "missing key 'base_url' (your resource's endpoint, e.g. "
               "\"https://NAME.openai.azure.com\")"
             : "missing key 'base_url' (e.g. \"http://localhost:11434/v1\")");
  }

  parse_key(table, path, provider);
  if (!table.get("api_key_env") && provider.api_key_cmd.empty() && known) {
    provider.api_key_env = known_key_env(*known, env_);
  }

  if (auto n = table.get("api_version")) {
    if (provider.protocol != "azure") {
      fail(n->source(), path + ".api_version", "only protocol = \"azure\" takes an api_version");
    }
    provider.api_version = get_string(*n, path + ".api_version");
    if (provider.api_version.empty() || has_line_break(provider.api_version)) {
      wrong_type(*n, path + ".api_version", "an API version like \"2024-10-21\"");
    }
  } else if (provider.protocol == "azure") {
    provider.api_version = azure_api_version(env_);
  }

  if (auto n = table.get("headers"))
    provider.headers = parse_name_values(*n, path + ".headers", "");
  if (auto n = table.get("headers_env")) {
    provider.headers_env = parse_name_values(*n, path + ".headers_env", "env");
  }
  if (auto n = table.get("query")) provider.query = parse_name_values(*n, path + ".query", "query");
  parse_network(table, path, provider);

  parse_limits(table, path, provider.rpm, provider.tpm, provider.burst, provider.concurrency);
  return provider;
}

void Parser::parse_key(const toml::table& table, const std::string& path,
                       ProviderConfig& provider) const {
  if (auto n = table.get("api_key_env")) {
    provider.api_key_env = get_string(*n, path + ".api_key_env");
    // Never echo the value: the usual mistake here is pasting the key itself.
    if (!is_env_name(provider.api_key_env)) {
      fail(n->source(), path + ".api_key_env",
           "expected the name of an environment variable (letters, digits, _), not the key "
           "itself");
    }
  }
  if (auto n = table.get("api_key_cmd")) {
    if (table.get("api_key_env")) {
      fail(n->source(), path + ".api_key_cmd",
           "give api_key_env or api_key_cmd, not both: which key would be meant?");
    }
    provider.api_key_cmd = get_string(*n, path + ".api_key_cmd");
    try {
      (void)split_command(provider.api_key_cmd);
    } catch (const ConfigError& e) {
      fail(n->source(), path + ".api_key_cmd", e.what());
    }
  }
  if (auto n = table.get("api_key_ttl")) {
    if (provider.api_key_cmd.empty()) {
      fail(n->source(), path + ".api_key_ttl",
           "only applies with api_key_cmd (how long its output stays good)");
    }
    provider.api_key_ttl = get_duration(*n, path + ".api_key_ttl");
  }
}

// A table of names to strings: headers ("" — the values are literal), headers_env ("env" —
// the values name environment variables) or query parameters ("query").
NameValues Parser::parse_name_values(const toml::node& node, const std::string& path,
                                     std::string_view what) const {
  const auto& table = get_table(node, path);
  NameValues out;
  for (auto&& [key, value] : table) {
    const std::string item_path = join_path(path, key.str());
    const std::string name(key.str());
    if (what != "query" && !is_header_name(name)) {
      fail(key.source(), item_path, "not a valid HTTP header name");
    }
    if (what == "query" && (name.empty() || has_line_break(name))) {
      fail(key.source(), item_path, "not a valid query parameter name");
    }
    std::string text = get_string(value, item_path);
    if (what == "env") {
      if (!is_env_name(text)) {
        fail(value.source(), item_path,
             "expected the name of an environment variable (letters, digits, _), not the value "
             "itself");
      }
    } else if (has_line_break(text)) {
      fail(value.source(), item_path, "a value cannot contain a line break");
    }
    out.emplace_back(name, std::move(text));
  }
  return out;
}

void Parser::parse_network(const toml::table& table, const std::string& path,
                           ProviderConfig& provider) const {
  if (auto n = table.get("ca_bundle")) {
    provider.ca_bundle = get_string(*n, path + ".ca_bundle");
    if (provider.ca_bundle.empty()) wrong_type(*n, path + ".ca_bundle", "the path of a PEM file");
    // Relative to the file it is written in, as a reader of that file would expect.
    if (provider.ca_bundle.front() != '/' && source_.find('/') != std::string::npos) {
      provider.ca_bundle = source_.substr(0, source_.rfind('/') + 1) + provider.ca_bundle;
    }
  }
  if (auto n = table.get("catalog")) {
    provider.catalog = get_choice(*n, path + ".catalog", catalog_providers());
  }
}

}  // namespace detour::config::detail
