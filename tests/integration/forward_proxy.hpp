#pragma once
// For the provider tests: a tiny HTTP forward proxy on 127.0.0.1, as corporate networks put in
// front of the internet (RFC 9112 section 3.2.2, absolute-form; RFC 9110 section 9.3.6, CONNECT).
//
//   POST http://127.0.0.1:PORT/v1/chat/completions HTTP/1.1  -> forwarded in origin-form with
//                                                               `Connection: close`, the reply
//                                                               relayed back (also closed)
//   CONNECT 127.0.0.1:PORT HTTP/1.1                          -> 200, then bytes both ways (TLS)
//
// Every request line is recorded. send_everything_to(PORT) sends absolute-form requests to
// 127.0.0.1:PORT whatever host they name. Used by test_network.cpp, test_provider_headers.cpp
// and test_model_catalog_e2e.cpp. Plain sockets and one thread per connection; everything
// stops on destruction.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace detour::testing::network {

class ForwardProxy {
 public:
  ForwardProxy() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error("proxy: socket failed");
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("proxy: cannot listen on 127.0.0.1");
    }
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~ForwardProxy() {
    stop_ = true;
    accept_thread_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (auto& t : threads)
      t.join();
    ::close(listen_fd_);
  }

  ForwardProxy(const ForwardProxy&) = delete;
  ForwardProxy& operator=(const ForwardProxy&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Sends every absolute-form request to 127.0.0.1:`port` whatever host it names, as a proxy
  // that resolves names its own way would: a provider whose base_url is
  // http://api.openai.com/v1 can then be tested against detour-mock without leaving the machine
  // (with a proxy, curl leaves the name to the proxy). The request line is still recorded
  // as sent, and the Host header is passed on unchanged.
  void send_everything_to(int port) { override_port_ = port; }

  // The request lines received, in order ("POST http://... HTTP/1.1", "CONNECT host:port ...").
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  static constexpr int kPollMs = 20;

  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, kPollMs) <= 0) continue;
      const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      std::lock_guard lock(mutex_);
      threads_.emplace_back([this, client] {
        serve(client);
        ::close(client);
      });
    }
  }

  // Reads until the end of the request head; what came after it stays in `rest`.
  bool read_head(int fd, std::string& head, std::string& rest) {
    std::string buffer;
    char chunk[4096];
    while (!stop_ && buffer.size() < 65536) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, kPollMs) <= 0) continue;
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<std::size_t>(n));
      const std::size_t end = buffer.find("\r\n\r\n");
      if (end != std::string::npos) {
        head = buffer.substr(0, end + 4);
        rest = buffer.substr(end + 4);
        return true;
      }
    }
    return false;
  }

  static int connect_to(const std::string& host, const std::string& port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return -1;
    int fd = -1;
    for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
      fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        ::close(fd);
        fd = -1;
      }
    }
    ::freeaddrinfo(found);
    return fd;
  }

  static bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Bytes both ways until either side closes.
  void relay(int a, int b) {
    char chunk[16384];
    while (!stop_) {
      pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
      if (::poll(p, 2, kPollMs) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = ::recv(p[i].fd, chunk, sizeof chunk, 0);
        if (n <= 0 || !send_all(p[1 - i].fd, std::string_view(chunk, static_cast<std::size_t>(n))))
          return;
      }
    }
  }

  // host:port of "host:port" or "[v6]:port", port defaulting to `fallback`.
  static void split_authority(const std::string& authority, std::string& host, std::string& port,
                              const char* fallback) {
    const std::size_t colon = authority.rfind(':');
    if (colon == std::string::npos || authority.find(']', colon) != std::string::npos) {
      host = authority;
      port = fallback;
    } else {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  }

  // `first_line` and the header lines of `head` (a whole head, CRLF CRLF at its end) but
  // those that belong to one connection, with `Connection: close` added: one exchange per
  // connection on both sides.
  static std::string without_hop_by_hop(const std::string& first_line, const std::string& head) {
    std::string out = first_line + "\r\n";
    std::size_t at = head.find("\r\n") + 2;
    while (at + 2 < head.size()) {
      const std::size_t end = head.find("\r\n", at);
      const std::string header = head.substr(at, end - at);
      at = end + 2;
      std::string name = header.substr(0, header.find(':'));
      for (char& c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name == "proxy-connection" || name == "connection" || name == "keep-alive") continue;
      out += header + "\r\n";
    }
    return out + "Connection: close\r\n\r\n";
  }

  void serve(int client) {
    std::string head, rest;
    if (!read_head(client, head, rest)) return;
    const std::string line = head.substr(0, head.find("\r\n"));
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(line);
    }
    const std::size_t sp1 = line.find(' ');
    const std::size_t sp2 = line.rfind(' ');
    if (sp1 == std::string::npos || sp2 <= sp1) return;
    const std::string method = line.substr(0, sp1);
    const std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string host, port;

    if (method == "CONNECT") {
      split_authority(target, host, port, "443");
      const int upstream = connect_to(host, port);
      if (upstream < 0) {
        send_all(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      send_all(client, "HTTP/1.1 200 Connection established\r\n\r\n");
      if (rest.empty() || send_all(upstream, rest)) relay(client, upstream);
      ::close(upstream);
      return;
    }

    // Absolute-form only: a proxy is asked for a whole URL.
    const std::string scheme = "http://";
    if (target.compare(0, scheme.size(), scheme) != 0) {
      send_all(client, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const std::size_t path_at = target.find('/', scheme.size());
    const std::string authority = target.substr(
        scheme.size(), path_at == std::string::npos ? std::string::npos : path_at - scheme.size());
    const std::string path = path_at == std::string::npos ? "/" : target.substr(path_at);
    split_authority(authority, host, port, "80");
    if (override_port_ > 0) {
      host = "127.0.0.1";
      port = std::to_string(override_port_.load());
    }
    const int upstream = connect_to(host, port);
    if (upstream < 0) {
      send_all(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    // The head again in origin-form, without hop-by-hop headers; one request per connection.
    std::string out = without_hop_by_hop(method + " " + path + line.substr(sp2), head) + rest;
    if (send_all(upstream, out)) relay_response(upstream, client);
    ::close(upstream);
  }

  // The reply, with `Connection: close` added to its head, then the rest as it comes (the
  // request body still flows upstream meanwhile).
  void relay_response(int upstream, int client) {
    // The request body may still be on its way: forward it while waiting for the reply head.
    std::string buffer;
    char chunk[16384];
    while (!stop_) {
      pollfd p[2] = {{upstream, POLLIN, 0}, {client, POLLIN, 0}};
      if (::poll(p, 2, kPollMs) <= 0) continue;
      if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = ::recv(client, chunk, sizeof chunk, 0);
        if (n <= 0) return;
        if (!send_all(upstream, std::string_view(chunk, static_cast<std::size_t>(n)))) return;
      }
      if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = ::recv(upstream, chunk, sizeof chunk, 0);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<std::size_t>(n));
        const std::size_t end = buffer.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        const std::string status = buffer.substr(0, buffer.find("\r\n"));
        const std::string reply =
            without_hop_by_hop(status, buffer.substr(0, end + 4)) + buffer.substr(end + 4);
        if (!send_all(client, reply)) return;
        break;
      }
    }
    relay(upstream, client);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> override_port_{0};
  std::thread accept_thread_;
  std::mutex mutex_;
  std::vector<std::thread> threads_;
  std::vector<std::string> requests_;
};

}  // namespace detour::testing::network
