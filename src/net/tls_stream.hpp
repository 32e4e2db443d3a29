#pragma once
// A TLS byte stream to HOST:PORT, for protocols that are not HTTP but need TLS (the rediss://
// state store). It is libcurl's connection (CURLOPT_CONNECT_ONLY on an https:// URL), so the
// certificate is verified by the same code and the same CA settings as every provider's.
// Blocking, with a timeout per call: its one user is a store that waits for each reply anyway.
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "net/http.hpp"

namespace detour::net {

struct TlsStreamOptions {
  std::string host;  // a name or an address; an IPv6 address without brackets
  int port = 0;
  std::string ca_bundle;         // PEM file of the CAs to trust; empty: ca_path, else the system's
  std::string ca_path;           // directory of hashed CA files, when no ca_bundle
  std::string client_cert;       // PEM certificate to present, for a server that asks; may be empty
  std::string client_key;        // its private key (PEM); empty: in client_cert
  Millis connect_timeout{2000};  // the TCP connect and the TLS handshake together
};

class StreamError : public std::runtime_error {
 public:
  // What a certificate has to do with it. Not `none`: the server could be reached but a
  // certificate is the problem, which trying again will not change -- the server's (or our CA
  // file), or ours (our file, or the server refused or asked for one).
  enum class Certificate { none, server, client };
  StreamError(const std::string& what, Certificate certificate, bool timed_out = false)
      : std::runtime_error(what), certificate_(certificate), timed_out_(timed_out) {}
  Certificate certificate() const { return certificate_; }
  // Nothing went wrong but the wait: the server said nothing in time.
  bool timed_out() const { return timed_out_; }

 private:
  Certificate certificate_;
  bool timed_out_;
};

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Sends every byte, or throws StreamError (timeout, connection lost).
  virtual void send_all(std::string_view bytes, Millis timeout) = 0;
  // Waits up to `timeout` for at least one byte and returns how many it put in `buffer`;
  // throws StreamError on timeout or when the server closed the connection.
  virtual std::size_t receive(char* buffer, std::size_t size, Millis timeout) = 0;
};

// Connects and completes the TLS handshake, verifying the server's certificate and name.
// Throws StreamError.
std::unique_ptr<ByteStream> connect_tls(const TlsStreamOptions& options);

}  // namespace detour::net
