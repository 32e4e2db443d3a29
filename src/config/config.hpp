#pragma once
// Configuration (docs/architecture.md, "Configuration"): TOML file, zero-config from *_API_KEY
// variables, DETOUR_* environment overrides, and resolution of -m names into target chains.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/settings.hpp"
#include "core/duration.hpp"

namespace detour::config {

// Looks up an environment variable; tests pass a map instead of the process environment.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
EnvLookup process_env();

// A header, query parameter or the like: name and value, in the order written.
using NameValues = std::vector<std::pair<std::string, std::string>>;

struct ProviderConfig {
  std::string name;
  std::string protocol;     // "openai" | "anthropic" | "gemini" | "azure"
  std::string base_url;     // without trailing slash
  std::string api_key_env;  // empty: the provider needs no key (local servers)
  std::optional<int64_t> rpm, tpm, burst, concurrency;
  bool zero_config = false;  // made from an *_API_KEY variable, not from the file
  // A command whose first line of output is the key (a short-lived token, a password store),
  // run without a shell when the provider is first used; wins over api_key_env.
  std::string api_key_cmd;
  std::optional<Millis> api_key_ttl;  // run it again after this long; none: once per process
  NameValues headers;                 // sent as written
  NameValues headers_env;             // header name -> environment variable: secret values
  NameValues query;                   // added to every request URL
  std::string api_version;            // azure: the api-version query parameter
  std::string ca_bundle;              // PEM file of the CAs to trust; empty: the system's
  std::string catalog;  // the built-in catalog's provider for its models; empty: by name/URL
};

struct ModelConfig {
  std::optional<int64_t> context_window;
  std::optional<int64_t> max_output_tokens;
  std::optional<double> input_cost;         // USD per million tokens
  std::optional<double> output_cost;        // USD per million tokens
  std::optional<double> cached_input_cost;  // USD per million tokens read from a prompt cache
  std::optional<int> tier;
  // The model's own limits, on top of its provider's (docs/architecture.md, "The limiter"); learned
  // when absent.
  std::optional<int64_t> rpm, tpm, burst, concurrency;
};

struct RouteConfig {
  std::string name;
  std::string strategy = "fallback";  // fallback | fastest | cheapest | weighted | round-robin
  std::vector<std::string> targets;   // "provider/model"
  std::vector<double> weights;        // for weighted; empty: equal
  std::optional<int> min_tier;
  bool next_on_content_filter = false;  // on_content_filter = "next": move on instead of stopping
};

// [breaker]: the per-target circuit breaker (docs/architecture.md, "Circuit breakers").
struct BreakerSettings {
  int consecutive_failures = 3;
  double failure_rate = 0.5;
  int min_calls = 10;
  Millis window{60'000};
  Millis cooldown{30'000};
  Millis max_cooldown{600'000};
  Millis long_cooldown{3'600'000};  // quota_exhausted and auth
};

struct Defaults {
  std::string model;  // route, provider/model or bare model used when -m is absent
  Millis timeout{kDefaultTimeout};
  Millis deadline{kDefaultDeadline};
  int retries = kDefaultRetries;
  std::optional<int64_t> max_tokens;
  std::optional<double> temperature;
  std::string state;  // state URL; empty: the built-in default
};

struct Config {
  std::string path;  // the file it came from; empty for zero-config
  Defaults defaults;
  std::map<std::string, ProviderConfig> providers;
  std::map<std::string, ModelConfig> models;  // key "provider/model"
  std::map<std::string, RouteConfig> routes;
  BreakerSettings breaker;
};

// Parses TOML text. Errors throw ConfigError naming source:line:column and the key.
// Zero-config providers are added for every *_API_KEY variable set whose provider name the
// file does not define; then DETOUR_MODEL, DETOUR_TIMEOUT, DETOUR_DEADLINE, DETOUR_RETRIES
// and DETOUR_STATE override [defaults].
Config parse_config(std::string_view toml_text, std::string_view source_name, const EnvLookup& env);

// Finds the file (explicit path, else $DETOUR_CONFIG, else $XDG_CONFIG_HOME/detour/config.toml
// or ~/.config/detour/config.toml if it exists) and parses it; with no file at all, zero-config.
// An explicit or $DETOUR_CONFIG path that cannot be read is a ConfigError.
Config load_config(const std::optional<std::string>& explicit_path, const EnvLookup& env);

struct Target {
  std::string provider;  // text before the first '/'
  std::string model;     // everything after it
  std::string name() const { return provider + "/" + model; }
};

// Splits "provider/model"; nullopt when there is no '/' or either side is empty.
std::optional<Target> split_target(std::string_view text);

class KeyCommand;

struct ResolvedTarget {
  Target target;
  const ProviderConfig* provider = nullptr;  // points into the Config
  // [models."provider/model"], with what it leaves out filled from the built-in catalog.
  ModelConfig model;
  std::string api_key;  // from provider->api_key_env; empty if none needed or from a command
  std::shared_ptr<KeyCommand> key_command;  // api_key_cmd: the key is had when first needed
  NameValues headers;                       // extra headers: literal, from the environment
  std::vector<std::string> secrets;         // header values that came from the environment
  NameValues query;                         // extra query parameters
  std::string ca_bundle;                    // ca_bundle, else $SSL_CERT_FILE; empty: the system's
  std::string ca_path;                      // $SSL_CERT_DIR when no ca_bundle
  double weight = 1.0;                      // the route's weight for it (`weighted`)
};

struct Chain {
  std::optional<std::string> route;  // set when a single -m named a route
  std::string strategy = "fallback";
  std::optional<int> min_tier;
  bool next_on_content_filter = false;
  std::vector<ResolvedTarget> targets;
};

// Every target the config names, in a route or under [models], once each ("provider/model").
std::vector<std::string> known_targets(const Config& config);

// One target with its provider, model settings and API key. Throws ConfigError naming the
// provider when it is unknown or its API key variable is not set (never the key).
ResolvedTarget resolve_target(const Config& config, const Target& target, const EnvLookup& env);

// Resolves -m names (each a route, provider/model, or bare model; "a,b" lists allowed) into
// an ordered chain with duplicates removed. Empty names: [defaults] model. Unknown names,
// unknown providers and unset API key variables throw ConfigError naming them.
Chain resolve_chain(const Config& config, const std::vector<std::string>& names,
                    const EnvLookup& env);

}  // namespace detour::config
