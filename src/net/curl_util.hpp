#pragma once
// Internal to src/net: the stateless pieces of the libcurl transport (header lines, result
// mapping, secret redaction, verbose output). Kept apart from the event loop in
// curl_transport.cpp so that file stays about the loop. Only src/net/curl_* may include this.
#include <curl/curl.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "net/http.hpp"

namespace detour::net::curl_detail {

// curl_global_init, once per process, by whoever needs libcurl first (a transport or a TLS
// stream). Throws when it failed.
void init_curl_once();

// Strips spaces, tabs and line ends from both sides.
std::string_view trim(std::string_view text);

// The status code of a status line ("HTTP/1.1 200 OK", "HTTP/2 429"); 0 when the line starts
// with "HTTP/" but carries no readable code; nullopt when it is not a status line at all.
std::optional<int> parse_status_line(std::string_view line);

// "Name: value" → {"name", "value"}: name lower-cased, value trimmed. nullopt when the line has
// no colon or no name (the blank line ending the headers, garbage).
std::optional<std::pair<std::string, std::string>> parse_header_line(std::string_view line);

// True for the CRLF (or LF) that ends a header block.
bool is_blank_line(std::string_view line);

// Header names whose values are secrets (API keys, bearer tokens, cookies).
bool is_sensitive_header(std::string_view name);

// CURLcode → TransportStatus. `connected` tells a connect timeout from a later one.
TransportStatus map_curl_result(CURLcode code, bool connected);

// Removes the request's secrets (sensitive header values, the URL's query string) from a
// message before it leaves the transport; curl's words are shown to users with -v.
std::string redact(std::string message, const HttpRequest& request);

// Builds curl's header list from the request. Adds "Expect:" so large prompts are not held
// back a second waiting for "100 Continue", and an empty "Content-Type:" so a body without a
// declared type is not labelled a form. On failure returns nullptr and says why in `error`
// (naming the header, never its value).
curl_slist* build_header_list(const HttpRequest& request, std::string& error);

// Sets what the exchange itself needs on a fresh (or reset) easy handle: URL, method and body,
// timeouts, TLS, compression, HTTP version, keepalive, user agent, verbose output. The body is
// not copied, so `request` must outlive the transfer. Returns the first refusal of an option
// the exchange cannot do without; options that only help are set best-effort.
CURLcode apply_request_options(CURL* easy, const HttpRequest& request, bool verbose);

// CURLOPT_DEBUGFUNCTION for verbose mode: curl's notes and the headers both ways on stderr,
// sensitive header values replaced, bodies and TLS data left out.
int debug_to_stderr(CURL* easy, curl_infotype type, char* data, size_t size, void* user);

}  // namespace detour::net::curl_detail
