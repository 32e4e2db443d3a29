// The libcurl Transport: one curl_multi handle driven by a single-threaded loop with timers.
//
// Re-entrancy is the main design constraint. Handlers run inside curl callbacks (on_headers,
// on_body) and inside the loop (on_complete, timers), and may call start(), cancel(),
// add_timer() or stop() from there. libcurl refuses curl_multi_add/remove_handle from inside
// its own callbacks (CURLM_RECURSIVE_API_CALL), and on_complete must never run from inside
// start() or cancel(). So start() and cancel() only record what to do; the loop applies it to
// the multi handle between curl_multi_perform calls and delivers completions from a queue.
// A request leaves `requests_` just before its on_complete runs, so nothing a callback does
// can invalidate what the loop is iterating over.
//
// Everything runs on the thread that calls run(); only stop() may be called from elsewhere.
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/duration.hpp"
#include "net/curl_util.hpp"
#include "net/transport.hpp"

namespace detour::net {
namespace {

using SteadyClock = std::chrono::steady_clock;
using namespace curl_detail;

// The longest the loop sleeps in curl_multi_poll, so a flag set by a signal handler (which
// cannot safely wake the poll) is noticed promptly.
constexpr long kPollCapMs = 100;
// Idle easy handles kept for reuse; each keeps buffers worth not reallocating per request.
constexpr std::size_t kHandlePoolMax = 32;

class CurlTransport;

struct Request {
  enum class Phase {
    queued,    // configured, waiting for the loop to add it to the multi handle
    active,    // in the multi handle
    finished,  // out of the multi handle, its completion queued
  };

  ~Request() { curl_slist_free_all(header_list); }

  CurlTransport* owner = nullptr;
  Transport::Id id = 0;
  HttpRequest request;  // owns the URL and the body curl points into (CURLOPT_POSTFIELDS)
  ResponseHandler handler;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  Phase phase = Phase::queued;
  CURLcode result = CURLE_OK;
  // Set when we end the exchange ourselves (cancel, first-byte timer, handler): it then wins
  // over whatever curl reports, which for an aborted write is a meaningless CURLE_WRITE_ERROR.
  std::optional<TransportStatus> forced;
  std::string forced_message;
  Transport::Id first_byte_timer = 0;
  SteadyClock::time_point started;
  SteadyClock::time_point headers_at;
  int status = 0;  // from the latest status line
  bool headers_done = false;
  Headers headers;
  std::string body;
  char error[CURL_ERROR_SIZE] = {};
};

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(const CurlTransportOptions& options) : options_(options) {
    init_curl_once();
    multi_ = curl_multi_init();
    share_ = curl_share_init();
    if (multi_ == nullptr || share_ == nullptr) {
      curl_multi_cleanup(multi_);
      curl_share_cleanup(share_);
      throw std::runtime_error("cannot create a libcurl multi handle");
    }
    // Connections, and DNS answers, are cached by the multi handle and shared by every easy
    // handle in it, so reuse needs nothing more. TLS session tickets are per easy handle
    // unless shared; sharing them makes the extra connections of a batch resume sessions.
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (options_.max_connections_per_host > 0) {
      curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, options_.max_connections_per_host);
      // Room to keep every host's connections open between requests for a few hosts.
      curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                        std::max(16L, options_.max_connections_per_host * 4));
    }
  }

  ~CurlTransport() override {
    // In-flight requests are dropped without completions: their handlers may refer to objects
    // that are being destroyed along with us.
    for (auto& [id, request] : requests_) {
      if (request->easy == nullptr) continue;
      if (request->phase == Request::Phase::active) {
        curl_multi_remove_handle(multi_, request->easy);
      }
      curl_easy_cleanup(request->easy);
    }
    requests_.clear();
    for (CURL* easy : pool_)
      curl_easy_cleanup(easy);
    curl_multi_cleanup(multi_);
    curl_share_cleanup(share_);  // last: easy handles referred to it
  }

  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  Id start(HttpRequest http_request, ResponseHandler handler) override {
    auto owned = std::make_unique<Request>();
    Request& request = *owned;
    request.owner = this;
    request.id = next_id_++;
    request.request = std::move(http_request);
    request.handler = std::move(handler);
    request.started = SteadyClock::now();
    requests_.emplace(request.id, std::move(owned));

    std::string why;
    if (!configure(request, why)) {
      finish_early(request, TransportStatus::other, std::move(why));
      return request.id;
    }
    if (request.request.first_byte_timeout.count() > 0) {
      const Id id = request.id;
      request.first_byte_timer =
          add_timer(request.request.first_byte_timeout, [this, id] { first_byte_due(id); });
    }
    to_add_.push_back(request.id);
    return request.id;
  }

  void cancel(Id id) override {
    const auto it = requests_.find(id);
    if (it == requests_.end()) return;
    abort(*it->second, TransportStatus::cancelled, "cancelled");
  }

  Id add_timer(Millis delay, std::function<void()> callback) override {
    const Id id = next_id_++;
    const auto due = SteadyClock::now() + std::max(delay, Millis{0});
    timers_.emplace(std::pair{due, id}, std::move(callback));
    timer_due_.emplace(id, due);
    return id;
  }

  void cancel_timer(Id id) override {
    const auto it = timer_due_.find(id);
    if (it == timer_due_.end()) return;
    timers_.erase(std::pair{it->second, id});
    timer_due_.erase(it);
  }

  void run() override {
    // A nested run() from a callback would re-enter curl_multi_perform; the outer loop is
    // already doing the work.
    if (running_) return;
    running_ = true;
    struct Reset {
      bool& flag;
      ~Reset() { flag = false; }
    } reset{running_};

    for (;;) {
      // exchange: a stop() consumes itself, so a later run() carries on with what is left.
      if (stop_requested_.exchange(false)) return;
      apply_queued();
      int still_running = 0;
      curl_multi_perform(multi_, &still_running);
      collect_finished();
      apply_queued();
      if (callback_error_) std::rethrow_exception(std::exchange(callback_error_, nullptr));
      deliver_completions();
      // A stop asked for by a completion handler ends the turn here: timers due now (a shared
      // state sync, say) wait for the next run() or for their owner.
      if (stop_requested_.load()) continue;
      fire_due_timers();
      if (requests_.empty() && timers_.empty()) return;
      if (stop_requested_.load()) continue;
      curl_multi_poll(multi_, nullptr, 0, poll_timeout_ms(), nullptr);
    }
  }

  void stop() override {
    stop_requested_.store(true);
    // Wakes a poll in progress when called from another thread; harmless from a callback.
    curl_multi_wakeup(multi_);
  }

 private:
  bool configure(Request& request, std::string& why) {
    request.header_list = build_header_list(request.request, why);
    if (request.header_list == nullptr) return false;
    request.easy = acquire_handle();
    if (request.easy == nullptr) {
      why = "cannot create a libcurl handle";
      return false;
    }
    CURL* easy = request.easy;
    CURLcode rc = apply_request_options(easy, request.request, options_.verbose);
    // What ties the handle to this Request and this loop.
    for (const CURLcode result : {
             curl_easy_setopt(easy, CURLOPT_PRIVATE, &request),
             curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, request.error),
             curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request.header_list),
             curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &CurlTransport::header_callback),
             curl_easy_setopt(easy, CURLOPT_HEADERDATA, &request),
             curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &CurlTransport::write_callback),
             curl_easy_setopt(easy, CURLOPT_WRITEDATA, &request),
         }) {
      if (rc == CURLE_OK) rc = result;
    }
    if (rc != CURLE_OK) {
      why = std::string("cannot set up the request: ") + curl_easy_strerror(rc);
      return false;
    }
    curl_easy_setopt(easy, CURLOPT_SHARE, share_);  // an optimisation: failure is harmless
    return true;
  }

  CURL* acquire_handle() {
    if (pool_.empty()) return curl_easy_init();
    CURL* easy = pool_.back();
    pool_.pop_back();
    return easy;
  }

  void release_handle(CURL* easy) {
    if (easy == nullptr) return;
    if (pool_.size() >= kHandlePoolMax) {
      curl_easy_cleanup(easy);
      return;
    }
    curl_easy_reset(easy);  // forgets options, keeps nothing tied to the old Request
    pool_.push_back(easy);
  }

  // Ends a request that never reached curl; on_complete still comes from the loop.
  void finish_early(Request& request, TransportStatus status, std::string message) {
    request.forced = status;
    request.forced_message = std::move(message);
    request.phase = Request::Phase::finished;
    completions_.push_back(request.id);
  }

  // Ends a request on our side. Safe from any callback: the multi handle is only touched by
  // apply_queued(), outside curl_multi_perform.
  void abort(Request& request, TransportStatus status, std::string message) {
    if (request.phase == Request::Phase::finished || request.forced) return;
    cancel_timer(request.first_byte_timer);
    if (request.phase == Request::Phase::queued) {
      finish_early(request, status, std::move(message));
      return;
    }
    request.forced = status;
    request.forced_message = std::move(message);
    to_remove_.push_back(request.id);
  }

  void first_byte_due(Id id) {
    const auto it = requests_.find(id);
    if (it == requests_.end() || it->second->headers_done) return;
    abort(*it->second, TransportStatus::first_byte_timeout,
          "no response headers within " + format_duration(it->second->request.first_byte_timeout));
  }

  // A handler threw inside a curl callback, where an exception must not unwind through C
  // frames. The request fails and run() rethrows once curl_multi_perform has returned.
  void handler_threw(Request& request) {
    if (!callback_error_) callback_error_ = std::current_exception();
    abort(request, TransportStatus::other, "response handler threw an exception");
  }

  // The blank line after a final status arrived: hand the headers over, once.
  bool headers_complete(Request& request) {
    request.headers_done = true;
    request.headers_at = SteadyClock::now();
    cancel_timer(request.first_byte_timer);
    if (request.status == 0) {
      long code = 0;
      curl_easy_getinfo(request.easy, CURLINFO_RESPONSE_CODE, &code);
      request.status = static_cast<int>(code);
    }
    if (request.handler.on_headers) {
      try {
        request.handler.on_headers(request.status, request.headers);
      } catch (...) {
        handler_threw(request);
      }
    }
    return !request.forced;  // the handler may have cancelled its own request
  }

  static size_t header_callback(char* data, size_t size, size_t count, void* user) {
    auto& request = *static_cast<Request*>(user);
    const size_t length = size * count;
    if (request.forced) return 0;             // being removed: stop the transfer
    if (request.headers_done) return length;  // trailers after the body: not part of the API
    const std::string_view line(data, length);
    if (const auto status = parse_status_line(line)) {
      // A new response starts (after 100 Continue, a redirect through a proxy...): only the
      // last one's headers count.
      request.status = *status;
      request.headers.clear();
      return length;
    }
    if (is_blank_line(line)) {
      if (request.status >= 100 && request.status < 200) return length;  // interim response
      return request.owner->headers_complete(request) ? length : 0;
    }
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t') &&
        !request.headers.empty()) {
      // Obsolete line folding continues the previous value.
      auto& value = request.headers.back().second;
      value += ' ';
      value += trim(line);
      return length;
    }
    if (auto header = parse_header_line(line)) request.headers.push_back(std::move(*header));
    return length;
  }

  static size_t write_callback(char* data, size_t size, size_t count, void* user) {
    auto& request = *static_cast<Request*>(user);
    const size_t length = size * count;
    if (request.forced) return 0;
    // curl always sends headers first; this guards the contract "on_headers before on_body".
    if (!request.headers_done && !request.owner->headers_complete(request)) return 0;
    if (length == 0) return 0;
    if (!request.handler.on_body) {
      request.body.append(data, length);
      return length;
    }
    bool keep_going = false;
    try {
      keep_going = request.handler.on_body(std::string_view(data, length));
    } catch (...) {
      request.owner->handler_threw(request);
      return 0;
    }
    if (!keep_going) {
      request.owner->abort(request, TransportStatus::cancelled, "stopped by the response handler");
      return 0;  // curl ends the transfer with CURLE_WRITE_ERROR; `forced` says cancelled
    }
    return request.forced ? 0 : length;  // on_body may have called cancel() on its own request
  }

  // Applies what start() and cancel() recorded to the multi handle.
  void apply_queued() {
    for (const Id id : std::exchange(to_remove_, {})) {
      const auto it = requests_.find(id);
      if (it == requests_.end() || it->second->phase != Request::Phase::active) continue;
      curl_multi_remove_handle(multi_, it->second->easy);
      it->second->phase = Request::Phase::finished;
      completions_.push_back(id);
    }
    for (const Id id : std::exchange(to_add_, {})) {
      const auto it = requests_.find(id);
      if (it == requests_.end() || it->second->phase != Request::Phase::queued) continue;
      const CURLMcode code = curl_multi_add_handle(multi_, it->second->easy);
      if (code != CURLM_OK) {
        finish_early(*it->second, TransportStatus::other, curl_multi_strerror(code));
        continue;
      }
      it->second->phase = Request::Phase::active;
    }
  }

  void collect_finished() {
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      // The message dies with curl_multi_remove_handle: copy what is needed first.
      CURL* easy = message->easy_handle;
      const CURLcode result = message->data.result;
      char* user = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &user);
      // Removing it now hands a finished connection back to the cache for the next request.
      curl_multi_remove_handle(multi_, easy);
      auto* request = reinterpret_cast<Request*>(user);
      if (request == nullptr || request->phase != Request::Phase::active) continue;
      request->result = result;
      request->phase = Request::Phase::finished;
      completions_.push_back(request->id);
    }
  }

  void deliver_completions() {
    while (!completions_.empty()) {
      const Id id = completions_.front();
      completions_.pop_front();
      const auto it = requests_.find(id);
      if (it == requests_.end()) continue;
      // Out of the map before the handler runs: it may start or cancel anything.
      std::unique_ptr<Request> request = std::move(it->second);
      requests_.erase(it);
      HttpResponse response = make_response(*request);
      cancel_timer(request->first_byte_timer);
      release_handle(std::exchange(request->easy, nullptr));
      if (request->handler.on_complete) request->handler.on_complete(std::move(response));
    }
  }

  HttpResponse make_response(Request& request) {
    HttpResponse response;
    bool connected = request.headers_done;
    if (request.easy != nullptr) {
      curl_off_t connect_us = 0;
      long request_size = 0;
      curl_easy_getinfo(request.easy, CURLINFO_CONNECT_TIME_T, &connect_us);
      curl_easy_getinfo(request.easy, CURLINFO_REQUEST_SIZE, &request_size);
      connected = connected || connect_us > 0 || request_size > 0;
    }
    if (request.forced) {
      response.transport = *request.forced;
      // The first-byte clock also runs while connecting; say which part was slow.
      if (response.transport == TransportStatus::first_byte_timeout && !connected) {
        response.transport = TransportStatus::connect_timeout;
      }
      response.transport_message = request.forced_message;
    } else {
      response.transport = map_curl_result(request.result, connected);
      if (request.result != CURLE_OK) {
        const std::string_view words = trim(request.error);
        response.transport_message =
            words.empty() ? curl_easy_strerror(request.result) : std::string(words);
      }
    }
    response.transport_message = redact(std::move(response.transport_message), request.request);
    if (request.headers_done) {
      response.status = request.status;
      response.headers = std::move(request.headers);
      response.first_byte_latency =
          std::chrono::duration_cast<Millis>(request.headers_at - request.started);
    }
    response.body = std::move(request.body);
    response.total_latency =
        std::chrono::duration_cast<Millis>(SteadyClock::now() - request.started);
    return response;
  }

  void fire_due_timers() {
    const auto now = SteadyClock::now();
    // Timers added by these callbacks (even with delay 0) wait for the next iteration, so a
    // timer re-arming itself cannot starve curl. New ids are larger and new due times are not
    // earlier than `now`, so they sort after every timer fired here. A stop() asked for by one
    // of them leaves the rest for later.
    const Id first_new = next_id_;
    while (!timers_.empty() && !stop_requested_.load()) {
      const auto it = timers_.begin();
      if (it->first.first > now || it->first.second >= first_new) break;
      std::function<void()> callback = std::move(it->second);
      timer_due_.erase(it->first.second);
      timers_.erase(it);
      callback();
    }
  }

  int poll_timeout_ms() const {
    if (!to_add_.empty() || !to_remove_.empty() || !completions_.empty()) return 0;
    long timeout = kPollCapMs;
    long curl_timeout = -1;
    curl_multi_timeout(multi_, &curl_timeout);
    if (curl_timeout >= 0) timeout = std::min(timeout, curl_timeout);
    if (!timers_.empty()) {
      const auto until = timers_.begin()->first.first - SteadyClock::now();
      // Rounded up: waking a fraction of a millisecond early would spin.
      timeout = std::min(timeout, static_cast<long>(std::max<Millis::rep>(
                                      0, std::chrono::ceil<Millis>(until).count())));
    }
    return static_cast<int>(timeout);
  }

  CurlTransportOptions options_;
  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;
  std::vector<CURL*> pool_;
  std::unordered_map<Id, std::unique_ptr<Request>> requests_;
  std::vector<Id> to_add_;
  std::vector<Id> to_remove_;
  std::deque<Id> completions_;
  // Ordered by due time, then id (creation order); timer_due_ finds an entry to cancel it.
  std::map<std::pair<SteadyClock::time_point, Id>, std::function<void()>> timers_;
  std::unordered_map<Id, SteadyClock::time_point> timer_due_;
  Id next_id_ = 1;  // shared by requests and timers: ids are never reused
  std::atomic<bool> stop_requested_{false};
  bool running_ = false;
  std::exception_ptr callback_error_;
};

}  // namespace

std::unique_ptr<Transport> make_curl_transport(const CurlTransportOptions& options) {
  return std::make_unique<CurlTransport>(options);
}

}  // namespace detour::net
