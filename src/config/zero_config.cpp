// Zero-config providers from *_API_KEY variables, *_BASE_URL moves, and the DETOUR_* environment
// overrides of [defaults] (docs/architecture.md, "Configuration").
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <stdexcept>

#include "config/internal.hpp"
#include "core/error.hpp"

namespace detour::config {

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    // getenv needs a NUL-terminated name; string_view does not promise one.
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

namespace detail {

const std::vector<KnownProvider>& known_providers() {
  // Base URLs follow the official SDKs: OpenAI-compatible ones carry the version path,
  // Anthropic and Gemini are bare hosts (the protocol code appends /v1/messages etc.).
  static const std::vector<KnownProvider> kKnown = {
      {"openai",
       "openai",
       "https://api.openai.com/v1",
       {"OPENAI_API_KEY"},
       "OPENAI_BASE_URL",
       {"gpt-", "o1", "o3", "o4", "chatgpt-"}},
      {"anthropic",
       "anthropic",
       "https://api.anthropic.com",
       {"ANTHROPIC_API_KEY"},
       "ANTHROPIC_BASE_URL",
       {"claude-"}},
      {"gemini",
       "gemini",
       "https://generativelanguage.googleapis.com",
       {"GEMINI_API_KEY", "GOOGLE_API_KEY"},
       "GEMINI_BASE_URL",
       {"gemini-"}},
      {"deepseek",
       "openai",
       "https://api.deepseek.com/v1",
       {"DEEPSEEK_API_KEY"},
       "DEEPSEEK_BASE_URL",
       {"deepseek-"}},
      // OpenRouter and Groq serve other vendors' models, so no prefix can claim them.
      {"openrouter",
       "openai",
       "https://openrouter.ai/api/v1",
       {"OPENROUTER_API_KEY"},
       "OPENROUTER_BASE_URL",
       {}},
      {"groq", "openai", "https://api.groq.com/openai/v1", {"GROQ_API_KEY"}, "GROQ_BASE_URL", {}},
      // Azure OpenAI: every resource has its own endpoint, so there is no built-in URL; the
      // variables are the ones the official SDKs read. A deployment is named by the user.
      {"azure", "azure", "", {"AZURE_OPENAI_API_KEY"}, "AZURE_OPENAI_ENDPOINT", {}},
      {"mistral",
       "openai",
       "https://api.mistral.ai/v1",
       {"MISTRAL_API_KEY"},
       "MISTRAL_BASE_URL",
       {"mistral-", "codestral-"}},
  };
  return kKnown;
}

const KnownProvider* find_known_provider(std::string_view name) {
  for (const auto& known : known_providers()) {
    if (known.name == name) return &known;
  }
  return nullptr;
}

std::optional<std::string> env_value(const EnvLookup& env, std::string_view name) {
  if (!env) return std::nullopt;
  auto value = env(name);
  if (!value || value->empty()) return std::nullopt;
  return value;
}

std::string known_key_env(const KnownProvider& known, const EnvLookup& env) {
  for (auto name : known.key_envs) {
    if (env_value(env, name)) return std::string(name);
  }
  return std::string(known.key_envs.front());
}

std::string missing_known_key_message(const KnownProvider& known) {
  std::string vars(known.key_envs.front());
  for (size_t i = 1; i < known.key_envs.size(); ++i) {
    vars += " (or " + std::string(known.key_envs[i]) + ")";
  }
  if (known.base_url.empty()) {
    return "environment variables " + vars + " and " + std::string(known.base_url_env) +
           " are not both set";
  }
  return "environment variable " + vars + " is not set";
}

std::optional<std::string> normalize_base_url(std::string_view url) {
  std::string lower;
  for (char c : url.substr(0, 8))
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t scheme = 0;
  if (lower.rfind("http://", 0) == 0) {
    scheme = 7;
  } else if (lower.rfind("https://", 0) == 0) {
    scheme = 8;
  } else {
    return std::nullopt;
  }
  for (char c : url) {
    // A space or control character is a paste accident, never part of a URL.
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
  }
  // Trailing slashes go so that appending "/chat/completions" gives one slash.
  while (url.size() > scheme && url.back() == '/')
    url.remove_suffix(1);
  if (url.size() == scheme) return std::nullopt;  // "https://" with no host
  return std::string(url);
}

void apply_zero_config(Config& config, const EnvLookup& env) {
  for (const auto& known : known_providers()) {
    // A provider the file defines is the user's own; the file wins over the environment.
    if (config.providers.count(std::string(known.name)) != 0) continue;
    std::optional<std::string> key_env;
    for (auto name : known.key_envs) {
      if (env_value(env, name)) {
        key_env = std::string(name);
        break;
      }
    }
    if (!key_env) continue;

    ProviderConfig provider;
    provider.name = known.name;
    provider.protocol = known.protocol;
    provider.base_url = known.base_url;
    provider.api_key_env = *key_env;
    provider.zero_config = true;
    if (auto moved = env_value(env, known.base_url_env)) {
      auto url = normalize_base_url(*moved);
      if (!url) {
        throw ConfigError(std::string(known.base_url_env) +
                          ": expected a URL starting with http:// or https://, got \"" + *moved +
                          "\"");
      }
      provider.base_url = *url;
    }
    if (provider.base_url.empty()) continue;  // azure without AZURE_OPENAI_ENDPOINT
    if (provider.protocol == "azure") provider.api_version = azure_api_version(env);
    config.providers.emplace(provider.name, std::move(provider));
  }
}

namespace {

Millis env_duration(std::string_view name, const std::string& text) {
  auto value = parse_duration(text);
  if (!value) throw ConfigError(std::string(name) + ": not a duration: \"" + text + "\"");
  // A zero timeout would fail every attempt before it starts.
  if (value->count() <= 0) {
    throw ConfigError(std::string(name) + ": must be longer than zero: \"" + text + "\"");
  }
  return *value;
}

// One [defaults] setting from its environment variable's text.
void set_default(Defaults& defaults, std::string_view key, std::string_view variable,
                 const std::string& text) {
  if (key == "model") {
    defaults.model = text;
  } else if (key == "state") {
    defaults.state = text;
  } else if (key == "timeout") {
    defaults.timeout = env_duration(variable, text);
  } else if (key == "deadline") {
    defaults.deadline = env_duration(variable, text);
  } else if (key == "retries") {
    int value = -1;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size() || value < 0 || value > kMaxRetries) {
      throw ConfigError(std::string(variable) + ": expected an integer from 0 to " +
                        std::to_string(kMaxRetries) + ", got \"" + text + "\"");
    }
    defaults.retries = value;
  } else {
    // A variable added to the option table for a key this function does not read yet.
    throw std::logic_error(std::string(variable) + ": no environment override for [defaults] " +
                           std::string(key));
  }
}

}  // namespace

void apply_env_overrides(Defaults& defaults, const EnvLookup& env) {
  for (const Setting& s : settings()) {
    if (s.env.empty() || s.key.empty()) continue;
    if (auto text = env_value(env, s.env)) set_default(defaults, s.key, s.env, *text);
  }
}

}  // namespace detail
}  // namespace detour::config
