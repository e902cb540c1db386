// SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), parsed without copying.
// Views point into storage owned by whoever owns the text (a Message, or the caller).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sipwake::sip {

struct Param {
  std::string_view name;   // as written (case kept); compare case-insensitively
  std::string_view value;  // as written, still %-escaped; empty when has_value is false
  bool has_value = false;
};

// Finds a parameter by case-insensitive name.
const Param* findParam(const std::vector<Param>& params, std::string_view name);

// Parsed form of a URI. For sip/sips every field is filled; for tel `user` is the number and
// `params` its parameters; for any other scheme only `scheme_text` and `text` are (the rest of
// such a URI is opaque to us, RFC 3261 §19.1 "absoluteURI").
struct Uri {
  enum class Scheme : std::uint8_t { kSip, kSips, kTel, kOther };
  Scheme scheme = Scheme::kSip;
  std::string_view scheme_text;
  std::string_view user;  // escaped form; empty if none (tel: the number)
  std::string_view password;
  bool has_password = false;
  std::string_view host;   // hostname, IPv4, or IPv6 reference WITH brackets "[::1]"
  std::uint16_t port = 0;  // 0 = not given
  bool has_port = false;
  std::vector<Param> params;   // uri-parameters (transport, lr, maddr, pn-prid, ...)
  std::vector<Param> headers;  // ?h=v&...
  std::string_view text;       // the whole URI as given

  bool isSipOrSips() const { return scheme == Scheme::kSip || scheme == Scheme::kSips; }
  bool hasLr() const { return findParam(params, "lr") != nullptr; }
  const Param* param(std::string_view name) const { return findParam(params, name); }
  std::string_view hostWithoutBrackets() const;
};

// Parses a URI. Returns InvalidArgument with a message naming the defect. Accepts the full
// SIP/SIPS grammar of RFC 3261 §25.1 (userinfo with password, escapes, IPv6 references,
// uri-parameters, headers), RFC 3966 tel URIs (number + parameters), and any other
// absoluteURI as kOther. Bad %-escapes are errors.
Result<Uri> parseUri(std::string_view text);

// IPv6 address text WITHOUT brackets to its 16 bytes; nullopt if invalid. Tolerates the
// three-colon form RFC 3261's ABNF allows before an embedded IPv4 address
// ("2001:db8:::192.0.2.1", RFC 5118 §4.10).
std::optional<std::array<std::uint8_t, 16>> parseIpv6Address(std::string_view text);
// Dotted-quad IPv4 address (four decimal octets, each <= 255).
bool isIpv4Address(std::string_view text);

// RFC 3261 §19.1.4 URI comparison (escapes, case rules, parameter rules).
bool uriEquivalent(const Uri& a, const Uri& b);
// The host rule of §19.1.4: case-insensitive; IPv6 references ("[...]") compared as addresses.
bool hostEquivalent(std::string_view a, std::string_view b);

// %-decoding of a URI component; InvalidArgument on a bad escape.
Result<std::string> unescape(std::string_view s);

// Names the parameters an edit removes (compare case-insensitively).
using ParamFilter = bool (*)(std::string_view name);

// `uri` without the uri-parameters `drop` names; every other byte stays as written. Returned
// unchanged when it does not parse.
std::string eraseUriParams(std::string_view uri, ParamFilter drop);

}  // namespace sipwake::sip
