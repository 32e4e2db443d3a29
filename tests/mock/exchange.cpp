// The request pipeline shared by every protocol: parse, authenticate, enforce limits, wait the
// latency, inject the fault, and deliver the reply (plain body or SSE stream) with the timing
// the scenario asks for.
#include "exchange.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <variant>

#include "azure.hpp"
#include "sockets.hpp"

namespace detour::mock {

namespace {

// The socket of this request's connection: faults like "close" and "reset" act on it.
int connection_fd(const httplib::Request& req) {
  return mock::connection_fd(req.remote_addr, req.remote_port, req.local_port);
}

bool applies_to_chat(Fault, bool) {
  return true;
}

// A model listing has no content and no stream: only HTTP-level faults mean anything.
bool applies_to_list(Fault f, bool) {
  switch (f) {
    case Fault::content_filter:
    case Fault::context_length:
      return false;
    case Fault::reset:
    case Fault::close:
    case Fault::truncated_json:
    case Fault::slow_headers:
    case Fault::blank_lines:
    case Fault::keepalive:
      return true;
    default:
      return is_error_fault(f);
  }
}

std::string lowercase(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The connection's addresses, which httplib's server adds to every request's headers: the
// client never sent them.
bool is_httplib_header(const std::string& lower) {
  return lower == "remote_addr" || lower == "remote_port" || lower == "local_addr" ||
         lower == "local_port";
}

// The query parameters of the URL alone: req.params also holds a form-encoded body's fields.
Headers url_query(const httplib::Request& req) {
  Headers out;
  auto mark = req.target.find('?');
  if (mark == std::string::npos) return out;
  httplib::Params params;
  httplib::detail::parse_query_text(req.target.substr(mark + 1), params);
  for (const auto& [name, value] : params)
    out.emplace_back(name, is_secret_param(name) ? std::string(kRedacted) : value);
  return out;
}

}  // namespace

Exchange::Exchange(Shared& sh, Protocol protocol, const httplib::Request& req,
                   httplib::Response& res, bool azure)
    : sh(sh),
      protocol(protocol),
      azure(azure),
      req(req),
      res(res),
      token(sh.stats.enter()),
      id(sh.next_request_id()) {
  rec.t_ms = sh.stats.now_ms();
  rec.method = req.method;
  rec.path = req.path;
  // Credentials are replaced here, before anything is stored (tests/mock/README.md, Stats).
  for (const auto& [name, value] : req.headers) {
    std::string lower = lowercase(name);
    if (is_httplib_header(lower)) continue;
    rec.headers.emplace_back(lower, is_secret_header(lower) ? std::string(kRedacted) : value);
  }
  rec.query = url_query(req);
  // Which credential is there, even when the request fails before its key is checked.
  rec.auth = credentials().first;
  if (azure) {
    res.set_header("x-request-id", "req_" + id);
    res.set_header("apim-request-id", azure_request_guid(id));
  } else if (protocol == Protocol::openai) {
    res.set_header("x-request-id", "req_" + id);
  } else if (protocol == Protocol::anthropic) {
    res.set_header("request-id", "req_" + id);
  }
}

void Exchange::add_headers(const Headers& headers) {
  for (const auto& [k, v] : headers)
    res.set_header(k, v);
}

void Exchange::add_headers(const std::map<std::string, std::string>& headers) {
  for (const auto& [k, v] : headers)
    res.set_header(k, v);
}

ErrorContext Exchange::context() const {
  ErrorContext c;
  c.model = rec.model;
  c.request_id = "req_" + id;
  return c;
}

ErrorReply Exchange::error(ErrorKind kind, const ErrorContext& ctx) const {
  return azure ? azure_error(kind, ctx, api_version, operation) : make_error(protocol, kind, ctx);
}

Headers Exchange::limit_headers(const LimitSnapshot& snapshot) const {
  return azure ? azure_ratelimit_headers(snapshot) : ratelimit_headers(protocol, snapshot);
}

void Exchange::record_request(const ChatRequest& cr) {
  rec.model = cr.model;
  rec.stream = cr.stream;
  rec.prompt = utf8_prefix(cr.prompt, 1000);
  rec.system = utf8_prefix(cr.system, 1000);
  rec.max_tokens = cr.max_tokens;
  rec.json_mode = cr.json_mode;
  rec.params = cr.params;
}

bool Exchange::check_auth() {
  auto [kind, key] = credentials();
  rec.auth = kind;
  auto expected = sh.api_key();
  if (!expected || key == *expected) return true;
  send_error(error(kind.empty() ? ErrorKind::missing_key : ErrorKind::auth, context()));
  return false;
}

void Exchange::send_error(const ErrorReply& e) {
  add_headers(e.headers);
  res.status = e.status;
  res.set_content(e.body, e.content_type);
  finish(e.status);
}

void Exchange::finish(int status) {
  rec.status = status;
  if (sh.options.verbose)
    std::fprintf(stderr, "detour-mock: %s %s model=%s stream=%d -> %d%s%s\n", rec.method.c_str(),
                 rec.path.c_str(), rec.model.c_str(), rec.stream ? 1 : 0, status,
                 rec.fault.empty() ? "" : " fault=", rec.fault.c_str());
  sh.stats.record(std::move(rec));
}

std::pair<std::string, std::string> Exchange::credentials() const {
  std::string bearer = req.get_header_value("Authorization");
  bool has_bearer = bearer.rfind("Bearer ", 0) == 0;
  // Azure takes its resource key in api-key, or a Microsoft Entra ID token as a bearer.
  if (azure && req.has_header("api-key")) return {"api-key", req.get_header_value("api-key")};
  if (protocol == Protocol::anthropic && req.has_header("x-api-key"))
    return {"x-api-key", req.get_header_value("x-api-key")};
  if (protocol == Protocol::gemini) {
    if (req.has_header("x-goog-api-key"))
      return {"x-goog-api-key", req.get_header_value("x-goog-api-key")};
    if (req.has_param("key")) return {"key-param", req.get_param_value("key")};
    return {};
  }
  if (has_bearer) return {"bearer", bearer.substr(7)};
  return {};
}

void Exchange::deliver_body(std::string body, const std::string& type, const BodyPlan& plan) {
  if (plan.truncate) body.resize(body.size() / 2);
  if (!plan.reset && !plan.blank_lines && plan.delay_ms <= 0) {
    res.set_content(body, type);
    return;
  }
  int lines = plan.blank_lines ? 3 : 0;
  int fd = plan.reset ? connection_fd(req) : -1;
  Shared* shared = &sh;
  res.set_content_provider(body.size() + static_cast<std::size_t>(lines), type,
                           [shared, body, lines, plan, fd, token = token](
                               std::size_t offset, std::size_t, httplib::DataSink& sink) {
                             if (offset != 0)
                               return false;  // everything is written in the first call
                             int step = plan.delay_ms / (lines + 1);
                             for (int i = 0; i < lines; ++i) {
                               if (!shared->sleep_ms(step) || !sink.write("\n", 1)) return false;
                             }
                             if (!shared->sleep_ms(plan.delay_ms - step * lines)) return false;
                             if (plan.reset) {
                               sink.write(body.data(), body.size() / 2);
                               arm_reset(fd);
                               return false;
                             }
                             return sink.write(body.data(), body.size());
                           });
}

void Exchange::deliver_stream(std::vector<SseEvent> events, const StreamPlan& plan) {
  res.set_header("Cache-Control", "no-cache");
  int fd = plan.mode == StreamMode::reset || plan.mode == StreamMode::cut ? connection_fd(req) : -1;
  if (plan.mode == StreamMode::cut) res.set_header("Connection", "close");
  std::string framing = protocol == Protocol::gemini ? "\r\n\r\n" : "\n\n";
  Shared* shared = &sh;
  res.set_chunked_content_provider(
      "text/event-stream", [shared, events = std::move(events), plan, fd, framing, token = token](
                               std::size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
        if (plan.keepalive) {
          for (int i = 0; i < 3; ++i)
            if (!write(": keep-alive\n\n") || !shared->sleep_ms(plan.ttft_ms / 3)) return false;
        } else if (!shared->sleep_ms(plan.ttft_ms)) {
          return false;
        }
        std::size_t deltas =
            std::count_if(events.begin(), events.end(), [](auto& e) { return e.delta; });
        std::size_t cut_after = std::max<std::size_t>(1, deltas / 2);
        std::size_t sent = 0;
        for (const auto& ev : events) {
          bool cut_here = ev.final || (ev.delta && sent >= cut_after);
          if (cut_here && plan.mode == StreamMode::reset) {
            arm_reset(fd);
            return false;  // no terminating chunk: the HTTP body itself is incomplete
          }
          if (cut_here && plan.mode == StreamMode::cut) {
            // A well-formed HTTP ending without the protocol's own ending, then hang up.
            sink.done();
            if (fd >= 0) shutdown(fd, SHUT_WR);
            return true;
          }
          if (ev.delta && sent > 0 && !shared->sleep_ms(plan.token_delay_ms)) return false;
          std::string text = ev.text;
          if (plan.mode == StreamMode::truncated_chunk && ev.delta && sent == 0)
            text = text.substr(0, text.size() / 2) + framing;
          if (!write(text)) return false;
          if (ev.delta) ++sent;
          if (plan.mode == StreamMode::error && ev.delta && sent == 1) {
            write(plan.error_event);
            break;
          }
        }
        sink.done();
        return true;
      });
}

namespace {

// Hangs up without a response: httplib's own write of the response then fails. Recorded
// first, so a client that sees the hang-up and asks for stats finds this request there.
void close_silently(Exchange& ex) {
  int fd = connection_fd(ex.req);
  ex.finish(0);
  if (fd >= 0) shutdown(fd, SHUT_RDWR);
}

StreamMode stream_mode(Fault f) {
  switch (f) {
    case Fault::sse_cut:
      return StreamMode::cut;
    case Fault::sse_error:
      return StreamMode::error;
    case Fault::reset:
      return StreamMode::reset;
    case Fault::truncated_json:
      return StreamMode::truncated_chunk;
    default:
      return StreamMode::normal;
  }
}

ContentFault content_fault(Fault f) {
  switch (f) {
    case Fault::empty:
      return ContentFault::empty;
    case Fault::refusal:
      return ContentFault::refusal;
    case Fault::wrong_schema:
      return ContentFault::wrong_schema;
    default:
      return ContentFault::none;
  }
}

// Stream-only faults have a plain-body counterpart, so every fault means something for
// every request: a cut stream is a reset body, a mid-stream error is that error's answer
// (overloaded unless the scenario's stream_error says otherwise).
Fault adapt_fault(Fault f, bool stream, Fault stream_error) {
  if (stream) return f == Fault::blank_lines ? Fault::keepalive : f;
  switch (f) {
    case Fault::sse_cut:
      return Fault::reset;
    case Fault::sse_error:
      return stream_error == Fault::none ? Fault::overloaded : stream_error;
    case Fault::keepalive:
      return Fault::blank_lines;
    default:
      return f;
  }
}

// What a finish_* fault does at a protocol: a 200 answer cut short with a finish reason that
// says why or, where the protocol has no such reason, its own mid-stream error of that kind.
struct FinishPlan {
  std::string reason;
  Fault error = Fault::none;
};

FinishPlan finish_plan(Fault f, Protocol p) {
  switch (f) {
    case Fault::finish_content_filter:
      return {p == Protocol::openai      ? "content_filter"
              : p == Protocol::anthropic ? "refusal"
                                         : "SAFETY"};
    case Fault::finish_error:
      // OpenRouter's "error" for a generation that failed part-way; Gemini's nearest is OTHER;
      // Anthropic has no such stop_reason and sends an api_error event instead.
      if (p == Protocol::anthropic) return {"", Fault::server_error};
      return {p == Protocol::openai ? "error" : "OTHER"};
    case Fault::finish_overloaded:
      // What gateways write when they translate a provider's mid-stream overload; the
      // providers themselves send the overloaded error.
      if (p == Protocol::openai) return {"overloaded_error"};
      return {"", Fault::overloaded};
    default:
      return {};
  }
}

// The error sse_error sends when the scenario names none: what each provider is seen sending.
Fault default_stream_error(Protocol p) {
  return p == Protocol::openai ? Fault::server_error : Fault::overloaded;
}

}  // namespace

void handle_chat(Shared& sh, Protocol protocol, const httplib::Request& req, httplib::Response& res,
                 const GeminiTarget& gemini) {
  Exchange ex(sh, protocol, req, res);
  // The Gemini model comes from the percent-decoded URL path, the one request text no JSON
  // parser has checked: a name that is not UTF-8 is kept out of every JSON body and record.
  ex.rec.model = is_utf8(gemini.model) ? gemini.model : std::string();
  auto parsed = parse_chat(protocol, req.body, gemini);
  if (auto* bad = std::get_if<std::string>(&parsed)) {
    ErrorContext ctx = ex.context();
    ctx.message = *bad;
    return ex.send_error(ex.error(ErrorKind::bad_request, ctx));
  }
  ChatRequest cr = std::get<ChatRequest>(std::move(parsed));
  ex.record_request(cr);
  if (!ex.check_auth()) return;
  if (protocol == Protocol::anthropic && !req.has_header("anthropic-version")) {
    ErrorContext ctx = ex.context();
    ctx.message = "anthropic-version: header is required";
    return ex.send_error(ex.error(ErrorKind::bad_request, ctx));
  }
  serve_chat(ex, std::move(cr));
}

void serve_chat(Exchange& ex, ChatRequest cr) {
  Shared& sh = ex.sh;
  const Protocol protocol = ex.protocol;
  // Limits come before faults and latency: a real 429 is fast and costs nothing.
  std::int64_t estimate = cr.input_tokens + cr.max_tokens.value_or(0);
  Verdict verdict = sh.limiter.admit(estimate);
  ex.add_headers(ex.limit_headers(verdict.snapshot));
  ErrorContext ctx = ex.context();
  ctx.input_tokens = cr.input_tokens;
  ctx.requested = estimate;
  if (!verdict.admitted) {
    ctx.limit_type = verdict.exceeded;
    ctx.limit = verdict.limit;
    ctx.from_limiter = true;
    if (!verdict.too_large) ctx.retry_after_s = verdict.retry_after_s;
    auto kind = verdict.too_large ? ErrorKind::request_too_large : ErrorKind::rate_limit;
    return ex.send_error(ex.error(kind, ctx));
  }

  auto decision = sh.scenario.decide(cr.model, applies_to_chat, cr.stream);
  const Behaviour& b = decision.behaviour;
  ex.add_headers(b.headers);
  if (!sh.sleep_ms(sh.scenario.sample_latency(b))) return ex.finish(0);
  Fault fault = decision.fault_fires ? b.fault : Fault::none;
  if (decision.fault_fires) ex.rec.fault = std::string(to_string(b.fault));
  FinishPlan finish = finish_plan(fault, protocol);
  Fault stream_error = b.stream_error;
  if (finish.error != Fault::none) {
    fault = Fault::sse_error;
    stream_error = finish.error;
  }
  fault = adapt_fault(fault, cr.stream, stream_error);
  if (stream_error == Fault::none) stream_error = default_stream_error(protocol);
  ctx.status = b.status;
  ctx.retry_after_s = b.retry_after_s;
  ctx.retry_delay = b.retry_delay;
  ctx.context_window = b.context_window;
  if (fault == Fault::none && b.context_window > 0 && cr.input_tokens > b.context_window)
    return ex.send_error(ex.error(ErrorKind::context_length, ctx));
  if (auto kind = error_kind_for(fault)) {
    ErrorReply e = ex.error(*kind, ctx);
    if (e.status == 200 && cr.stream) {  // Gemini's blocked prompt, streamed
      ex.deliver_stream({{sse_data(protocol, e.body), true, true}}, {});
      return ex.finish(200);
    }
    return ex.send_error(e);
  }
  if (fault == Fault::close) return close_silently(ex);
  int ttft = b.ttft_ms;
  if (fault == Fault::slow_headers) {
    if (!sh.sleep_ms(ttft)) return ex.finish(0);
    ttft = 0;
  }
  Reply reply = make_reply(cr, content_fault(fault));
  if (!finish.reason.empty()) {
    cut_short(reply);
    reply.finish = finish.reason;
  } else if (b.finish_reason) {
    reply.finish = *b.finish_reason;
  }
  if (cr.stream) {
    StreamPlan plan{ttft, b.token_delay_ms, fault == Fault::keepalive, stream_mode(fault), {}};
    if (plan.mode == StreamMode::error)
      plan.error_event = stream_error_event(protocol, *error_kind_for(stream_error), ctx);
    auto events = stream_events(cr, reply, ex.id);
    ex.deliver_stream(ex.azure ? azure_stream_events(std::move(events)) : std::move(events), plan);
  } else {
    // A plain reply takes as long as the stream would have: first token, then every token.
    int pieces = static_cast<int>(reply.pieces.size());
    BodyPlan plan{ttft + b.token_delay_ms * std::max(0, pieces - 1), fault == Fault::blank_lines,
                  fault == Fault::truncated_json, fault == Fault::reset};
    std::string body = reply_body(cr, reply, ex.id);
    ex.deliver_body(ex.azure ? azure_reply_body(body) : std::move(body), "application/json", plan);
  }
  ex.finish(200);
}

void handle_models(Shared& sh, Protocol protocol, const httplib::Request& req,
                   httplib::Response& res, const std::optional<std::string>& one) {
  Exchange ex(sh, protocol, req, res);
  ex.rec.model = one.value_or("");
  auto models = sh.known_models();
  // Anthropic pages its listing; bad paging parameters are a 400 before anything else.
  ModelsPage page;
  if (protocol == Protocol::anthropic && !one) {
    auto param = [&req](const char* key) {
      return req.has_param(key) ? std::optional(req.get_param_value(key)) : std::nullopt;
    };
    page = anthropic_models_page(models, param("limit"), param("after_id"), param("before_id"));
    if (!page.error.empty()) {
      ErrorContext ctx = ex.context();
      ctx.message = page.error;
      return ex.send_error(ex.error(ErrorKind::bad_request, ctx));
    }
  }
  if (!ex.check_auth()) return;
  std::optional<std::string> body;
  if (one) {
    if (std::find(models.begin(), models.end(), *one) != models.end())
      body = model_body(protocol, *one);
  } else {
    body = protocol == Protocol::anthropic ? std::move(page.body) : models_body(protocol, models);
  }
  serve_listing(ex, std::move(body));
}

void serve_listing(Exchange& ex, std::optional<std::string> body) {
  Shared& sh = ex.sh;
  auto decision = sh.scenario.decide(ex.rec.model, applies_to_list, false);
  const Behaviour& b = decision.behaviour;
  ex.add_headers(b.headers);
  if (!sh.sleep_ms(sh.scenario.sample_latency(b))) return ex.finish(0);
  Fault fault = Fault::none;
  if (decision.fault_fires) {
    ex.rec.fault = std::string(to_string(b.fault));
    fault = adapt_fault(b.fault, false, b.stream_error);
  }
  ErrorContext ctx = ex.context();
  ctx.status = b.status;
  ctx.retry_after_s = b.retry_after_s;
  ctx.retry_delay = b.retry_delay;
  if (auto kind = error_kind_for(fault)) return ex.send_error(ex.error(*kind, ctx));
  if (fault == Fault::close) return close_silently(ex);
  if (fault == Fault::slow_headers && !sh.sleep_ms(b.ttft_ms)) return ex.finish(0);
  if (!body) return ex.send_error(ex.error(ErrorKind::not_found, ctx));
  ex.deliver_body(
      std::move(*body), "application/json",
      {0, fault == Fault::blank_lines, fault == Fault::truncated_json, fault == Fault::reset});
  ex.finish(200);
}

void handle_no_route(Shared& sh, Protocol protocol, const httplib::Request& req,
                     httplib::Response& res) {
  Exchange ex(sh, protocol, req, res);
  ErrorContext ctx = ex.context();
  ctx.message = req.method + " " + req.path;
  ex.send_error(ex.error(ErrorKind::no_route, ctx));
}

}  // namespace detour::mock
