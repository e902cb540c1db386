// Typed header values (RFC 3261 §20, §25.1). Views point into the owning Message.
// Values may contain folded lines (CRLF SP/HT): every parser here treats them as LWS.
// Errors are InvalidArgument with a message naming the defect.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sip/uri.h"

namespace sipwake::sip {

// Via: SIP/2.0/UDP host:port;branch=...;received=...;rport[=n];maddr=...;ttl=...
struct Via {
  std::string_view protocol_name;     // "SIP"
  std::string_view protocol_version;  // "2.0"
  std::string_view transport;         // "UDP", "TCP", "TLS", "SCTP", "WS", "WSS", or other token
  std::string_view host;              // as written; IPv6 with brackets
  std::uint16_t port = 0;             // 0 = not given
  bool has_port = false;
  std::vector<Param> params;
  std::string_view text;  // this Via value as written

  std::string_view branch() const;  // "" if absent
  bool hasMagicCookie() const;      // branch starts with "z9hG4bK" (RFC 3261 §8.1.1.7)
  const Param* received() const { return findParam(params, "received"); }
  const Param* rport() const { return findParam(params, "rport"); }
  const Param* maddr() const { return findParam(params, "maddr"); }
  const Param* ttl() const { return findParam(params, "ttl"); }
};

// name-addr / addr-spec with header params: From, To, Contact, Route, Record-Route, Path, ...
struct NameAddr {
  std::string_view display_name;  // without quotes; quoted-pair escapes left as written
  bool display_quoted = false;
  bool angle_brackets = false;  // name-addr form
  Uri uri;
  std::vector<Param> params;  // header params after the URI (tag, expires, q, ...); a quoted
                              // value keeps its quotes
  std::string_view text;

  std::string_view tag() const;  // "" if absent
  const Param* param(std::string_view name) const { return findParam(params, name); }
};

struct ContactValue {
  bool star = false;                             // "Contact: *"
  NameAddr addr;                                 // meaningless if star
  std::optional<std::uint32_t> expires() const;  // expires param, if present and valid
  std::optional<double> q() const;               // q param in [0,1], if present and valid
  std::string_view instance() const;             // +sip.instance value without quotes/<>
  std::optional<std::uint32_t> regId() const;    // reg-id
};

struct CSeq {
  std::uint32_t number = 0;
  std::string_view method_text;
  int method = 0;  // sip::Method as int, to avoid a circular include; use methodOf()
};

// Parsers for single header values, used by Message's typed accessors and usable directly.
Result<std::vector<Via>> parseViaList(std::string_view value);
Result<std::vector<NameAddr>> parseNameAddrList(std::string_view value);  // Route, Contact, ...
Result<NameAddr> parseNameAddr(std::string_view value);                   // From/To: exactly one
Result<std::vector<ContactValue>> parseContactList(std::string_view value);
Result<CSeq> parseCSeq(std::string_view value);
Result<std::uint32_t> parseDeltaSeconds(std::string_view value);  // kOutOfRange above 2**32-1
Result<int> parseMaxForwards(std::string_view value);             // 1*DIGIT, 0..255
Result<std::vector<std::string_view>> parseTokenList(
    std::string_view value);  // Require, Supported, Allow

// A name-addr list value (Contact, Route, ...) without the URI parameters and header parameters
// `drop` names; every other byte stays as written. Returned unchanged when it does not parse
// (a "*" Contact among them).
std::string eraseNameAddrParams(std::string_view value, ParamFilter drop);

// Generic comma splitting that respects quotes and <...>.
std::vector<std::string_view> splitHeaderList(std::string_view value);

}  // namespace sipwake::sip
