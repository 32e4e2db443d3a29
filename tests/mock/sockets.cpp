#include "sockets.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <functional>

namespace detour::mock {

namespace {

struct Endpoint {
  std::string host;
  int port = 0;
};

bool endpoint(const sockaddr_storage& addr, Endpoint& out) {
  char host[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    out = {host, ntohs(a->sin_port)};
    return true;
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    out = {host, ntohs(a->sin6_port)};
    return true;
  }
  return false;
}

// Calls fn(fd) for each open descriptor above stderr until it returns true.
void for_each_fd(const std::function<bool(int)>& fn) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  int self = dirfd(dir);
  while (dirent* entry = readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    if (fd <= 2 || fd == self) continue;
    if (fn(fd)) break;
  }
  closedir(dir);
}

bool local_endpoint(int fd, Endpoint& out) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  return getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && endpoint(addr, out);
}

bool peer_endpoint(int fd, Endpoint& out) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  return getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && endpoint(addr, out);
}

}  // namespace

int connection_fd(const std::string& remote_addr, int remote_port, int local_port) {
  int found = -1;
  for_each_fd([&](int fd) {
    Endpoint peer, local;
    if (!peer_endpoint(fd, peer) || !local_endpoint(fd, local)) return false;
    if (peer.port != remote_port || local.port != local_port || peer.host != remote_addr)
      return false;
    found = fd;
    return true;
  });
  return found;
}

void arm_reset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

void raise_backlog(int port) {
  for_each_fd([&](int fd) {
    int accepting = 0;
    socklen_t len = sizeof accepting;
    Endpoint local;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting)
      return false;
    if (!local_endpoint(fd, local) || local.port != port) return false;
    ::listen(fd, 1024);  // Linux applies a new backlog to an already listening socket
    return true;
  });
}

void shutdown_connections() {
  for_each_fd([](int fd) {
    Endpoint peer;
    if (peer_endpoint(fd, peer)) shutdown(fd, SHUT_RDWR);
    return false;
  });
}

}  // namespace detour::mock
