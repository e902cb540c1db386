#include "server/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace sipwake::server {
namespace {

using transport::Protocol;

Config parseOk(std::string_view text) {
  auto r = parseConfig(text, "test.toml");
  EXPECT_TRUE(r.isOk()) << r.status().message();
  return r.isOk() ? *r : defaultConfig();
}

std::string parseError(std::string_view text) {
  auto r = parseConfig(text, "test.toml");
  EXPECT_FALSE(r.isOk());
  return r.isOk() ? std::string() : r.status().message();
}

// A file that exists for the life of the test.
class TempFile {
 public:
  explicit TempFile(std::string_view content) {
    char name[] = "/tmp/sipwake-config-test-XXXXXX";
    int fd = ::mkstemp(name);
    EXPECT_GE(fd, 0);
    ::close(fd);
    path_ = name;
    std::ofstream(path_) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ConfigTest, EmptyFileGivesDefaults) {
  Config c = parseOk("");
  EXPECT_EQ(c.workers, 0u);
  EXPECT_GE(c.effectiveWorkers(), 1u);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.log_format, "text");
  EXPECT_EQ(c.domains, (std::vector<std::string>{"localhost", "127.0.0.1"}));
  EXPECT_EQ(c.listeners, defaultListeners());
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].toString(), "udp:127.0.0.1:5060");
  EXPECT_EQ(c.listeners[1].toString(), "tcp:127.0.0.1:5060");
  EXPECT_EQ(c.listeners[2].toString(), "tls:127.0.0.1:5061");
  EXPECT_TRUE(c.hasTlsListener());
  EXPECT_EQ(c.limits.max_message_bytes, 65535u);
  EXPECT_EQ(c.timers.t1_ms, 500u);
  EXPECT_EQ(c.timers.t2_ms, 4000u);
  EXPECT_EQ(c.timers.t4_ms, 5000u);
  EXPECT_EQ(c.store.path, "sipwake.db");
  EXPECT_TRUE(validateConfig(c).isOk());
}

TEST(ConfigTest, FullFile) {
  TempFile cert("cert"), key("key"), ca("ca");
  std::string text = R"(
[server]
workers = 2
log_level = "debug"
log_format = "json"
domains = ["Example.COM", "10.0.0.1"]

[[listen]]
transport = "udp"
address = "::1"
port = 5070

[[listen]]
transport = "tls"
address = "[::]"

[tls]
certificate = ")" + cert.path() +
                     R"("
private_key = ")" + key.path() +
                     R"("
ca_file = ")" + ca.path() +
                     R"("
verify = "require"

[limits]
max_message_bytes = 4096
max_headers = 64
max_line_bytes = 1024
max_connections_per_ip = 10
connection_idle_timeout = 60

[timers]
t1_ms = 100
t2_ms = 400
t4_ms = 500

[store]
path = "/var/lib/sipwake/x.db"
)";
  Config c = parseOk(text);
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.effectiveWorkers(), 2u);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.domains, (std::vector<std::string>{"example.com", "10.0.0.1"}));
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].protocol, Protocol::kUdp);
  EXPECT_EQ(c.listeners[0].address, "::1");
  EXPECT_EQ(c.listeners[0].port, 5070);
  EXPECT_EQ(c.listeners[0].toString(), "udp:[::1]:5070");
  EXPECT_EQ(c.listeners[1].protocol, Protocol::kTls);
  EXPECT_EQ(c.listeners[1].address, "::");
  EXPECT_EQ(c.listeners[1].port, 5061);  // TLS default port
  EXPECT_EQ(c.tls.certificate, cert.path());
  EXPECT_EQ(c.tls.private_key, key.path());
  EXPECT_EQ(c.tls.ca_file, ca.path());
  EXPECT_EQ(c.tls.verify, TlsVerify::kRequire);
  EXPECT_EQ(c.limits.max_message_bytes, 4096u);
  EXPECT_EQ(c.limits.max_headers, 64u);
  EXPECT_EQ(c.limits.max_line_bytes, 1024u);
  EXPECT_EQ(c.limits.max_connections_per_ip, 10u);
  EXPECT_EQ(c.limits.connection_idle_timeout_s, 60u);
  EXPECT_EQ(c.timers.t1_ms, 100u);
  EXPECT_EQ(c.timers.t2_ms, 400u);
  EXPECT_EQ(c.timers.t4_ms, 500u);
  EXPECT_EQ(c.store.path, "/var/lib/sipwake/x.db");
}

TEST(ConfigTest, WrongTypeNamesKeyAndLine) {
  EXPECT_EQ(parseError("[limits]\nmax_message_bytes = 4096\nmax_headers = \"abc\"\n"),
            "test.toml:3: [limits] max_headers: expected a positive integer, got \"abc\"");
}

TEST(ConfigTest, UnknownKeyNamesKeyAndLine) {
  EXPECT_EQ(parseError("[server]\nworkers = 2\n\n[timers]\nt3_ms = 5\n"),
            "test.toml:5: [timers] t3_ms: unknown key");
}

TEST(ConfigTest, UnknownSection) {
  std::string e = parseError("\n[sever]\nworkers = 1\n");
  EXPECT_EQ(e.rfind("test.toml:2: sever: unknown key", 0), 0u) << e;
}

TEST(ConfigTest, FirstBadKeyInFileOrder) {
  // toml++ keeps keys sorted; the error reported must still be the first one in the file.
  std::string e = parseError("[server]\nworkers = \"x\"\n[limits]\nmax_headers = -1\n");
  EXPECT_EQ(e.rfind("test.toml:2: [server] workers:", 0), 0u) << e;
  e = parseError("[server]\nzz = 1\naa = 2\n");
  EXPECT_EQ(e, "test.toml:2: [server] zz: unknown key");
}

TEST(ConfigTest, SyntaxErrorHasLine) {
  std::string e = parseError("[server]\nworkers = 2\nlog_level = \n");
  EXPECT_EQ(e.rfind("test.toml:3: TOML syntax error", 0), 0u) << e;
}

TEST(ConfigTest, RangeAndChoiceErrors) {
  EXPECT_EQ(parseError("[server]\nworkers = 0\n"),
            "test.toml:2: [server] workers: expected an integer from 1 to 1024, got 0");
  EXPECT_EQ(parseError("[server]\nlog_format = \"xml\"\n"),
            "test.toml:2: [server] log_format: expected one of \"text\", \"json\", got \"xml\"");
  EXPECT_NE(parseError("[server]\nlog_level = \"loud\"\n").find("log_level"), std::string::npos);
  EXPECT_NE(parseError("[server]\ndomains = \"a\"\n").find("expected an array of strings"),
            std::string::npos);
  EXPECT_NE(parseError("[server]\ndomains = [1]\n").find("expected a string, got 1"),
            std::string::npos);
  EXPECT_EQ(parseError("[tls]\nverify = true\n"),
            "test.toml:2: [tls] verify: expected a string, got true");
  EXPECT_EQ(parseError("[limits]\nmax_headers = 1.5\n"),
            "test.toml:2: [limits] max_headers: expected a positive integer, got 1.5");
  EXPECT_EQ(parseError("[timers]\nt1_ms = 500\nt2_ms = 100\n"),
            "test.toml:3: [timers] t2_ms: must not be smaller than t1_ms (500)");
  EXPECT_EQ(parseError("[store]\npath = \"\"\n"), "test.toml:2: [store] path: must not be empty");
  EXPECT_EQ(parseError("server = 1\n"), "test.toml:1: server: expected a table ([server]), got 1");
}

TEST(ConfigTest, RouteKeys) {
  Config c = parseOk("[proxy]\nroute_key_rotation = 600\nroute_key_overlap = 7200\n");
  EXPECT_EQ(c.proxy.route_key_rotation_s, 600u);
  EXPECT_EQ(c.proxy.route_key_overlap_s, 7200u);
  EXPECT_TRUE(c.proxy.route_secret_file.empty());
  // A key id names one of 4096 epochs: at most 3999 retired keys may verify at once.
  EXPECT_EQ(parseError("[proxy]\nroute_key_rotation = 60\nroute_key_overlap = 240000\n"),
            "test.toml:3: [proxy] route_key_overlap: must be less than 4000 x route_key_rotation");
  EXPECT_EQ(parseError("[proxy]\nroute_key_rotation = 59\n"),
            "test.toml:2: [proxy] route_key_rotation: expected an integer from 60 to 31536000, got "
            "59");
  EXPECT_NE(parseError("[proxy]\nroute_secret_file = \"/nonexistent/route.secret\"\n")
                .find("cannot read file"),
            std::string::npos);
}

TEST(ConfigTest, ListenErrors) {
  EXPECT_EQ(parseError("[[listen]]\ntransport = \"sctp\"\n"),
            "test.toml:2: [[listen]] #1 transport: expected one of \"udp\", \"tcp\", \"tls\", got "
            "\"sctp\"");
  EXPECT_EQ(parseError("[[listen]]\ntransport = \"udp\"\n[[listen]]\ntransport = \"tcp\"\nport = "
                       "70000\n"),
            "test.toml:5: [[listen]] #2 port: expected an integer from 1 to 65535, got 70000");
  EXPECT_EQ(parseError("[[listen]]\ntransport = \"udp\"\naddress = \"localhost\"\n"),
            "test.toml:3: [[listen]] #1 address: expected an IPv4 or IPv6 address, got "
            "\"localhost\"");
  EXPECT_EQ(parseError("[[listen]]\nport = 5060\n"),
            "test.toml:1: [[listen]] #1: missing key transport");
  EXPECT_EQ(parseError("[[listen]]\ntransport = \"udp\"\nfoo = 1\n"),
            "test.toml:3: [[listen]] #1 foo: unknown key");
  EXPECT_NE(parseError("[listen]\ntransport = \"udp\"\n").find("expected an array of tables"),
            std::string::npos);
  EXPECT_NE(parseError("[[listen]]\ntransport = \"udp\"\n[[listen]]\ntransport = \"udp\"\n")
                .find("listed twice"),
            std::string::npos);
}

TEST(ConfigTest, TlsRules) {
  TempFile cert("x");
  // Non-loopback TLS without a certificate: refused, pointing at the listener.
  EXPECT_EQ(parseError("[[listen]]\ntransport = \"tls\"\naddress = \"0.0.0.0\"\n")
                .rfind("test.toml:1: [[listen]] tls:0.0.0.0:5061: a TLS listener on a "
                       "non-loopback address needs",
                       0),
            0u);
  // Loopback TLS without a certificate: fine (ephemeral certificate at start-up).
  parseOk("[[listen]]\ntransport = \"tls\"\naddress = \"::1\"\n");
  // Certificate without key.
  EXPECT_EQ(parseError("\n[tls]\ncertificate = \"" + cert.path() + "\"\n"),
            "test.toml:2: [tls]: certificate and private_key must be given together");
  // Missing file.
  EXPECT_EQ(parseError("[tls]\nca_file = \"/nonexistent/ca.pem\"\n"),
            "test.toml:2: [tls] ca_file: cannot read file \"/nonexistent/ca.pem\"");
}

TEST(ConfigTest, ValidateAfterOverride) {
  Config c = defaultConfig();
  c.listeners = {{Protocol::kTls, "192.0.2.1", 5061}};
  Status s = validateConfig(c);
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("tls:192.0.2.1:5061"), std::string::npos);
  c.listeners.clear();
  EXPECT_FALSE(validateConfig(c).isOk());
}

TEST(ConfigTest, LoadFile) {
  TempFile f("[server]\nworkers = 3\n");
  auto r = loadConfigFile(f.path());
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->workers, 3u);
  auto missing = loadConfigFile("/nonexistent/sipwake.toml");
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().message(), "/nonexistent/sipwake.toml: cannot open file");
  TempFile bad("[limits]\n\nmax_headers = \"abc\"\n");
  auto b = loadConfigFile(bad.path());
  ASSERT_FALSE(b.isOk());
  EXPECT_EQ(b.status().message(),
            bad.path() + ":3: [limits] max_headers: expected a positive integer, got \"abc\"");
}

// What a reload compares: every key the file gave, by "[table] key", with its value and line.
TEST(ConfigTest, GivenKeysAndDrainTimeout) {
  Config d = parseOk("");
  EXPECT_EQ(d.drain_timeout_s, 10u);
  EXPECT_TRUE(d.given.empty());
  auto r = parseConfig(
      "[server]\ndrain_timeout = 0\nlog_level = \"debug\"\n\n[[listen]]\n"
      "transport = \"udp\"\nport = 5070\n\n[push]\n[[push.app]]\nprovider = \"webpush\"\n"
      "id = \"w\"\nurl = \"https://push.example.com/\"\n",
      "f.toml");
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->drain_timeout_s, 0u);
  EXPECT_EQ(r->source, "f.toml");
  EXPECT_EQ(r->given.at("[server] drain_timeout"), (GivenKey{"0", 2}));
  EXPECT_EQ(r->given.at("[server] log_level"), (GivenKey{"\"debug\"", 3}));
  EXPECT_EQ(r->given.at("[[listen]] #1 port").line, 7u);
  EXPECT_EQ(r->given.at("[[push.app]] #1 id").value, "\"w\"");
  EXPECT_NE(r->given.count("[push] app"), 0u);
  auto bad = parseConfig("[server]\ndrain_timeout = 4000\n", "f.toml");
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().message(),
            "f.toml:2: [server] drain_timeout: expected an integer from 0 to 3600, got 4000");
}

TEST(ConfigTest, ExampleConfigIsValid) {
  auto r = loadConfigFile(SIPWAKE_SOURCE_DIR "/config/sipwake.example.toml");
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->listeners, defaultListeners());
}

TEST(ConfigTest, RegistrarAuthStoreProxyDefaults) {
  Config c = parseOk("");
  EXPECT_EQ(c.registrar.min_expires, 60u);
  EXPECT_EQ(c.registrar.max_expires, 86400u);
  EXPECT_EQ(c.registrar.default_expires, 3600u);
  EXPECT_EQ(c.registrar.max_contacts_per_aor, 10u);
  EXPECT_EQ(c.registrar.sweep_interval_s, 60u);
  EXPECT_EQ(c.auth.algorithms, (std::vector<std::string>{"SHA-256", "MD5"}));
  EXPECT_EQ(c.auth.nonce_ttl_s, 300u);
  EXPECT_TRUE(c.auth.trusted_peers.empty());
  EXPECT_TRUE(c.auth.require_auth_for_register);
  EXPECT_EQ(c.auth.max_failures, 10u);
  EXPECT_EQ(c.auth.user_reload_interval_s, 5u);
  EXPECT_EQ(c.auth.md5_only_user_agents, (std::vector<std::string>{"baresip"}));
  EXPECT_TRUE(c.auth.md5_only_without_user_agent);
  EXPECT_EQ(c.auth.uri_check, "equivalent");
  EXPECT_EQ(c.store.path, "sipwake.db");
  EXPECT_FALSE(c.store.synchronous_full);
  EXPECT_TRUE(c.proxy.outbound_proxy.empty());
}

TEST(ConfigTest, RegistrarAuthStoreProxyKeys) {
  Config c = parseOk(
      "[registrar]\nmin_expires = 30\nmax_expires = 7200\ndefault_expires = 600\n"
      "max_contacts_per_aor = 0\nsweep_interval = 10\n"
      "[auth]\nalgorithms = [\"md5\"]\nnonce_ttl = 60\ntrusted_peers = [\"10.0.0.0/8\", \"::1\"]\n"
      "require_auth_for_register = false\nmax_failures = 0\nfailure_window = 30\nblock = 300\n"
      "user_reload_interval = 0\nmd5_only_user_agents = [\"MicroSIP/3.\", \"baresip\"]\n"
      "md5_only_without_user_agent = false\nuri_check = \"strict\"\n"
      "[store]\npath = \"/var/lib/sipwake/s.db\"\nsynchronous = \"full\"\n"
      "url = \"rediss://r.example.net:6380/2\"\nredis_ca_file = \"/etc/r.pem\"\n"
      "redis_prefix = \"pbx1:\"\n"
      "[proxy]\noutbound_proxy = \"sip:proxy.example.net;lr\"\n");
  EXPECT_EQ(c.store.url, "rediss://r.example.net:6380/2");
  EXPECT_EQ(c.store.redis_ca_file, "/etc/r.pem");
  EXPECT_EQ(c.store.redis_prefix, "pbx1:");
  EXPECT_EQ(c.registrar.min_expires, 30u);
  EXPECT_EQ(c.registrar.max_expires, 7200u);
  EXPECT_EQ(c.registrar.default_expires, 600u);
  EXPECT_EQ(c.registrar.max_contacts_per_aor, 0u);
  EXPECT_EQ(c.registrar.sweep_interval_s, 10u);
  EXPECT_EQ(c.auth.algorithms, std::vector<std::string>{"MD5"});
  EXPECT_EQ(c.auth.nonce_ttl_s, 60u);
  EXPECT_EQ(c.auth.trusted_peers.size(), 2u);
  EXPECT_FALSE(c.auth.require_auth_for_register);
  EXPECT_EQ(c.auth.max_failures, 0u);
  EXPECT_EQ(c.auth.failure_window_s, 30u);
  EXPECT_EQ(c.auth.block_s, 300u);
  EXPECT_EQ(c.auth.user_reload_interval_s, 0u);
  EXPECT_EQ(c.auth.md5_only_user_agents, (std::vector<std::string>{"MicroSIP/3.", "baresip"}));
  EXPECT_FALSE(c.auth.md5_only_without_user_agent);
  EXPECT_EQ(c.auth.uri_check, "strict");
  EXPECT_EQ(c.store.path, "/var/lib/sipwake/s.db");
  EXPECT_TRUE(c.store.synchronous_full);
  EXPECT_EQ(c.proxy.outbound_proxy, "sip:proxy.example.net;lr");
}

TEST(ConfigTest, RegistrarAuthErrorsNameKeyAndLine) {
  EXPECT_EQ(parseError("[registrar]\nmin_expires = 0\n"),
            "test.toml:2: [registrar] min_expires: expected an integer from 1 to 31449600, got 0");
  EXPECT_EQ(parseError("[registrar]\nmin_expires = 600\nmax_expires = 60\n"),
            "test.toml:3: [registrar] max_expires: must not be smaller than min_expires (600)");
  EXPECT_EQ(parseError("[registrar]\n\ndefault_expires = 90000\n"),
            "test.toml:3: [registrar] default_expires: must be from min_expires (60) to "
            "max_expires (86400)");
  EXPECT_EQ(parseError("[registrar]\nmax_contacts_per_aor = -1\n"),
            "test.toml:2: [registrar] max_contacts_per_aor: expected an integer from 0 to 100000, "
            "got -1");
  EXPECT_EQ(parseError("[auth]\nalgorithms = []\n"),
            "test.toml:2: [auth] algorithms: must name at least one algorithm (\"SHA-256\", "
            "\"MD5\")");
  EXPECT_EQ(parseError("[auth]\nalgorithms = [\"SHA-512-256\"]\n"),
            "test.toml:2: [auth] algorithms: unknown algorithm \"SHA-512-256\" (expected "
            "\"SHA-256\" or \"MD5\")");
  EXPECT_EQ(parseError("[auth]\nalgorithms = [\"MD5\", \"md5\"]\n"),
            "test.toml:2: [auth] algorithms: algorithm \"MD5\" listed twice");
  EXPECT_EQ(parseError("[auth]\nalgorithms = \"MD5\"\n"),
            "test.toml:2: [auth] algorithms: expected an array of strings, got \"MD5\"");
  EXPECT_EQ(parseError("[auth]\nuri_check = \"loose\"\n"),
            "test.toml:2: [auth] uri_check: expected one of \"equivalent\", \"strict\", \"off\", "
            "got \"loose\"");
  EXPECT_EQ(parseError("[auth]\nmd5_only_user_agents = [\"\"]\n"),
            "test.toml:2: [auth] md5_only_user_agents: must not be empty");
  EXPECT_EQ(parseError("[auth]\nmd5_only_without_user_agent = 1\n"),
            "test.toml:2: [auth] md5_only_without_user_agent: expected true or false, got 1");
  EXPECT_NE(parseError("[auth]\ntrusted_peers = [\"10.0.0.0/40\"]\n")
                .find("test.toml:2: [auth] trusted_peers: "),
            std::string::npos);
  EXPECT_EQ(parseError("[auth]\nrequire_auth_for_register = 1\n"),
            "test.toml:2: [auth] require_auth_for_register: expected true or false, got 1");
  EXPECT_EQ(parseError("[auth]\nnonce_ttl = 5\n"),
            "test.toml:2: [auth] nonce_ttl: expected an integer from 10 to 86400, got 5");
  EXPECT_EQ(parseError("[auth]\nblock = 0\n"),
            "test.toml:2: [auth] block: expected an integer from 1 to 86400, got 0");
  EXPECT_EQ(parseError("[auth]\nfailure_window = 0\n"),
            "test.toml:2: [auth] failure_window: expected an integer from 1 to 86400, got 0");
  EXPECT_EQ(parseError("[auth]\nmax_failures = \"x\"\n"),
            "test.toml:2: [auth] max_failures: expected an integer from 0 to 1000000, got \"x\"");
  EXPECT_EQ(
      parseError("[auth]\nuser_reload_interval = -1\n"),
      "test.toml:2: [auth] user_reload_interval: expected an integer from 0 to 86400, got -1");
  EXPECT_EQ(parseError("[auth]\nsecret = \"x\"\n"), "test.toml:2: [auth] secret: unknown key");
  EXPECT_EQ(parseError("[store]\nsynchronous = \"off\"\n"),
            "test.toml:2: [store] synchronous: expected one of \"normal\", \"full\", got \"off\"");
  EXPECT_EQ(parseError("[store]\npath = \"\"\n"), "test.toml:2: [store] path: must not be empty");
  EXPECT_EQ(parseError("[store]\n\nurl = \"http://r:6379\"\n").rfind("test.toml:3: [store] url: ", 0),
            0u);
  EXPECT_EQ(parseError("[store]\nredis_prefix = \"\"\n"),
            "test.toml:2: [store] redis_prefix: must not be empty");
  EXPECT_EQ(parseError("[registrar]\nsweep_interval = 0\n"),
            "test.toml:2: [registrar] sweep_interval: expected an integer from 1 to 86400, got 0");
}

TEST(ConfigTest, RepushIntervalsPerProviderAndBound) {
  Config d = parseOk("[push]\n");
  EXPECT_EQ(d.push.repush_interval_apns_s, 5u);
  EXPECT_EQ(d.push.repush_interval_fcm_s, 5u);
  EXPECT_EQ(d.push.repush_interval_webpush_s, 5u);
  EXPECT_EQ(d.push.max_repushes, 2u);
  Config c = parseOk(
      "[push]\nrepush_interval_apns = 3\nrepush_interval_fcm = 4\n"
      "repush_interval_webpush = 6\nmax_repushes = 0\n");
  EXPECT_EQ(c.push.repush_interval_apns_s, 3u);
  EXPECT_EQ(c.push.repush_interval_fcm_s, 4u);
  EXPECT_EQ(c.push.repush_interval_webpush_s, 6u);
  EXPECT_EQ(c.push.max_repushes, 0u);
  EXPECT_EQ(parseError("[push]\nmax_repushes = 11\n"),
            "test.toml:2: [push] max_repushes: expected an integer from 0 to 10, got 11");
}

TEST(ConfigTest, PushAppsWithCredentials) {
  Config c = parseOk(
      "[push]\nring_timeout = 20\n"
      "[[push.app]]\nprovider = \"apns\"\nid = \"com.example.app\"\n"
      "key_file = \"/etc/sipwake/apns.p8\"\nkey_id = \"ABCDE12345\"\nteam_id = \"TEAM123456\"\n"
      "endpoint = \"https://127.0.0.1:8443\"\nca_file = \"/etc/sipwake/ca.pem\"\n"
      "use_voip = false\n"
      "[[push.app]]\nprovider = \"apns\"\nid = \"com.example.cert\"\n"
      "cert_file = \"/etc/sipwake/apns.pem\"\n"
      "[[push.app]]\nprovider = \"fcm\"\nid = \"project-id\"\n"
      "service_account_file = \"/etc/sipwake/sa.json\"\n"
      "[[push.app]]\nprovider = \"webpush\"\nid = \"*\"\nurl = \"https://push.example.net/p\"\n"
      "secret_file = \"/etc/sipwake/hook.secret\"\n");
  EXPECT_EQ(c.push.ring_timeout_s, 20u);
  ASSERT_EQ(c.push.apps.size(), 4u);
  const PushApp& apns = c.push.apps[0];
  EXPECT_EQ(apns.provider, "apns");
  EXPECT_EQ(apns.id, "com.example.app");
  EXPECT_EQ(apns.key_file, "/etc/sipwake/apns.p8");
  EXPECT_EQ(apns.key_id, "ABCDE12345");
  EXPECT_EQ(apns.team_id, "TEAM123456");
  EXPECT_EQ(apns.endpoint, "https://127.0.0.1:8443");
  EXPECT_EQ(apns.ca_file, "/etc/sipwake/ca.pem");
  EXPECT_FALSE(apns.use_voip);
  EXPECT_EQ(c.push.apps[1].cert_file, "/etc/sipwake/apns.pem");
  EXPECT_TRUE(c.push.apps[1].use_voip);
  EXPECT_EQ(c.push.apps[2].provider, "fcm");
  EXPECT_EQ(c.push.apps[2].service_account_file, "/etc/sipwake/sa.json");
  EXPECT_EQ(c.push.apps[3].url, "https://push.example.net/p");
  EXPECT_EQ(c.push.apps[3].secret_file, "/etc/sipwake/hook.secret");
}

TEST(ConfigTest, PushFloodLimits) {
  Config d = parseOk("");
  EXPECT_EQ(d.push.wake_for, "anyone");
  EXPECT_EQ(d.push.device_pushes_per_minute, 6u);
  EXPECT_EQ(d.push.stranger_push_burst, 3u);
  EXPECT_EQ(d.push.max_parked_per_aor, 8u);
  Config c = parseOk(
      "[push]\nwake_for = \"trusted\"\ndevice_pushes_per_minute = 10\ndevice_push_burst = 2\n"
      "aor_pushes_per_minute = 30\naor_push_burst = 5\nstranger_pushes_per_minute = 1\n"
      "stranger_push_burst = 1\nmax_parked = 100\nmax_parked_per_source = 4\n"
      "max_parked_per_aor = 3\n");
  EXPECT_EQ(c.push.wake_for, "trusted");
  EXPECT_EQ(c.push.device_pushes_per_minute, 10u);
  EXPECT_EQ(c.push.device_push_burst, 2u);
  EXPECT_EQ(c.push.aor_pushes_per_minute, 30u);
  EXPECT_EQ(c.push.aor_push_burst, 5u);
  EXPECT_EQ(c.push.stranger_pushes_per_minute, 1u);
  EXPECT_EQ(c.push.stranger_push_burst, 1u);
  EXPECT_EQ(c.push.max_parked, 100u);
  EXPECT_EQ(c.push.max_parked_per_source, 4u);
  EXPECT_EQ(c.push.max_parked_per_aor, 3u);
  EXPECT_EQ(parseError("[push]\nwake_for = \"friends\"\n"),
            "test.toml:2: [push] wake_for: expected one of \"anyone\", \"authenticated\", "
            "\"trusted\", got \"friends\"");
  EXPECT_EQ(parseError("[push]\ndevice_push_burst = 0\n"),
            "test.toml:2: [push] device_push_burst: expected an integer from 1 to 100000, got 0");
}

TEST(ConfigTest, PushAppErrorsNameKeyAndLine) {
  EXPECT_EQ(parseError("[push]\n[[push.app]]\nprovider = \"apns\"\nid = \"a\"\n"
                       "key_file = \"k.p8\"\nteam_id = \"T\"\n"),
            "test.toml:2: [[push.app]] #1: provider \"apns\" needs key key_id with key_file and "
            "team_id");
  EXPECT_EQ(parseError("[push]\n[[push.app]]\nprovider = \"apns\"\nid = \"a\"\n"),
            "test.toml:2: [[push.app]] #1: provider \"apns\" needs key_file + key_id + team_id "
            "(token auth) or cert_file [+ cert_key_file]");
  EXPECT_EQ(parseError("[push]\n[[push.app]]\nprovider = \"fcm\"\nid = \"p\"\n"),
            "test.toml:2: [[push.app]] #1: provider \"fcm\" needs key service_account_file");
  EXPECT_EQ(parseError("[push]\n[[push.app]]\nprovider = \"fcm\"\nid = \"p\"\n"
                       "service_account_file = \"sa.json\"\nkey_id = \"K\"\n"),
            "test.toml:6: [[push.app]] #1 key_id: not used by provider \"fcm\"");
  EXPECT_EQ(parseError("[push]\n[[push.app]]\nprovider = \"webpush\"\nid = \"*\"\n"),
            "test.toml:2: [[push.app]] #1: provider \"webpush\" needs key url");
  EXPECT_EQ(parseError("[push]\n[[push.app]]\nprovider = \"fcm\"\nid = \"p\"\n"
                       "service_account_file = \"\"\n"),
            "test.toml:5: [[push.app]] #1 service_account_file: must not be empty");
  EXPECT_EQ(parseError("[push]\n[[push.app]]\nprovider = \"apns\"\nid = \"a\"\n"
                       "cert_file = \"c.pem\"\nendpoint = \"http://127.0.0.1:1\"\n"),
            "test.toml:6: [[push.app]] #1 endpoint: expected \"https://host[:port]\"");
  EXPECT_EQ(parseError("[push]\n[[push.app]]\nprovider = \"apns\"\nid = \"a\"\n"
                       "cert_file = \"c.pem\"\nuse_voip = \"yes\"\n"),
            "test.toml:6: [[push.app]] #1 use_voip: expected true or false, got \"yes\"");
}

TEST(ConfigTest, WildcardApnsAppNeedsTokenAuth) {
  // A certificate is issued for one bundle id: "*" cannot work with it.
  EXPECT_EQ(parseError("[push]\n[[push.app]]\nprovider = \"apns\"\nid = \"*\"\n"
                       "cert_file = \"c.pem\"\n"),
            "test.toml:4: [[push.app]] #1 id: \"*\" needs token auth (key_file + key_id + "
            "team_id): a certificate is issued for one app");
  const Config c = parseOk(
      "[push]\n[[push.app]]\nprovider = \"apns\"\nid = \"*\"\nkey_file = \"k.p8\"\n"
      "key_id = \"K\"\nteam_id = \"T\"\n[[push.app]]\nprovider = \"fcm\"\nid = \"*\"\n"
      "service_account_file = \"sa.json\"\n");
  ASSERT_EQ(c.push.apps.size(), 2u);
  EXPECT_EQ(c.push.apps[0].id, "*");
}

TEST(ConfigTest, ParkedProvisional) {
  EXPECT_EQ(parseOk("").push.parked_provisional, 180);
  EXPECT_EQ(parseOk("[push]\nparked_provisional = 183\n").push.parked_provisional, 183);
  EXPECT_EQ(parseOk("[push]\nparked_provisional = \"none\"\n").push.parked_provisional, 0);
  EXPECT_EQ(parseError("[push]\nparked_provisional = 200\n"),
            "test.toml:2: [push] parked_provisional: expected 180, 183 or \"none\", got 200");
  EXPECT_EQ(parseError("[push]\nparked_provisional = \"180 Ringing\"\n"),
            "test.toml:2: [push] parked_provisional: expected 180, 183 or \"none\", got "
            "\"180 Ringing\"");
}

TEST(ConfigTest, ServerHeaderAndCiphers) {
  EXPECT_FALSE(parseOk("").server_header.has_value());
  EXPECT_EQ(parseOk("[server]\nserver_header = \"\"\n").server_header, std::string());
  EXPECT_EQ(parseOk("[server]\nserver_header = \"edge\"\n").server_header, "edge");
  EXPECT_EQ(parseOk("").tls.ciphers, kDefaultTls12Ciphers);
  EXPECT_EQ(parseOk("[tls]\nciphers = \"ECDHE+AESGCM\"\n").tls.ciphers, "ECDHE+AESGCM");
  EXPECT_NE(parseError("[tls]\nciphers = \"\"\n").find("test.toml:2: [tls] ciphers"),
            std::string::npos);
}

TEST(ConfigTest, KeyFilesOthersCanWriteAreRefusedReadableOnesWarned) {
  TempFile cert("cert");
  TempFile key("key");
  const std::string tls = "[tls]\ncertificate = \"" + cert.path() + "\"\nprivate_key = \"" +
                          key.path() + "\"\n";
  // 0600 (mkstemp): nothing to say.
  EXPECT_TRUE(parseOk(tls).warnings.empty());

  ASSERT_EQ(::chmod(key.path().c_str(), 0644), 0);
  Config c = parseOk(tls);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("test.toml:3: [tls] private_key"), std::string::npos)
      << c.warnings[0];
  EXPECT_NE(c.warnings[0].find("read by others"), std::string::npos);
  std::string e = parseError("[server]\nkey_file_permissions = \"strict\"\n" + tls);
  EXPECT_NE(e.find("test.toml:5: [tls] private_key"), std::string::npos) << e;

  ASSERT_EQ(::chmod(key.path().c_str(), 0666), 0);
  e = parseError(tls + "[server]\nkey_file_permissions = \"standard\"\n");
  EXPECT_NE(e.find("test.toml:3: [tls] private_key"), std::string::npos) << e;
  EXPECT_NE(e.find("written by group or others"), std::string::npos) << e;
  c = parseOk(tls + "[server]\nkey_file_permissions = \"warn\"\n");
  EXPECT_EQ(c.warnings.size(), 1u);

  // Push credentials: the .p8 key of an APNs app, checked the same way.
  e = parseError(
      "[[push.app]]\nprovider = \"apns\"\nid = \"com.example.app\"\nkey_file = \"" +
      key.path() + "\"\nkey_id = \"ABC123DEFG\"\nteam_id = \"TEAM123456\"\n");
  EXPECT_NE(e.find("test.toml:4: [[push.app]] #1 key_file"), std::string::npos) << e;
}

TEST(AddressTest, Literals) {
  EXPECT_TRUE(isIpLiteral("127.0.0.1"));
  EXPECT_TRUE(isIpLiteral("::1"));
  EXPECT_TRUE(isIpLiteral("fe80::1"));
  EXPECT_FALSE(isIpLiteral("[::1]"));
  EXPECT_FALSE(isIpLiteral("localhost"));
  EXPECT_FALSE(isIpLiteral("1.2.3"));
  EXPECT_TRUE(isLoopbackAddress("127.0.0.1"));
  EXPECT_TRUE(isLoopbackAddress("127.1.2.3"));
  EXPECT_TRUE(isLoopbackAddress("::1"));
  EXPECT_FALSE(isLoopbackAddress("0.0.0.0"));
  EXPECT_FALSE(isLoopbackAddress("::"));
  EXPECT_FALSE(isLoopbackAddress("10.0.0.1"));
}

TEST(ConfigTest, EdgeOffByDefault) { EXPECT_FALSE(parseOk("").edge.enabled); }

TEST(ConfigTest, EdgeOwnMode) {
  Config c = parseOk(
      "[server]\ndomains = [\"pbx.example.com\"]\n[edge]\n"
      "upstream = \"10.0.0.5:5080;transport=tcp\"\ndomains = [\"PBX.example.com\"]\n"
      "mode = \"own\"\nupstream_expires = 600\nrefresh_before = 100\n");
  EXPECT_TRUE(c.edge.enabled);
  EXPECT_EQ(c.edge.upstream, "10.0.0.5:5080;transport=tcp");
  EXPECT_EQ(c.edge.domains, std::vector<std::string>{"pbx.example.com"});
  EXPECT_EQ(c.edge.mode, "own");
  EXPECT_EQ(c.edge.upstream_expires, 600u);
  EXPECT_EQ(c.edge.refresh_before, 100u);
}

TEST(ConfigTest, EdgeModeIsRelayUnlessSaid) {
  Config c = parseOk("[edge]\nupstream = \"sip:10.0.0.5\"\ndomains = [\"localhost\"]\n");
  EXPECT_EQ(c.edge.mode, "relay");
  EXPECT_NE(parseError("[edge]\nupstream = \"sip:10.0.0.5\"\ndomains = [\"localhost\"]\n"
                       "mode = \"proxy\"\n")
                .find("[edge] mode"),
            std::string::npos);
}

TEST(ConfigTest, EdgeErrorsNameTheKey) {
  EXPECT_NE(parseError("[edge]\ndomains = [\"localhost\"]\n").find("[edge] upstream: is required"),
            std::string::npos);
  EXPECT_NE(parseError("[edge]\nupstream = \"sip:alice@10.0.0.5\"\ndomains = [\"a\"]\n")
                .find("test.toml:2: [edge] upstream: expected host[:port]"),
            std::string::npos);
  EXPECT_NE(parseError("[edge]\nupstream = \"10.0.0.5\"\ndomains = [\"a\"]\n"
                       "upstream_expires = 600\nrefresh_before = 600\n")
                .find("[edge] refresh_before: must be less than upstream_expires"),
            std::string::npos);
  EXPECT_NE(parseError("[edge]\nupstream = \"10.0.0.5\"\ndomains = [\"a\"]\nmode = \"x\"\n")
                .find("test.toml:4: [edge] mode: expected one of"),
            std::string::npos);
}

}  // namespace
}  // namespace sipwake::server

namespace sipwake::server {
namespace {

TEST(ConfigTest, AdminListenerIsOffByDefaultAndLoopbackOnly) {
  EXPECT_FALSE(defaultConfig().admin.enabled);
  EXPECT_FALSE(parseOk("[server]\nworkers = 1\n").admin.enabled);

  Config c = parseOk("[admin]\nlisten = \"127.0.0.1:9090\"\n");
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.address, "127.0.0.1");
  EXPECT_EQ(c.admin.port, 9090);
  c = parseOk("[admin]\nlisten = \"[::1]:9091\"\n");
  EXPECT_EQ(c.admin.address, "::1");
  EXPECT_EQ(c.admin.port, 9091);

  EXPECT_EQ(parseError("[server]\nworkers = 1\n[admin]\nlisten = \"0.0.0.0:9090\"\n"),
            "test.toml:4: [admin] listen: \"0.0.0.0:9090\" is not a loopback address: the admin "
            "listener serves other hosts only over HTTPS (set tls_certificate and "
            "tls_private_key), else only on 127.0.0.0/8 or ::1");
  std::string e = parseError("[admin]\nlisten = \"[2001:db8::1]:9090\"\n");
  EXPECT_EQ(e.rfind("test.toml:2: [admin] listen: \"[2001:db8::1]:9090\" is not a loopback", 0),
            0u)
      << e;
  EXPECT_EQ(parseError("[admin]\nlisten = \"localhost:9090\"\n"),
            "test.toml:2: [admin] listen: expected \"IP:PORT\" (IPv6 as \"[::1]:9090\"), got "
            "\"localhost:9090\"");
  e = parseError("[admin]\nlisten = \"127.0.0.1\"\n");
  EXPECT_EQ(e.rfind("test.toml:2: [admin] listen: expected \"IP:PORT\"", 0), 0u) << e;
  e = parseError("[admin]\nlisten = 9090\n");
  EXPECT_EQ(e.rfind("test.toml:2: [admin] listen:", 0), 0u) << e;
  e = parseError("[admin]\nport = 9090\n");
  EXPECT_EQ(e, "test.toml:2: [admin] port: unknown key");
}

TEST(ConfigTest, AdminTokenFileTlsAndTimelines) {
  TempFile token("0123456789abcdef-secret\n\n");
  ::chmod(token.path().c_str(), 0600);
  Config c = parseOk("[admin]\nlisten = \"127.0.0.1:9090\"\ntoken_file = \"" + token.path() +
                     "\"\ntimelines = 50\n");
  EXPECT_EQ(c.admin.token, "0123456789abcdef-secret");
  EXPECT_EQ(c.admin.timelines, 50u);
  EXPECT_EQ(defaultConfig().admin.timelines, 1000u);
  EXPECT_TRUE(defaultConfig().admin.token.empty());

  TempFile short_token("short token \n");
  ::chmod(short_token.path().c_str(), 0600);
  EXPECT_EQ(parseError("[admin]\nlisten = \"127.0.0.1:9090\"\ntoken_file = \"" +
                       short_token.path() + "\"\n"),
            "test.toml:3: [admin] token_file: \"" + short_token.path() +
                "\" holds 11 bytes; at least 16 are needed (e.g. head -c 32 /dev/urandom | "
                "base64 > file)");
  EXPECT_EQ(parseError("[admin]\ntoken_file = \"/nonexistent/admin.token\"\n"),
            "test.toml:2: [admin] token_file: cannot read file \"/nonexistent/admin.token\"");
  std::string e = parseError("[admin]\ntimelines = -1\n");
  EXPECT_EQ(e.rfind("test.toml:2: [admin] timelines: expected an integer from 0 to 100000", 0), 0u)
      << e;

  // Off loopback: only with a certificate and key (HTTPS).
  TempFile cert("cert"), key("key");
  ::chmod(key.path().c_str(), 0600);
  c = parseOk("[admin]\nlisten = \"0.0.0.0:9443\"\ntls_certificate = \"" + cert.path() +
              "\"\ntls_private_key = \"" + key.path() + "\"\n");
  EXPECT_EQ(c.admin.address, "0.0.0.0");
  EXPECT_EQ(c.admin.tls_certificate, cert.path());
  e = parseError("[admin]\nlisten = \"127.0.0.1:9443\"\ntls_certificate = \"" + cert.path() +
                 "\"\n");
  EXPECT_EQ(e, "test.toml:3: [admin] tls_certificate: tls_certificate and tls_private_key go "
               "together: set both or neither")
      << e;
}

}  // namespace
}  // namespace sipwake::server
