// Finding and reading the config file (docs/architecture.md, "Configuration").
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "config/config.hpp"
#include "config/internal.hpp"
#include "core/error.hpp"

namespace detour::config {

namespace {

// Caps the config file: it is hand-written, and "-c /dev/zero" must not eat the memory.
constexpr off_t kMaxConfigBytes = 16 << 20;

// Reads a whole file; errors name the path and the system's reason.
std::string read_file(const std::string& path, std::string_view origin) {
  auto failure = [&](const std::string& why) {
    return ConfigError("cannot read config file " + path + std::string(origin) + ": " + why);
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw failure(std::strerror(errno));
  std::string data;
  char buffer[65536];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;  // close() may clobber it
      ::close(fd);
      throw failure(std::strerror(error));
    }
    if (n == 0) break;
    data.append(buffer, static_cast<size_t>(n));
    if (static_cast<off_t>(data.size()) > kMaxConfigBytes) {
      ::close(fd);
      throw failure("larger than " + std::to_string(kMaxConfigBytes >> 20) + " MiB");
    }
  }
  ::close(fd);
  return data;
}

}  // namespace

Config load_config(const std::optional<std::string>& explicit_path, const EnvLookup& env) {
  // An explicitly named file must exist: silently running zero-config instead of the file
  // the user pointed at would send requests somewhere they did not intend.
  if (explicit_path && !explicit_path->empty()) {
    return parse_config(read_file(*explicit_path, ""), *explicit_path, env);
  }
  const std::string_view variable = setting(Scope::global, "config").env;
  if (auto path = detail::env_value(env, variable)) {
    return parse_config(read_file(*path, " (from " + std::string(variable) + ")"), *path, env);
  }

  // The XDG base directory spec: $XDG_CONFIG_HOME when set to an absolute path, else
  // ~/.config. The default file is optional; when it is absent, zero-config.
  std::string dir;
  if (auto xdg = detail::env_value(env, "XDG_CONFIG_HOME"); xdg && xdg->front() == '/') {
    dir = *xdg;
  } else if (auto home = detail::env_value(env, "HOME")) {
    dir = *home + "/.config";
  }
  if (!dir.empty()) {
    std::string path = dir + "/detour/config.toml";
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0) return parse_config(read_file(path, ""), path, env);
  }

  Config config;
  detail::apply_zero_config(config, env);
  detail::apply_env_overrides(config.defaults, env);
  return config;
}

}  // namespace detour::config
