#pragma once
// Shared between the config translation units; not part of the public interface.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace detour::config::detail {

using config::kMaxRetries;  // config/settings.hpp

// A provider detour knows without a file (README, "Configuration": zero-config).
struct KnownProvider {
  std::string_view name;
  std::string_view protocol;
  std::string_view base_url;
  // Key variables in order of preference; the first that is set wins (Gemini has two).
  std::vector<std::string_view> key_envs;
  std::string_view base_url_env;  // moves the zero-config provider elsewhere, as the SDKs do
  // Bare model names with one of these prefixes belong to this provider ("gpt-4o" → openai).
  std::vector<std::string_view> model_prefixes;
};

const std::vector<KnownProvider>& known_providers();
const KnownProvider* find_known_provider(std::string_view name);

// The value of an environment variable, or nullopt when it is unset or empty: an empty
// variable is how shells unset things for one command (OPENAI_API_KEY= detour ...).
std::optional<std::string> env_value(const EnvLookup& env, std::string_view name);

// The key variable of a known provider to use: the first one set, else the first listed.
std::string known_key_env(const KnownProvider& known, const EnvLookup& env);

// "environment variable OPENAI_API_KEY is not set" (Gemini: "GEMINI_API_KEY (or
// GOOGLE_API_KEY)") for a known provider that is missing because its key is unset.
std::string missing_known_key_message(const KnownProvider& known);

// Adds zero-config providers for every key variable that is set and whose provider name the
// file did not define.
void apply_zero_config(Config& config, const EnvLookup& env);

// The environment variables of the option table's [defaults] settings (config/settings.hpp):
// DETOUR_MODEL, DETOUR_TIMEOUT, DETOUR_DEADLINE, DETOUR_RETRIES, DETOUR_STATE.
void apply_env_overrides(Defaults& defaults, const EnvLookup& env);

// OPENAI_API_VERSION, else the latest generally available Azure OpenAI API version detour was
// tested with (README, "Providers").
inline constexpr std::string_view kDefaultAzureApiVersion = "2024-10-21";
std::string azure_api_version(const EnvLookup& env);

// Fills a resolved target's headers, query, CA settings and key source from its provider
// (resolve_extras.cpp). Throws ConfigError naming the provider and the missing variable or file.
void resolve_extras(const ProviderConfig& provider, const EnvLookup& env, ResolvedTarget& out);

// The keys a [providers.NAME] table accepts (parse_provider.cpp).
std::span<const std::string_view> provider_keys();

// Every key the config file accepts, as "section.key" ("defaults.retries",
// "providers.NAME.base_url", ...), for the test that holds the man page to them.
std::vector<std::string> config_file_keys();

// Checks that url is http(s) and strips trailing slashes; nullopt when it is not a URL.
std::optional<std::string> normalize_base_url(std::string_view url);

}  // namespace detour::config::detail
