// sipwake configuration: the TOML file (docs/configuration.md), its defaults and its validation.
//
// Parsing happens once, at start-up or in `sipwake check-config`, never on the data path. toml++
// throws on syntax errors; that is caught here and every problem comes back as a Status whose
// message names the file, the line, the table and the key, e.g.
//   config.toml:12: [limits] max_headers: expected a positive integer, got "abc"
// Unknown keys and values of the wrong type are errors, so a typo never silently falls back to a
// default.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/tls_policy.h"
#include "transport/transport.h"

namespace sipwake::server {

// One socket to listen on. `address` is an IP literal without brackets ("127.0.0.1", "::1",
// "0.0.0.0", "::").
struct ListenerConfig {
  transport::Protocol protocol = transport::Protocol::kUdp;
  std::string address = "127.0.0.1";
  std::uint16_t port = 5060;

  bool v6() const { return address.find(':') != std::string::npos; }
  // "udp:127.0.0.1:5060" / "tls:[::1]:5061": the form --listen takes and the logs print.
  std::string toString() const;
  bool operator==(const ListenerConfig&) const = default;
};

enum class TlsVerify : std::uint8_t {
  kNone,     // never ask for / check the peer's certificate
  kPeer,     // check a certificate if the peer sends one
  kRequire,  // the peer must present a certificate that verifies against ca_file
};

struct TlsConfig {
  // PEM files. Both empty: start-up generates an ephemeral self-signed certificate for
  // loopback listeners (see self_signed_cert.h); a non-loopback TLS listener then is an error.
  std::string certificate;
  std::string private_key;
  std::string ca_file;  // trust anchors for verifying peers; empty = system default store
  TlsVerify verify = TlsVerify::kNone;
  std::string ciphers = kDefaultTls12Ciphers;  // TLS 1.2 suites, OpenSSL syntax
};

struct LimitsConfig {
  std::uint32_t max_message_bytes = 65535;
  std::uint32_t max_headers = 256;
  std::uint32_t max_line_bytes = 8192;
  std::uint32_t max_connections_per_ip = 256;
  std::uint32_t connection_idle_timeout_s = 300;  // TCP/TLS connection with no traffic is closed
  std::uint32_t message_timeout_s = 20;    // a started message must be complete by then; 0 = off
  std::uint32_t max_connections = 0;       // all TCP/TLS connections; 0 = from RLIMIT_NOFILE
  std::uint32_t max_tls_handshakes = 512;  // in progress at once; 0 = no cap
  std::uint32_t max_tls_handshakes_per_ip = 16;  // ... from one source IP; 0 = no cap
};

// RFC 3261 §17 timer base values.
struct TimersConfig {
  std::uint32_t t1_ms = 500;
  std::uint32_t t2_ms = 4000;
  std::uint32_t t4_ms = 5000;
};

struct StoreConfig {
  std::string path = "sipwake.db";  // embedded SQLite file: bindings and users
  bool synchronous_full = false;    // "full": fsync every commit (survives power loss too)
  // Non-empty: the location store is Redis at this URL (redis://, rediss://, redis-sentinel://,
  // rediss-sentinel://); `path` still holds the users.
  std::string url;
  std::string redis_ca_file;              // TLS trust anchors for rediss://; empty: system store
  std::string redis_prefix = "sipwake:";  // every Redis key and channel starts with it
};

// [registrar]: RFC 3261 §10.3 expiry policy and housekeeping.
struct RegistrarSettings {
  std::uint32_t min_expires = 60;           // shorter non-zero requests get 423 + Min-Expires
  std::uint32_t max_expires = 86400;        // longer requests are clipped
  std::uint32_t default_expires = 3600;     // no expires param and no Expires header
  std::uint32_t max_contacts_per_aor = 10;  // 0 = unlimited
  std::uint32_t sweep_interval_s = 60;      // how often expired bindings are deleted
};

// [auth]: digest authentication (src/auth).
struct AuthSettings {
  std::vector<std::string> algorithms = {"SHA-256", "MD5"};  // offered in this order
  std::uint32_t nonce_ttl_s = 300;
  std::vector<std::string> trusted_peers;  // IP or CIDR; requests from them skip authentication
  bool require_auth_for_register = true;
  // Challenged with MD5 alone (see auth::AuthConfig): User-Agent prefixes, and clients without
  // a User-Agent.
  std::vector<std::string> md5_only_user_agents = {"baresip"};
  bool md5_only_without_user_agent = true;
  // The credentials' uri against the Request-URI: "equivalent" | "strict" | "off"
  // (see auth::UriCheck).
  std::string uri_check = "equivalent";
  std::uint32_t max_failures = 10;      // failed attempts per source before it is blocked; 0 off
  std::uint32_t failure_window_s = 60;  // ... counted within this window
  std::uint32_t block_s = 60;           // ... and blocked for this long
  // Failed attempts per user (any sources) before it is delayed; 0 off. See auth::UserLimiter.
  std::uint32_t user_max_failures = 5;
  std::uint32_t user_delay_s = 60;        // the first delay, doubled by each further failure
  std::uint32_t user_max_delay_s = 3600;  // ... up to this
  bool log_failures = false;              // one fail2ban line per failure (docs/security.md)
  // Re-read the users edited by `sipwake user` this often; 0 = only on SIGHUP.
  std::uint32_t user_reload_interval_s = 5;
};

// A signed Record-Route's key id names one of 4096 epochs (routing::RouteKeyConfig): the keys that
// verify at once (overlap / rotation) must stay fewer than this.
inline constexpr std::uint32_t kMaxRouteKeyOverlapEpochs = 4000;

// [proxy]: the stateful proxy core (src/routing).
struct ProxySettings {
  // Where requests for foreign domains go: "host:port[;transport=tcp]" or a sip:/sips: URI;
  // empty = the Request-URI itself (IP literal, or RFC 3263 DNS).
  std::string outbound_proxy;
  std::uint32_t timer_c_s = 180;  // RFC 3261 §16.6 step 11: > 180 s recommended
  bool record_route = true;       // "always" | "never"
  std::uint32_t max_forks = 16;   // bindings tried in parallel for one request
  std::string advertised_host;    // Record-Route host when listening on 0.0.0.0 / ::
  // Secret (>= 16 bytes) that signs our Record-Route values; empty path = a random one per start.
  std::string route_secret_file;
  std::uint32_t route_key_rotation_s = 3600;  // a new signing key this often
  std::uint32_t route_key_overlap_s = 86400;  // a retired key still verifies for this long
  // RFC 3263 resolution of host names (c-ares): name servers "ip[:port]" / "[v6]:port"; empty =
  // the system's resolv.conf. Timeout per try (2 tries).
  std::vector<std::string> dns_servers;
  std::uint32_t dns_timeout_ms = 2000;
  // What strangers hear for an unknown user and a known one without bindings: "480" (both),
  // "404" (both) or "distinct" (404 / 480). See routing::UnknownUserAnswer.
  std::string unknown_user_response = "480";
  // Out-of-dialog requests from strangers to our users per source address: a token bucket of
  // `stranger_burst`, refilled at `stranger_rate` a second (0: no throttle).
  std::uint32_t stranger_rate = 5;
  std::uint32_t stranger_burst = 50;
};

// [push]: push wake-up. With no [[push.app]], push is off: push params in REGISTERs
// are ignored (no Feature-Caps) and nothing is pushed.
// Each app's credentials map 1:1 to push::PushAppConfig (src/push/http2_sender.h); only paths
// and ids are held here, the key material is read by the sender at start-up.
struct PushApp {
  std::string provider;  // "apns" | "fcm" | "webpush" (= the generic HTTP/2 webhook)
  std::string id;        // APNs bundle id, FCM project id (push::PushBinding::appKey()); "*" any
  // APNs: token auth (key_file + key_id + team_id) or certificate auth (cert_file, cert_key_file).
  std::string key_file;
  std::string key_id;
  std::string team_id;
  std::string cert_file;
  std::string cert_key_file;
  bool use_voip = true;              // APNs: calls as PushKit VoIP pushes
  std::string service_account_file;  // FCM: Google service-account JSON
  std::string url;                   // webpush: https URL of the operator's HTTP/2 push service
  std::string secret_file;           // webpush: optional bearer secret file
  std::string endpoint;              // "https://host[:port]" replacing the provider's endpoint
  std::string ca_file;               // PEM CA bundle for this app's endpoints; empty = system
  std::uint32_t line = 0;            // where the [[push.app]] starts (for messages)
};
struct PushSettings {
  std::uint32_t push_ttl_s = 30 * 86400;  // push binding lifetime, renewed by each REGISTER
  std::uint32_t ring_timeout_s = 30;      // how long a parked INVITE waits for woken devices
  bool push_connected_devices = true;     // RFC 8599 §5.6.2: also push devices with a live contact
  // Registration refresh (RFC 8599 §5.5, routing::RefreshPushes): "push-only" (the push binding
  // alone keeps the device reachable for push_ttl) or "wake" (refresh pushes refresh_lead_s
  // before the SIP binding or the push binding lapses).
  std::string refresh = "push-only";
  std::uint32_t refresh_lead_s = 600;
  int parked_provisional = 180;  // to the caller of a parked INVITE; 0 = none
  std::string call_uuid_salt;    // secret for the call UUIDs in push payloads
  // Re-push (routing::RepushPolicy): seconds an accepted push has to wake its device, per
  // provider, and how many times a device is pushed again per request (0: never).
  std::uint32_t repush_interval_apns_s = 5;
  std::uint32_t repush_interval_fcm_s = 5;
  std::uint32_t repush_interval_webpush_s = 5;
  std::uint32_t max_repushes = 2;
  bool message_preview = false;       // the start of a MESSAGE's text in its push payload
  std::uint32_t message_wait_s = 25;  // how long a MESSAGE waits for woken devices (< Timer F)
  // MESSAGEs kept (202) for devices that did not wake in time: lifetime and bounds.
  std::uint32_t message_store_ttl_s = 7 * 86400;
  std::uint32_t message_store_per_user = 50;
  std::uint32_t message_store_total = 100000;
  // Push flood protection (routing::WakeLimitsConfig): whose requests may push
  // ("anyone" | "authenticated" | "trusted"), token buckets of wake pushes (per minute, burst)
  // per device, per AOR and per device for strangers, and the parked-request bounds.
  std::string wake_for = "anyone";
  std::uint32_t device_pushes_per_minute = 6;
  std::uint32_t device_push_burst = 6;
  std::uint32_t aor_pushes_per_minute = 20;
  std::uint32_t aor_push_burst = 20;
  std::uint32_t stranger_pushes_per_minute = 2;
  std::uint32_t stranger_push_burst = 3;
  std::uint32_t max_parked = 4096;
  std::uint32_t max_parked_per_source = 32;
  std::uint32_t max_parked_per_aor = 8;
  std::vector<PushApp> apps;  // [[push.app]]
};

// [edge]: sipwake as the push front end of another registrar (docs/edge-mode.md). Present only
// when the file has an [edge] table.
struct EdgeSettings {
  bool enabled = false;
  // The PBX: "host[:port][;transport=tcp]" or a sip:/sips: URI (as [proxy] outbound_proxy).
  std::string upstream;
  std::vector<std::string> domains;  // which of [server] domains are fronted for the PBX
  // "own": sipwake authenticates the phones and the PBX trusts sipwake. "relay": the phone's
  // REGISTER (with its digest answer) and its calls go to the PBX, which authenticates them.
  std::string mode = "relay";
  std::uint32_t upstream_expires = 3600;  // the Expires of sipwake's REGISTERs at the PBX
  std::uint32_t refresh_before = 1800;    // renewed this long before the upstream binding lapses
  std::uint32_t upstream_rate = 50;       // upstream REGISTERs per second when many are due
};

// [admin]: the admin HTTP/1.1 listener (GET /metrics, the admin API /api/..., docs/operations.md).
// Off unless [admin] listen is given. A non-loopback address needs tls_certificate and
// tls_private_key (HTTPS).
struct AdminSettings {
  bool enabled = false;
  std::string address;  // IP literal without brackets
  std::uint16_t port = 0;
  // The admin API's bearer token (token_file's content, trailing white space stripped). Empty:
  // no token_file, /api/... answers 403.
  std::string token_file;
  std::string token;
  std::string tls_certificate;  // both set: HTTPS
  std::string tls_private_key;
  std::uint32_t timelines = 1000;  // wake timelines kept in memory for GET /api/timelines
};

// A key as the file gave it: its value as TOML text and its line.
struct GivenKey {
  std::string value;
  std::uint32_t line = 0;
  bool operator==(const GivenKey&) const = default;
};

struct Config {
  // [server]
  unsigned workers = 0;  // 0 = one event loop per hardware core (resolved by effectiveWorkers())
  std::string log_level = "info";
  std::string log_format = "text";  // "text" | "json"
  // SIGTERM: how long transactions in progress may take to finish before the server stops.
  std::uint32_t drain_timeout_s = 10;
  std::vector<std::string> domains = {"localhost", "127.0.0.1"};
  // Server header of the responses sipwake makes; nullopt: "sipwake/<version>"; "": none.
  std::optional<std::string> server_header;
  // Key files (TLS private key, APNs .p8 / certificate key, FCM service account, webhook secret)
  // that others may read or write: "standard" refuses group/other-writable ones and warns about
  // other-readable ones, "strict" refuses both, "warn" only warns.
  std::string key_file_permissions = "standard";
  // Problems that do not stop the server, found while parsing: logged at start-up, printed by
  // check-config.
  std::vector<std::string> warnings;
  // The file parsed ("" for built-in defaults) and every key it gave, by "[table] key" as the
  // error messages name it (e.g. "[limits] max_headers", "[[listen]] #1 port"): a reload
  // compares these to tell which keys changed and names their lines.
  std::string source;
  std::map<std::string, GivenKey> given;

  std::vector<ListenerConfig> listeners;  // [[listen]]; defaults: see defaultListeners()
  TlsConfig tls;
  LimitsConfig limits;
  TimersConfig timers;
  StoreConfig store;
  RegistrarSettings registrar;
  AuthSettings auth;
  ProxySettings proxy;
  PushSettings push;
  EdgeSettings edge;
  AdminSettings admin;

  unsigned effectiveWorkers() const;
  bool hasTlsListener() const;
};

// udp and tcp on 127.0.0.1:5060, tls on 127.0.0.1:5061.
std::vector<ListenerConfig> defaultListeners();

// The configuration used when no file is given: everything at its default.
Config defaultConfig();

// Parses TOML text. `source_name` is the file name used in error messages.
Result<Config> parseConfig(std::string_view toml_text, std::string_view source_name);

// Reads and parses a file. A missing/unreadable file is an error naming the path.
Result<Config> loadConfigFile(const std::string& path);

// Checks the cross-key rules that also apply after --listen overrides (e.g. a non-loopback TLS
// listener needs a certificate). parseConfig() already calls this on the file's own listeners.
Status validateConfig(const Config& config);

// Parses a --listen value: "udp:127.0.0.1:5060", "tcp:[::1]:5060", "tls:0.0.0.0:5061".
// The transport is case-insensitive; the port is mandatory (1-65535).
Result<ListenerConfig> parseListenSpec(std::string_view spec);

// IP literal checks (no brackets). isLoopbackAddress covers 127.0.0.0/8 and ::1.
bool isIpLiteral(std::string_view ip);
bool isLoopbackAddress(std::string_view ip);

std::string_view tlsVerifyName(TlsVerify v);
std::string_view listenProtocolName(transport::Protocol p);  // "udp", "tcp", "tls"

}  // namespace sipwake::server
