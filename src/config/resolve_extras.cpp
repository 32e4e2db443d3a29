// What a resolved target carries beyond its URL and key: extra headers and query parameters,
// the CAs to trust and where its key comes from (README, "Providers").
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>

#include <cerrno>
#include <cstring>
#include "core/text.hpp"

#include "config/internal.hpp"
#include "config/key_command.hpp"

namespace detour::config::detail {

namespace {

bool has_header(const NameValues& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (equals_ignoring_case(n, name)) return true;
  }
  return false;
}

bool points_at_openai(const ProviderConfig& provider) {
  if (provider.protocol != "openai") return false;
  if (provider.name == "openai") return true;
  const std::string_view url = provider.base_url;
  const std::size_t scheme = url.find("://");
  const std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  return equals_ignoring_case(rest.substr(0, rest.find_first_of(":/")), "api.openai.com");
}

// A secret header value, and its last word when it has a scheme ("Bearer TOKEN"): a provider's
// error may quote the token alone.
void add_secret(std::vector<std::string>& secrets, const std::string& value) {
  secrets.push_back(value);
  const std::size_t space = value.find_last_of(' ');
  if (space != std::string::npos && value.size() - space - 1 >= 4) {
    secrets.push_back(value.substr(space + 1));
  }
}

// A CA bundle is one PEM file; curl would otherwise fail every request to the provider with
// a TLS error that does not say which setting is wrong.
void check_ca_file(const std::string& path, const std::string& what) {
  if (::access(path.c_str(), R_OK) != 0) {
    const int err = errno;
    throw ConfigError(what + " " + path + ": cannot read it: " + std::strerror(err));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw ConfigError(what + " " + path +
                      ": is a directory, not a PEM file (a directory of hashed certificates "
                      "goes in SSL_CERT_DIR)");
  }
}

}  // namespace

std::string azure_api_version(const EnvLookup& env) {
  if (auto version = env_value(env, "OPENAI_API_VERSION")) return *version;
  return std::string(kDefaultAzureApiVersion);
}

void resolve_extras(const ProviderConfig& provider, const EnvLookup& env, ResolvedTarget& out) {
  out.headers = provider.headers;
  // A credential written into the file is still a credential: never shown either.
  for (const auto& [name, value] : provider.headers) {
    if (names_a_credential(name)) add_secret(out.secrets, value);
  }
  for (const auto& [name, variable] : provider.headers_env) {
    auto value = env_value(env, variable);
    // Names the variable and the header, never a value.
    if (!value) {
      throw ConfigError("provider " + provider.name + ": environment variable " + variable +
                        " is not set (needed for header " + name + ")");
    }
    // A value read from a file with its newline, or an attempt to inject a header: refused
    // here, as the same value written into the file would be.
    if (value->find_first_of("\r\n") != std::string::npos) {
      throw ConfigError("provider " + provider.name + ": environment variable " + variable +
                        " (for header " + name + ") contains a line break");
    }
    out.headers.emplace_back(name, *value);
    add_secret(out.secrets, *value);
  }
  // The official SDKs send these from the environment when set; so does detour, for OpenAI
  // itself, unless the file names the header already.
  if (points_at_openai(provider)) {
    for (auto [variable, header] :
         {std::pair<std::string_view, std::string_view>{"OPENAI_ORG_ID", "OpenAI-Organization"},
          {"OPENAI_PROJECT_ID", "OpenAI-Project"}}) {
      auto value = env_value(env, variable);
      if (!value || has_header(out.headers, header)) continue;
      out.headers.emplace_back(std::string(header), *value);
      add_secret(out.secrets, *value);
    }
  }
  out.query = provider.query;

  if (!provider.ca_bundle.empty()) {
    check_ca_file(provider.ca_bundle, "provider " + provider.name + ": ca_bundle");
    out.ca_bundle = provider.ca_bundle;
  } else if (auto file = env_value(env, "SSL_CERT_FILE")) {
    check_ca_file(*file, "SSL_CERT_FILE");
    out.ca_bundle = *file;
  } else if (auto dir = env_value(env, "SSL_CERT_DIR")) {
    out.ca_path = *dir;
  }

  if (!provider.api_key_cmd.empty()) {
    out.key_command = key_command_for(provider.name, provider.api_key_cmd, provider.api_key_ttl);
  }
}

}  // namespace detour::config::detail
