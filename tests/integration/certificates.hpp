#pragma once
// Certificates for the TLS tests, made at test time with the `openssl` command-line tool
// (Debian package `openssl`, installed by scripts/deps): a private CA, a second unrelated CA,
// a server certificate for 127.0.0.1 and localhost and a client certificate, both signed by
// the first.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness.hpp"

namespace detour::testing {

// A private CA, a second unrelated CA, and a server certificate for 127.0.0.1 and localhost
// signed by the first, in `dir`: ca.pem, other-ca.pem, server.pem, server.key, client.pem,
// client.key (a client certificate from the first CA), and hashed/ (the CA under its subject
// hash, for SSL_CERT_DIR). False when openssl cannot be run.
inline bool make_certificates(const TempDir& dir) {
  const std::string d = dir.path() + "/";
  auto openssl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    RunOptions options;
    options.cwd = dir.path();
    const RunResult r = run(args, options);
    INFO("openssl " << args[1] << ": " << r.err);
    return r.exit_code == 0;
  };
  auto ca = [&](const std::string& name, const std::string& cn) {
    return openssl({"req",
                    "-x509",
                    "-config",
                    "/dev/null",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    d + name + ".key",
                    "-out",
                    d + name + ".pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=" + cn,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign"});
  };
  dir.write("server.ext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n");
  const bool made = ca("ca", "detour test CA") && ca("other-ca", "detour other CA") &&
                    openssl({"req", "-new", "-config", "/dev/null", "-newkey", "ec", "-pkeyopt",
                             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d + "server.key",
                             "-out", d + "server.csr", "-subj", "/CN=127.0.0.1"}) &&
                    openssl({"x509", "-req", "-in", d + "server.csr", "-CA", d + "ca.pem", "-CAkey",
                             d + "ca.key", "-set_serial", "1", "-days", "2", "-extfile",
                             d + "server.ext", "-out", d + "server.pem"});
  dir.write("client.ext",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=clientAuth\n");
  const bool client =
      made &&
      openssl({"req", "-new", "-config", "/dev/null", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d + "client.key", "-out",
               d + "client.csr", "-subj", "/CN=detour client"}) &&
      openssl({"x509", "-req", "-in", d + "client.csr", "-CA", d + "ca.pem", "-CAkey", d + "ca.key",
               "-set_serial", "2", "-days", "2", "-extfile", d + "client.ext", "-out",
               d + "client.pem"});
  if (!client) return false;
  dir.write("hashed/ca.pem", dir.read("ca.pem"));
  return openssl({"rehash", d + "hashed"});
}

}  // namespace detour::testing
