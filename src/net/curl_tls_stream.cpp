// The TLS stream of net/tls_stream.hpp on libcurl: curl_easy_perform with CURLOPT_CONNECT_ONLY
// connects and does the handshake, then curl_easy_send and curl_easy_recv move the bytes, with
// poll() on curl's socket while it has nothing to give or take (CURLE_AGAIN).
#include "net/tls_stream.hpp"

#include <curl/curl.h>
#include <poll.h>

#include <cerrno>
#include <chrono>

#include "net/curl_util.hpp"

namespace detour::net {

namespace {

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};

using Certificate = StreamError::Certificate;

// The TLS alerts of a server that refused our certificate or wanted one. With TLS 1.3 they come
// after the handshake, on the first read: "tlsv13 alert certificate required".
bool is_refused_client_certificate(std::string_view message) {
  for (std::string_view alert :
       {"alert certificate required", "alert bad certificate", "alert unknown ca",
        "alert certificate unknown", "alert unsupported certificate", "alert certificate expired",
        "alert certificate revoked"}) {
    if (message.find(alert) != std::string_view::npos) return true;
  }
  return false;
}

Certificate certificate_problem(CURLcode code, std::string_view message) {
  switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      return Certificate::server;
    case CURLE_SSL_CERTPROBLEM:  // our own certificate or key file
      return Certificate::client;
    default:
      return is_refused_client_certificate(message) ? Certificate::client : Certificate::none;
  }
}

class CurlTlsStream final : public ByteStream {
 public:
  explicit CurlTlsStream(const TlsStreamOptions& options)
      : easy_((curl_detail::init_curl_once(), curl_easy_init())) {
    if (!easy_) throw StreamError("cannot start a TLS connection (libcurl)", Certificate::none);
    const bool ipv6 = options.host.find(':') != std::string::npos;
    const std::string url = "https://" + (ipv6 ? "[" + options.host + "]" : options.host) + ":" +
                            std::to_string(options.port) + "/";
    CURL* easy = easy_.get();
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options.connect_timeout.count()));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    // An HTTP proxy from the environment is for the providers; a Redis client goes direct.
    curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options.ca_bundle.empty()) {
      curl_easy_setopt(easy, CURLOPT_CAINFO, options.ca_bundle.c_str());
    } else if (!options.ca_path.empty()) {
      curl_easy_setopt(easy, CURLOPT_CAPATH, options.ca_path.c_str());
    }
    if (!options.client_cert.empty()) {
      curl_easy_setopt(easy, CURLOPT_SSLCERT, options.client_cert.c_str());
      if (!options.client_key.empty())
        curl_easy_setopt(easy, CURLOPT_SSLKEY, options.client_key.c_str());
    }
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_);
    const CURLcode code = curl_easy_perform(easy);
    if (code != CURLE_OK) fail(code, "");
    curl_socket_t socket = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(easy, CURLINFO_ACTIVESOCKET, &socket) != CURLE_OK ||
        socket == CURL_SOCKET_BAD) {
      throw StreamError("the TLS connection has no socket", Certificate::none);
    }
    socket_ = socket;
  }

  void send_all(std::string_view bytes, Millis timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!bytes.empty()) {
      std::size_t sent = 0;
      error_[0] = '\0';  // curl writes here only when it fails, and not always then
      const CURLcode code = curl_easy_send(easy_.get(), bytes.data(), bytes.size(), &sent);
      if (code == CURLE_AGAIN) {
        wait_for(POLLOUT, deadline, "sending");
        continue;
      }
      if (code != CURLE_OK) fail(code, "sending: ");
      bytes.remove_prefix(sent);
    }
  }

  std::size_t receive(char* buffer, std::size_t size, Millis timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::size_t got = 0;
      error_[0] = '\0';
      const CURLcode code = curl_easy_recv(easy_.get(), buffer, size, &got);
      if (code == CURLE_AGAIN) {
        // Nothing decrypted yet (or only a TLS record that carried no data, such as a session
        // ticket): wait for the socket.
        wait_for(POLLIN, deadline, "waiting for a reply");
        continue;
      }
      if (code != CURLE_OK) fail(code, "receiving: ");
      if (got == 0) throw StreamError("the server closed the connection", Certificate::none);
      return got;
    }
  }

 private:
  [[noreturn]] void fail(CURLcode code, const std::string& doing) const {
    const std::string detail = error_[0] != '\0' ? error_ : curl_easy_strerror(code);
    throw StreamError(doing + "TLS: " + detail, certificate_problem(code, detail));
  }

  void wait_for(short events, std::chrono::steady_clock::time_point deadline,
                const char* doing) const {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        throw StreamError(std::string("timed out ") + doing, Certificate::none, true);
      pollfd watch{socket_, events, 0};
      const int ready = ::poll(&watch, 1, static_cast<int>(left.count()));
      if (ready > 0) return;  // readable, writable or an error: curl says which next
      if (ready < 0 && errno != EINTR)
        throw StreamError(std::string("poll failed ") + doing, Certificate::none);
    }
  }

  std::unique_ptr<CURL, EasyDeleter> easy_;
  curl_socket_t socket_ = CURL_SOCKET_BAD;
  char error_[CURL_ERROR_SIZE] = {};
};

}  // namespace

std::unique_ptr<ByteStream> connect_tls(const TlsStreamOptions& options) {
  return std::make_unique<CurlTlsStream>(options);
}

}  // namespace detour::net
