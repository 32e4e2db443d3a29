// The network around a provider end to end: an HTTP forward proxy from http_proxy / https_proxy
// and its no_proxy exceptions (README, "Providers": libcurl reads them), and
// TLS to a server whose certificate comes from a private CA: refused as `connection` unless
// ca_bundle, $SSL_CERT_FILE or $SSL_CERT_DIR trusts that CA (README, "Exit codes": TLS
// certificates are always verified). The CA and the server certificate are made at test time
// with the `openssl` command-line tool (Debian package `openssl`, installed by scripts/deps;
// without it these tests say so and pass without checking); the TLS server is cpp-httplib's
// SSLServer, which Debian's cpp-httplib is built with.
//
// libcurl (7.88 here) does not bypass a proxy for 127.0.0.1 or localhost on its own: only
// no_proxy does, so the loopback mock is reachable through the proxy as it is.
#include <httplib.h>
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "certificates.hpp"
#include "forward_proxy.hpp"
#include "harness.hpp"
#include "provider_test_util.hpp"
#include "transport_test_server.hpp"

using namespace detour::testing;
using namespace detour::testing::providers;
using detour::testing::network::ForwardProxy;
using nlohmann::json;

namespace {

const std::string kKey = "sk-network-KEY-4d7b2e9f1a6c";

std::string openai_provider(const std::string& name, const std::string& base_url,
                            const std::string& extra = "") {
  return "[providers." + name + "]\nprotocol = \"openai\"\nbase_url = \"" + base_url +
         "\"\napi_key_env = \"TEST_KEY\"\n" + extra + "\n";
}

bool contains(const std::vector<std::string>& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

std::string lower(std::string text) {
  for (char& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// An OpenAI-compatible server on https://127.0.0.1:PORT with the certificate made above.
class TlsServer {
 public:
  explicit TlsServer(const TempDir& certs)
      : server_(std::make_unique<httplib::SSLServer>(certs.file("server.pem").c_str(),
                                                     certs.file("server.key").c_str())) {
    REQUIRE(server_->is_valid());
    server_->Post(
        "/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
          ++requests_;
          const json body = json::parse(req.body);
          const std::string prompt = body["messages"].back()["content"];
          const json reply = {
              {"id", "chatcmpl-tls"},
              {"object", "chat.completion"},
              {"created", 0},
              {"model", body["model"]},
              {"choices",
               {{{"index", 0},
                 {"message", {{"role", "assistant"}, {"content", "tls reply to: " + prompt}}},
                 {"finish_reason", "stop"}}}},
              {"usage", {{"prompt_tokens", 2}, {"completion_tokens", 4}, {"total_tokens", 6}}}};
          res.set_content(reply.dump(), "application/json");
        });
    server_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      ++requests_;
      res.set_content(R"({"object":"list","data":[{"id":"tls-model","object":"model"}]})",
                      "application/json");
    });
    server_.start();
  }
  std::string base_url() const { return server_.url("/v1", "https"); }
  int requests() const { return requests_; }

 private:
  transport::TestServer server_;
  std::atomic<int> requests_{0};
};

}  // namespace

TEST_CASE("network: http_proxy carries the request through the proxy", "[providers][network]") {
  MockServer mock;
  ForwardProxy proxy;
  TempDir dir;
  const std::string config = dir.write("config.toml", openai_provider("oa", mock.url() + "/v1"));
  const std::map<std::string, std::string> env = {{"TEST_KEY", kKey}, {"http_proxy", proxy.url()}};
  const RunResult r =
      run_detour(config, {"--state", "memory", "ask", "-m", "oa/mock-1", "via proxy"}, env);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "mock reply to: via proxy\n");
  const RunResult health =
      run_detour(config, {"--state", "memory", "health", "--format", "json", "oa"}, env);
  INFO(health.out << health.err);
  CHECK(health.exit_code == 0);

  const std::vector<std::string> seen = proxy.requests();
  INFO("proxy saw " << json(seen).dump());
  CHECK(seen.size() == 2);
  CHECK(contains(seen, "POST " + mock.url() + "/v1/chat/completions HTTP/1.1"));
  CHECK(contains(seen, "GET " + mock.url() + "/v1/models HTTP/1.1"));
  // The proxy passed the request on whole: the key and the prompt arrived.
  json all = received(mock);
  REQUIRE(all.size() == 2);
  CHECK(all[0]["prompt"] == "via proxy");
  CHECK(all[0]["auth"] == "bearer");
}

TEST_CASE("network: no_proxy sends the request past the proxy", "[providers][network]") {
  MockServer mock;
  ForwardProxy proxy;
  TempDir dir;
  const std::string config = dir.write("config.toml", openai_provider("oa", mock.url() + "/v1"));
  for (const std::string except : {"127.0.0.1", "*", "localhost,127.0.0.1"}) {
    const RunResult r =
        run_detour(config, {"--state", "memory", "ask", "-m", "oa/mock-1", "direct"},
                   {{"TEST_KEY", kKey}, {"http_proxy", proxy.url()}, {"no_proxy", except}});
    INFO("no_proxy=" << except << "\n" << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "mock reply to: direct\n");
  }
  CHECK(proxy.requests().empty());
  CHECK(received(mock).size() == 3);
}

TEST_CASE("network: a proxy that refuses connections fails the target as connection",
          "[providers][network]") {
  MockServer mock;
  TempDir dir;
  const std::string config = dir.write("config.toml", openai_provider("oa", mock.url() + "/v1"));
  const RunResult r = run_detour(
      config, {"--state", "memory", "ask", "--json", "--retries", "0", "-m", "oa/mock-1", "hi"},
      {{"TEST_KEY", kKey}, {"http_proxy", "http://127.0.0.1:" + std::to_string(free_port())}});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  json j = json_out(r);
  CHECK(j["error"]["class"] == "connection");
  CHECK(received(mock).empty());  // nothing got past the dead proxy
}

TEST_CASE("network: TLS to a private CA fails as connection until ca_bundle trusts it",
          "[providers][network][tls]") {
  TempDir certs;
  if (!make_certificates(certs)) {
    WARN("the openssl command-line tool is not available: TLS tests skipped");
    return;
  }
  TlsServer server(certs);
  TempDir dir;
  dir.write("certs/ca.pem", certs.read("ca.pem"));
  const std::string config =
      dir.write("config.toml",
                openai_provider("untrusted", server.base_url()) +
                    openai_provider("bundled", server.base_url(),
                                    "ca_bundle = \"" + certs.file("ca.pem") + "\"") +
                    // Relative to the config file's directory, not to the working directory.
                    openai_provider("relative", server.base_url(), "ca_bundle = \"certs/ca.pem\"") +
                    openai_provider("wrong", server.base_url(),
                                    "ca_bundle = \"" + certs.file("other-ca.pem") + "\""));
  auto ask = [&](const std::string& target, std::map<std::string, std::string> env = {}) {
    env["TEST_KEY"] = kKey;
    return run_detour(
        config, {"--state", "memory", "ask", "--json", "--retries", "0", "-m", target, "hi"}, env);
  };

  // The system's CAs do not know this one: verification fails, nothing is sent.
  for (const std::string target : {"untrusted/m", "wrong/m"}) {
    const RunResult r = ask(target);
    INFO(target << "\n" << r.out << r.err);
    CHECK(r.exit_code == 1);
    json j = json_out(r);
    CHECK(j["error"]["class"] == "connection");
    CHECK(j["error"]["status"].is_null());
    CHECK(lower(j["error"]["message"].dump()).find("certificate") != std::string::npos);
  }
  CHECK(server.requests() == 0);

  for (const std::string target : {"bundled/m", "relative/m"}) {
    const RunResult r = ask(target);
    INFO(target << "\n" << r.out << r.err);
    CHECK(r.exit_code == 0);
    json j = json_out(r);
    CHECK(j["ok"] == true);
    CHECK(j["content"] == "tls reply to: hi");
  }
  CHECK(server.requests() == 2);

  // health's probe goes the same way.
  const RunResult health = run_detour(
      config, {"--state", "memory", "health", "--format", "json", "bundled", "untrusted"},
      {{"TEST_KEY", kKey}});
  INFO(health.out << health.err);
  json h = json_out(health);
  REQUIRE(h.is_array());
  REQUIRE(h.size() == 2);
  for (json& row : h) {
    if (row["target"] == "bundled") CHECK(row["status"] == "ok");
    if (row["target"] == "untrusted") CHECK(row["status"] == "down");
  }
}

TEST_CASE("network: SSL_CERT_FILE and SSL_CERT_DIR trust a CA; ca_bundle comes first",
          "[providers][network][tls]") {
  TempDir certs;
  if (!make_certificates(certs)) {
    WARN("the openssl command-line tool is not available: TLS tests skipped");
    return;
  }
  TlsServer server(certs);
  TempDir dir;
  const std::string config = dir.write(
      "config.toml", openai_provider("plain", server.base_url()) +
                         openai_provider("pinned", server.base_url(),
                                         "ca_bundle = \"" + certs.file("other-ca.pem") + "\""));
  auto ask = [&](const std::string& target, const std::string& variable, const std::string& path) {
    return run_detour(config,
                      {"--state", "memory", "ask", "--json", "--retries", "0", "-m", target, "hi"},
                      {{"TEST_KEY", kKey}, {variable, path}});
  };
  for (const auto& [variable, path] : std::vector<std::pair<std::string, std::string>>{
           {"SSL_CERT_FILE", certs.file("ca.pem")}, {"SSL_CERT_DIR", certs.file("hashed")}}) {
    const RunResult r = ask("plain/m", variable, path);
    INFO(variable << "\n" << r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(json_out(r)["content"] == "tls reply to: hi");
  }
  // The provider's ca_bundle is what it trusts, whatever SSL_CERT_FILE says.
  const RunResult pinned = ask("pinned/m", "SSL_CERT_FILE", certs.file("ca.pem"));
  INFO(pinned.out << pinned.err);
  CHECK(pinned.exit_code == 1);
  CHECK(json_out(pinned)["error"]["class"] == "connection");
  CHECK(server.requests() == 2);
}

TEST_CASE("network: https_proxy tunnels TLS with CONNECT, and the certificate is still checked",
          "[providers][network][tls]") {
  TempDir certs;
  if (!make_certificates(certs)) {
    WARN("the openssl command-line tool is not available: TLS tests skipped");
    return;
  }
  TlsServer server(certs);
  ForwardProxy proxy;
  TempDir dir;
  const std::string config =
      dir.write("config.toml", openai_provider("bundled", server.base_url(),
                                               "ca_bundle = \"" + certs.file("ca.pem") + "\"") +
                                   openai_provider("untrusted", server.base_url()));
  const std::map<std::string, std::string> env = {{"TEST_KEY", kKey}, {"https_proxy", proxy.url()}};
  const RunResult r = run_detour(
      config, {"--state", "memory", "ask", "--json", "-m", "bundled/m", "tunnelled"}, env);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(json_out(r)["content"] == "tls reply to: tunnelled");
  const RunResult bad = run_detour(
      config, {"--state", "memory", "ask", "--json", "--retries", "0", "-m", "untrusted/m", "hi"},
      env);
  INFO(bad.out << bad.err);
  CHECK(bad.exit_code == 1);
  CHECK(json_out(bad)["error"]["class"] == "connection");

  const std::string port = server.base_url().substr(std::string("https://127.0.0.1:").size());
  const std::string connect = "CONNECT 127.0.0.1:" + port.substr(0, port.find('/')) + " HTTP/1.1";
  const std::vector<std::string> seen = proxy.requests();
  INFO("proxy saw " << json(seen).dump());
  CHECK(seen.size() == 2);
  for (const auto& line : seen)
    CHECK(line == connect);
  CHECK(server.requests() == 1);
}

TEST_CASE("network: an unreadable ca_bundle or SSL_CERT_FILE is a config error",
          "[providers][network]") {
  MockServer mock;
  TempDir dir;
  const std::string missing = dir.file("no-such-ca.pem");
  const std::string config = dir.write(
      "config.toml",
      openai_provider("corp", mock.url() + "/v1", "ca_bundle = \"" + missing + "\"") +
          openai_provider("rel", mock.url() + "/v1", "ca_bundle = \"certs/missing.pem\"") +
          openai_provider("plain", mock.url() + "/v1"));
  for (const std::string target : {"corp/m", "rel/m"}) {
    const RunResult r = run_detour(config, {"ask", "-m", target, "hi"}, {{"TEST_KEY", kKey}});
    INFO(r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("provider " + target.substr(0, target.find('/'))) != std::string::npos);
    CHECK(r.err.find("ca_bundle") != std::string::npos);
  }
  // The path is named as it is used: a relative one resolved against the config's directory.
  const RunResult corp = run_detour(config, {"ask", "-m", "corp/m", "hi"}, {{"TEST_KEY", kKey}});
  CHECK(corp.err.find(missing) != std::string::npos);
  const RunResult rel = run_detour(config, {"ask", "-m", "rel/m", "hi"}, {{"TEST_KEY", kKey}});
  CHECK(rel.err.find(dir.file("certs/missing.pem")) != std::string::npos);

  // A file that is there but cannot be read. As root (CI) the child runs as `nobody`, since
  // root reads any file; the directory and config are opened to that user, the CA file is not.
  {
    const std::string locked = dir.write("locked-ca.pem", "-----BEGIN CERTIFICATE-----\n");
    const std::string locked_config =
        dir.write("locked.toml",
                  openai_provider("locked", mock.url() + "/v1", "ca_bundle = \"" + locked + "\""));
    REQUIRE(::chmod(locked.c_str(), 0) == 0);
    RunOptions options;
    options.env = {{"TEST_KEY", kKey}};
    options.run_as_uid = kNobody;
    options.run_as_gid = kNobody;
    if (drops_privileges(options)) {
      REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
      REQUIRE(::chmod(locked_config.c_str(), 0644) == 0);
    }
    const RunResult r =
        run({detour_bin(), "-c", locked_config, "ask", "-m", "locked/m", "hi"}, options);
    INFO(r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("provider locked") != std::string::npos);
    CHECK(r.err.find(locked) != std::string::npos);
  }

  const RunResult env_file = run_detour(config, {"ask", "-m", "plain/m", "hi"},
                                        {{"TEST_KEY", kKey}, {"SSL_CERT_FILE", missing}});
  INFO(env_file.err);
  CHECK(env_file.exit_code == 3);
  CHECK(env_file.err.find("SSL_CERT_FILE") != std::string::npos);
  CHECK(received(mock).empty());
}
