#include "net/curl_util.hpp"

#include "core/text.hpp"

#include <cctype>
#include <cstdio>
#include <mutex>
#include <stdexcept>

#ifndef DETOUR_VERSION
#define DETOUR_VERSION "dev"
#endif

namespace detour::net::curl_detail {
namespace {

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void replace_all(std::string& text, std::string_view needle, std::string_view replacement) {
  if (needle.empty()) return;
  for (std::size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + replacement.size())) {
    text.replace(pos, needle.size(), replacement);
  }
}

constexpr std::string_view kRedacted = "[redacted]";

bool holds_secret(std::string_view text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (secret.size() >= 4 && text.find(secret) != std::string_view::npos) return true;
  }
  return false;
}

// One header line for verbose output, its value hidden when the name is sensitive or the
// value is one of the request's secrets.
std::string redact_header_line(std::string_view line, const std::vector<std::string>& secrets) {
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return std::string(line);
  if (!is_sensitive_header(to_lower(trim(line.substr(0, colon)))) &&
      !holds_secret(line.substr(colon + 1), secrets)) {
    return std::string(line);
  }
  return std::string(line.substr(0, colon + 1)) + " " + std::string(kRedacted) + "\r\n";
}

}  // namespace

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const std::size_t first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const std::size_t last = text.find_last_not_of(kSpace);
  return text.substr(first, last - first + 1);
}

std::optional<int> parse_status_line(std::string_view line) {
  if (line.substr(0, 5) != "HTTP/") return std::nullopt;
  const std::size_t space = line.find(' ');
  if (space == std::string_view::npos) return 0;
  std::string_view rest = trim(line.substr(space + 1));
  int status = 0;
  int digits = 0;
  for (; digits < 3 && digits < static_cast<int>(rest.size()); ++digits) {
    const char c = rest[static_cast<std::size_t>(digits)];
    if (c < '0' || c > '9') break;
    status = status * 10 + (c - '0');
  }
  return digits == 3 ? status : 0;
}

std::optional<std::pair<std::string, std::string>> parse_header_line(std::string_view line) {
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view name = trim(line.substr(0, colon));
  if (name.empty()) return std::nullopt;
  return std::pair{to_lower(name), std::string(trim(line.substr(colon + 1)))};
}

bool is_blank_line(std::string_view line) {
  return line == "\r\n" || line == "\n";
}

bool is_sensitive_header(std::string_view name) {
  return names_a_credential(name);
}

TransportStatus map_curl_result(CURLcode code, bool connected) {
  switch (code) {
    case CURLE_OK:
      return TransportStatus::ok;
    case CURLE_COULDNT_CONNECT:
    case CURLE_PROXY:  // the proxy refused to open the tunnel: we never reached the server
      return TransportStatus::connect_failed;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return TransportStatus::dns_failed;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return TransportStatus::tls_failed;
    case CURLE_OPERATION_TIMEDOUT:
      return connected ? TransportStatus::timeout : TransportStatus::connect_timeout;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:         // framing error: the connection is unusable
    case CURLE_HTTP2_STREAM:  // the server reset our stream
      return TransportStatus::connection_reset;
    default:
      return TransportStatus::other;
  }
}

std::string redact(std::string message, const HttpRequest& request) {
  for (const auto& [name, value] : request.headers) {
    if (!is_sensitive_header(name)) continue;
    const std::string_view whole = trim(value);
    // "Bearer sk-..." may be quoted without its scheme, so the last word goes too. Short
    // fragments are left alone: replacing "a" everywhere would garble the message.
    const std::size_t space = whole.find_last_of(' ');
    const std::string_view token =
        space == std::string_view::npos ? whole : whole.substr(space + 1);
    if (whole.size() >= 4) replace_all(message, whole, kRedacted);
    if (token.size() >= 4) replace_all(message, token, kRedacted);
  }
  for (const auto& secret : request.secrets) {
    if (secret.size() >= 4) replace_all(message, secret, kRedacted);
  }
  // Some APIs take the key as a query parameter (?key=...).
  const std::size_t question = request.url.find('?');
  if (question != std::string::npos) {
    const std::string_view query = std::string_view(request.url).substr(question + 1);
    if (query.size() >= 4) replace_all(message, query, kRedacted);
  }
  return message;
}

curl_slist* build_header_list(const HttpRequest& request, std::string& error) {
  curl_slist* list = nullptr;
  bool has_expect = false;
  bool has_content_type = false;
  auto append = [&list](const std::string& line) {
    curl_slist* grown = curl_slist_append(list, line.c_str());
    if (grown == nullptr) return false;
    list = grown;
    return true;
  };
  auto fail = [&](std::string why) {
    curl_slist_free_all(list);
    error = std::move(why);
    return nullptr;
  };
  for (const auto& [name, raw_value] : request.headers) {
    const std::string_view value = trim(raw_value);
    // A line break inside a name or value would let it inject headers (a key read from a file
    // with a stray newline does this by accident).
    if (trim(name).empty() || name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string_view::npos) {
      return fail("invalid HTTP header \"" + std::string(trim(name)) +
                  "\": empty name, or a line break in its name or value");
    }
    const std::string lower = to_lower(name);
    has_expect = has_expect || lower == "expect";
    has_content_type = has_content_type || lower == "content-type";
    // curl drops "Name:" with nothing after it; "Name;" is its spelling of an empty value.
    const std::string line = value.empty() ? name + ";" : name + ": " + std::string(value);
    if (!append(line)) return fail("out of memory building HTTP headers");
  }
  if (!has_expect && !append("Expect:")) return fail("out of memory building HTTP headers");
  if (!has_content_type && !append("Content-Type:")) {
    return fail("out of memory building HTTP headers");
  }
  return list;
}

CURLcode apply_request_options(CURL* easy, const HttpRequest& request, bool verbose) {
  CURLcode rc = CURLE_OK;
  auto must = [&rc](CURLcode result) {
    if (rc == CURLE_OK) rc = result;
  };
  must(curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str()));
  must(curl_easy_setopt(easy, CURLOPT_USERAGENT, "detour/" DETOUR_VERSION));
  must(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L));  // no SIGALRM for DNS timeouts
  must(curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L));
  // Verification is curl's default; stated so nobody "fixes" a certificate error by turning it
  // off. Proxies come from http_proxy/https_proxy/no_proxy, read by curl itself.
  must(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L));
  must(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L));
  must(curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                        static_cast<long>(request.connect_timeout.count())));
  must(
      curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(request.total_timeout.count())));
  // Through an HTTPS proxy, the CONNECT reply would otherwise look like the response.
  must(curl_easy_setopt(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L));

  const std::string& method = request.method;
  const std::string& body = request.body;
  if (method == "GET" && body.empty()) {
    must(curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L));
  } else if (method == "HEAD" && body.empty()) {
    must(curl_easy_setopt(easy, CURLOPT_NOBODY, 1L));
  } else if (method == "POST" || !body.empty()) {
    must(curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size())));
    must(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data()));
    if (method != "POST") must(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str()));
  } else {
    must(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str()));
  }

  // Options that only help; a libcurl built without them still does the job.
  // A base_url of file:// or gopher:// is a mistake, not something to fetch.
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  // No Accept-Encoding: answers are small next to the time spent generating them, and a
  // compressed stream can be held back by buffering on either end. Servers then skip the
  // compression work too (measured: about 3 ms per reply against detour-mock).
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  // Non-streamed answers can take minutes of silence; keepalive stops NATs dropping them.
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 15L);
  // A batch starting hundreds of requests at once should wait for the first TLS handshake to
  // learn whether HTTP/2 can multiplex them, not open a connection each. Only for https: over
  // cleartext curl would wait for a whole first response to learn it is HTTP/1.1.
  if (request.url.compare(0, 8, "https://") == 0) curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
  // A corporate CA (ca_bundle, $SSL_CERT_FILE): trusted instead of the system's bundle, never
  // instead of verifying.
  if (!request.ca_bundle.empty()) {
    must(curl_easy_setopt(easy, CURLOPT_CAINFO, request.ca_bundle.c_str()));
  } else if (!request.ca_path.empty()) {
    must(curl_easy_setopt(easy, CURLOPT_CAPATH, request.ca_path.c_str()));
  }
  if (verbose) {
    curl_easy_setopt(easy, CURLOPT_DEBUGFUNCTION, &debug_to_stderr);
    curl_easy_setopt(easy, CURLOPT_DEBUGDATA, const_cast<HttpRequest*>(&request));
    curl_easy_setopt(easy, CURLOPT_VERBOSE, 1L);
  }
  return rc;
}

int debug_to_stderr(CURL* /*easy*/, curl_infotype type, char* data, size_t size, void* user) {
  static const std::vector<std::string> kNone;
  const auto& secrets = user ? static_cast<const HttpRequest*>(user)->secrets : kNone;
  const std::string_view text(data, size);
  std::string_view prefix;
  switch (type) {
    case CURLINFO_TEXT:
      prefix = "* ";
      break;
    case CURLINFO_HEADER_OUT:
      prefix = "> ";
      break;
    case CURLINFO_HEADER_IN:
      prefix = "< ";
      break;
    default:
      return 0;  // bodies and TLS records: noise, and prompts may be private
  }
  // HEADER_OUT arrives as one block holding every request line; redact line by line.
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    end = end == std::string_view::npos ? text.size() : end + 1;
    const std::string_view line = text.substr(start, end - start);
    start = end;
    if (trim(line).empty()) continue;
    std::string shown;
    if (type == CURLINFO_TEXT) {
      shown = line;  // curl's own notes can quote a URL or a header too
      for (const auto& secret : secrets) {
        if (secret.size() >= 4) replace_all(shown, secret, kRedacted);
      }
    } else {
      shown = redact_header_line(line, secrets);
    }
    std::fprintf(stderr, "%.*s%.*s\n", static_cast<int>(prefix.size()), prefix.data(),
                 static_cast<int>(trim(shown).size()), trim(shown).data());
  }
  return 0;
}

namespace {
std::once_flag curl_init_once;
bool curl_init_failed = false;  // written once, under curl_init_once
}  // namespace

void init_curl_once() {
  std::call_once(curl_init_once,
                 [] { curl_init_failed = curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK; });
  if (curl_init_failed) throw std::runtime_error("cannot initialise libcurl");
}

}  // namespace detour::net::curl_detail
