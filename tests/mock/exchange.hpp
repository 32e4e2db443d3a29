#pragma once
// One request's passage through the mock, shared by the route handlers of every protocol
// (exchange.cpp for OpenAI, Anthropic and Gemini; azure.cpp for Azure OpenAI): the stats
// record, the in-flight token, credentials, limits, faults and delivery.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "errors.hpp"
#include "server.hpp"

namespace detour::mock {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct BodyPlan {
  int delay_ms = 0;          // between the headers and the body
  bool blank_lines = false;  // "\n"s while waiting, as DeepSeek sends under load
  bool truncate = false;     // a complete response whose body is only the first half
  bool reset = false;        // promise the whole body, send half, then reset the connection
};

enum class StreamMode { normal, cut, error, reset, truncated_chunk };

struct StreamPlan {
  int ttft_ms = 0;
  int token_delay_ms = 0;
  bool keepalive = false;  // ": keep-alive" comments while waiting for the first token
  StreamMode mode = StreamMode::normal;
  std::string error_event;  // StreamMode::error: sent after the first text chunk
};

class Exchange {
 public:
  // `azure`: the request came in on an Azure OpenAI route. It speaks OpenAI's wire format but
  // with Azure's credentials, error bodies, limit headers and content-filter annotations.
  Exchange(Shared& sh, Protocol protocol, const httplib::Request& req, httplib::Response& res,
           bool azure = false);

  void add_headers(const Headers& headers);
  void add_headers(const std::map<std::string, std::string>& headers);
  ErrorContext context() const;
  // The error of `kind` in the shape this request's API gives it.
  ErrorReply error(ErrorKind kind, const ErrorContext& ctx) const;
  // The rate-limit headers this request's API sends.
  Headers limit_headers(const LimitSnapshot& snapshot) const;
  // Copies what the stats show of a parsed chat request into the record.
  void record_request(const ChatRequest& request);

  // Checks the key the protocol's header carries against the configured one; on a mismatch
  // sends the protocol's 401 (or its equivalent) and returns false.
  bool check_auth();
  void send_error(const ErrorReply& e);
  // Records the request with its final status (0: closed without a response).
  void finish(int status);

  void deliver_body(std::string body, const std::string& type, const BodyPlan& plan);
  void deliver_stream(std::vector<SseEvent> events, const StreamPlan& plan);

  Shared& sh;
  const Protocol protocol;
  const bool azure;
  const httplib::Request& req;
  httplib::Response& res;
  std::shared_ptr<void> token;
  const std::string id;
  RequestRecord rec;
  // Azure only: the api-version the request named, and the operation its 429s name.
  std::string api_version;
  std::string operation = "ChatCompletions_Create";

 private:
  std::pair<std::string, std::string> credentials() const;
};

// A parsed and authenticated chat request, from the limits on: latency, the fault, then the
// reply, plain or streamed.
void serve_chat(Exchange& ex, ChatRequest cr);
// An authenticated model listing or lookup, from the fault on: `body`, or the not-found error
// when it is empty. Only the HTTP-level faults apply (tests/mock/README.md, Faults).
void serve_listing(Exchange& ex, std::optional<std::string> body);

}  // namespace detour::mock
