#include "sip/headers.h"

#include <cstring>

#include "sip/chars.h"
#include "sip/message.h"
#include "sip/parse_internal.h"

namespace sipwake::sip {

using detail::allOf;
using detail::Cursor;
using detail::iequals;
using detail::is;
using detail::isLws;

namespace {

Status bad(std::string message) { return invalidArgument(std::move(message)); }

constexpr std::string_view kMagicCookie = "z9hG4bK";

// quoted-string = DQUOTE *(qdtext / quoted-pair) DQUOTE. A CR or LF can only be part of a
// folded line here (the message parser guarantees CRLF is followed by SP/HT inside a value).
Status skipQuotedString(Cursor& c) {
  if (!c.consume('"')) return bad("expected '\"'");
  while (true) {
    c.takeWhile(detail::kQdText);
    if (c.done()) return bad("unterminated quoted string");
    const char ch = *c.p;
    if (ch == '"') {
      ++c.p;
      return Status::ok();
    }
    if (ch == '\\') {
      if (c.p + 1 >= c.e || c.p[1] == '\r' || c.p[1] == '\n') return bad("bad quoted-pair");
      c.p += 2;
    } else if (ch == '\r' || ch == '\n') {
      ++c.p;  // part of a folded line (the message parser guarantees CRLF is followed by SP/HT)
    } else {
      return bad("control character in quoted string");
    }
  }
}

// *( SEMI generic-param ). gen-value = token / host / quoted-string; the quoted form is kept
// with its quotes. Leaves the cursor before any trailing LWS that is not followed by ';'.
// With `spaced_values` (Contact), an unquoted value also takes SP/HT followed by more gen-value
// characters (not a folded line), and each param must be followed by ';', ',' or the end.
// On a defect inside a param, `*bad_param` (if given) is set to its name.
template <typename OnParam>
Status parseHeaderParams(Cursor& c, bool spaced_values, std::string_view* bad_param,
                         OnParam&& on_param) {
  while (true) {
    const char* save = c.p;
    c.skipLws();
    if (!c.consume(';')) {
      c.p = save;
      return Status::ok();
    }
    c.skipLws();
    Param p;
    p.name = c.takeWhile(detail::kToken);
    auto fail = [&](std::string message) {
      if (bad_param != nullptr) *bad_param = p.name;
      return bad(std::move(message));
    };
    if (p.name.empty()) return fail("empty parameter");
    const char* after_name = c.p;
    c.skipLws();
    if (c.consume('=')) {
      c.skipLws();
      const char* v = c.p;
      if (c.at('"')) {
        if (Status s = skipQuotedString(c); !s) return fail(s.message());
      } else if (c.takeWhile(detail::kGenValue).empty()) {
        return fail("empty value for parameter '" + std::string(p.name) + "'");
      } else if (spaced_values) {
        while (true) {
          Cursor t = c;
          while (t.at(' ') || t.at('\t')) ++t.p;
          if (t.p == c.p || t.takeWhile(detail::kGenValue).empty()) break;
          c = t;
        }
      }
      p.value = c.since(v);
      p.has_value = true;
    } else {
      c.p = after_name;
    }
    if (spaced_values) {
      Cursor t = c;
      t.skipLws();
      if (!t.done() && !t.at(';') && !t.at(',')) {
        return fail("unexpected character after parameter '" + std::string(p.name) + "'");
      }
    }
    if (Status s = on_param(p); !s) return fail(s.message());
  }
}

// Host [":" port] with LWS allowed around ':' (COLON = SWS ":" SWS).
Status parseSentBy(Cursor& c, std::string_view* host, std::uint16_t* port, bool* has_port) {
  const char* h = c.p;
  if (c.at('[')) {
    while (!c.done() && c.peek() != ']') ++c.p;
    if (!c.consume(']')) return bad("unterminated IPv6 reference");
  } else {
    c.takeWhile(detail::kHost);
  }
  *host = c.since(h);
  if (Status s = detail::checkHost(*host); !s) return s;
  const char* save = c.p;
  c.skipLws();
  if (c.consume(':')) {
    c.skipLws();
    std::uint64_t v = 0;
    if (!detail::parseUnsigned(c.takeWhile(detail::kDigit), 65535, &v)) return bad("invalid port");
    *port = static_cast<std::uint16_t>(v);
    *has_port = true;
  } else {
    c.p = save;
  }
  return Status::ok();
}

Status checkViaParam(const Param& p) {
  if (iequals(p.name, "branch")) {
    if (!p.has_value || !allOf(p.value, detail::kToken)) return bad("invalid branch");
  } else if (iequals(p.name, "received")) {
    // RFC 5118 §4.5: accept an IPv6 address with or without brackets.
    std::string_view v = p.value;
    if (v.size() > 2 && v.front() == '[' && v.back() == ']') v = v.substr(1, v.size() - 2);
    if (!isIpv4Address(v) && !parseIpv6Address(v)) return bad("invalid received parameter");
  } else if (iequals(p.name, "rport")) {
    std::uint64_t v = 0;
    if (p.has_value && !detail::parseUnsigned(p.value, 65535, &v)) return bad("invalid rport");
  } else if (iequals(p.name, "ttl")) {
    std::uint64_t v = 0;
    if (!detail::parseUnsigned(p.value, 255, &v)) return bad("invalid ttl");
  } else if (iequals(p.name, "maddr")) {
    if (Status s = detail::checkHost(p.value); !s) return bad("invalid maddr");
  }
  return Status::ok();
}

// After one list element: LWS, then the end or ','; anything else is a defect.
enum class ListNext { kEnd, kMore, kError };
ListNext nextListElement(Cursor& c) {
  c.skipLws();
  if (c.done()) return ListNext::kEnd;
  return c.consume(',') ? ListNext::kMore : ListNext::kError;
}

// Contact values (allow_star): param values may hold blanks (NameAddrSyntax).
Status parseNameAddrListImpl(std::string_view value, bool allow_star, bool collect,
                             std::vector<ContactValue>* out, std::string_view* bad_param) {
  const std::string_view trimmed = detail::trimLws(value);
  if (trimmed.empty()) return bad("empty header value");
  if (trimmed == "*") {
    if (!allow_star) return bad("'*' not allowed here");
    if (out) out->push_back(ContactValue{true, {}});
    return Status::ok();
  }
  Cursor c(value);
  ContactValue scratch;
  while (true) {
    ContactValue& cv = out ? out->emplace_back() : scratch;
    const detail::NameAddrSyntax syntax{/*in_list=*/true, /*spaced_param_values=*/allow_star};
    if (Status s = detail::parseNameAddrAt(c, cv.addr, collect, syntax, bad_param); !s) return s;
    const ListNext next = nextListElement(c);
    if (next == ListNext::kError) return bad("unexpected character after address");
    if (next == ListNext::kEnd) return Status::ok();
  }
}

std::optional<std::uint32_t> paramAsUint32(const Param* p) {
  std::uint64_t v = 0;
  if (!p || !p->has_value || !detail::parseUnsigned(p->value, 0xFFFFFFFFull, &v))
    return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

std::string_view unquote(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') return v.substr(1, v.size() - 2);
  return v;
}

}  // namespace

namespace detail {

Status parseViaAt(Cursor& c, Via& v, bool collect, bool sent_by_only) {
  resetForParse(v);
  c.skipLws();
  const char* start = c.p;
  v.protocol_name = c.takeWhile(kToken);
  if (v.protocol_name.empty()) return bad("missing sent-protocol");
  c.skipLws();
  if (!c.consume('/')) return bad("malformed sent-protocol");
  c.skipLws();
  v.protocol_version = c.takeWhile(kToken);
  c.skipLws();
  if (v.protocol_version.empty() || !c.consume('/')) return bad("malformed sent-protocol");
  c.skipLws();
  v.transport = c.takeWhile(kToken);
  if (v.transport.empty()) return bad("missing transport");
  if (!c.skipLws()) return bad("missing sent-by");
  if (Status s = parseSentBy(c, &v.host, &v.port, &v.has_port); !s) return s;
  if (!sent_by_only) {
    Status s =
        parseHeaderParams(c, /*spaced_values=*/false, nullptr, [&](const Param& p) -> Status {
          if (Status e = checkViaParam(p); !e) return e;
          if (collect) appendParam(v.params, p);
          return Status::ok();
        });
    if (!s) return s;
  }
  v.text = c.since(start);
  return Status::ok();
}

Status parseNameAddrAt(Cursor& c, NameAddr& na, bool collect, NameAddrSyntax syntax,
                       std::string_view* bad_param) {
  const bool in_list = syntax.in_list;
  resetForParse(na);
  c.skipLws();
  const char* start = c.p;
  if (c.at('"')) {
    const char* q = c.p;
    if (Status s = skipQuotedString(c); !s) return s;
    na.display_name = c.since(q).substr(1);
    na.display_name.remove_suffix(1);
    na.display_quoted = true;
    c.skipLws();
    if (!c.at('<')) return bad("expected '<' after display name");
  } else {
    // display-name = *(token LWS): only a name-addr if a '<' follows the tokens.
    Cursor t = c;
    while (!t.done() && (is(t.peek(), kToken) || isLws(t.peek()))) ++t.p;
    if (t.at('<')) {
      na.display_name = trimLws(std::string_view(start, static_cast<std::size_t>(t.p - start)));
      c = t;
    }
  }
  std::string_view uri_text;
  if (c.consume('<')) {
    const char* u = c.p;
    const void* gt = std::memchr(c.p, '>', static_cast<std::size_t>(c.e - c.p));
    if (gt == nullptr) return bad("missing '>'");
    c.p = static_cast<const char*>(gt);
    uri_text = c.since(u);
    ++c.p;
    na.angle_brackets = true;
  } else {
    const char* u = c.p;
    while (!c.done() && !isLws(c.peek()) && c.peek() != ';' && !(in_list && c.peek() == ',')) {
      ++c.p;
    }
    uri_text = c.since(u);
    if (uri_text.find('?') != std::string_view::npos) {
      return bad("a URI with headers must be enclosed in <>");
    }
  }
  if (uri_text.empty()) return bad("missing URI");
  if (Status s = parseUriInto(uri_text, na.uri, collect); !s) {
    if (na.angle_brackets) {  // name the usual defect (RFC 4475 badaspec) precisely
      for (char ch : uri_text) {
        if (isLws(ch)) return bad("whitespace inside <addr-spec>");
      }
    }
    return s;
  }
  Status s =
      parseHeaderParams(c, syntax.spaced_param_values, bad_param, [&](const Param& p) -> Status {
        if (iequals(p.name, "tag") && (!p.has_value || !allOf(p.value, kToken))) {
          return bad("invalid tag");
        }
        if (collect) appendParam(na.params, p);
        return Status::ok();
      });
  if (!s) return s;
  na.text = c.since(start);
  return Status::ok();
}

Status validateViaList(std::string_view value, Via* top) {
  Cursor c(value);
  Via v;
  bool first = true;
  while (true) {
    const bool collect = first && top != nullptr;
    if (Status s = parseViaAt(c, collect ? *top : v, collect); !s) return s;
    first = false;
    const ListNext next = nextListElement(c);
    if (next == ListNext::kError) return bad("unexpected character after Via value");
    if (next == ListNext::kEnd) return Status::ok();
  }
}

Status validateNameAddrList(std::string_view value, bool allow_star, std::string_view* bad_param) {
  return parseNameAddrListImpl(value, allow_star, /*collect=*/false, nullptr, bad_param);
}

Status validateTokenList(std::string_view value) {
  Cursor c(value);
  c.skipLws();
  if (c.done()) return Status::ok();
  while (true) {
    c.skipLws();
    if (c.takeWhile(kToken).empty()) return bad("expected a token");
    const ListNext next = nextListElement(c);
    if (next == ListNext::kError) return bad("unexpected character after token");
    if (next == ListNext::kEnd) return Status::ok();
  }
}

Status validateCallId(std::string_view value) {
  const std::string_view v = trimLws(value);
  if (v.empty()) return bad("empty Call-ID");
  // word [ "@" word ], in one pass.
  bool seen_at = false;
  std::size_t word_length = 0;
  for (char ch : v) {
    if (is(ch, kWord)) {
      ++word_length;
    } else if (ch == '@' && !seen_at && word_length > 0) {
      seen_at = true;
      word_length = 0;
    } else {
      return bad("invalid character in Call-ID");
    }
  }
  if (word_length == 0) return bad("invalid character in Call-ID");
  return Status::ok();
}

Status parseMaxForwardsValue(std::string_view value, int* out) {
  std::uint64_t v = 0;
  if (!parseUnsigned(trimLws(value), 255, &v)) return bad("Max-Forwards must be 0-255");
  *out = static_cast<int>(v);
  return Status::ok();
}

Status parseContentLengthValue(std::string_view value, std::size_t* out, bool* negative) {
  const std::string_view v = trimLws(value);
  *negative = !v.empty() && v.front() == '-';
  std::uint64_t n = 0;
  if (*negative || !parseUnsigned(v, 0xFFFFFFFFull, &n)) return bad("invalid Content-Length");
  *out = static_cast<std::size_t>(n);
  return Status::ok();
}

}  // namespace detail

std::string_view Via::branch() const {
  const Param* p = findParam(params, "branch");
  return p ? p->value : std::string_view();
}

bool Via::hasMagicCookie() const { return branch().substr(0, kMagicCookie.size()) == kMagicCookie; }

std::string_view NameAddr::tag() const {
  const Param* p = findParam(params, "tag");
  return p ? p->value : std::string_view();
}

std::optional<std::uint32_t> ContactValue::expires() const {
  return paramAsUint32(addr.param("expires"));
}

std::optional<double> ContactValue::q() const {
  const Param* p = addr.param("q");
  if (!p || !p->has_value) return std::nullopt;
  // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
  const std::string_view v = p->value;
  if (v.empty() || (v[0] != '0' && v[0] != '1')) return std::nullopt;
  double q = v[0] - '0';
  if (v.size() > 1) {
    if (v[1] != '.' || v.size() > 5) return std::nullopt;
    double scale = 0.1;
    for (std::size_t i = 2; i < v.size(); ++i) {
      if (!detail::isDigit(v[i]) || (v[0] == '1' && v[i] != '0')) return std::nullopt;
      q += (v[i] - '0') * scale;
      scale /= 10;
    }
  }
  return q;
}

std::string_view ContactValue::instance() const {
  const Param* p = addr.param("+sip.instance");
  if (!p || !p->has_value) return {};
  std::string_view v = unquote(p->value);
  if (v.size() >= 2 && v.front() == '<' && v.back() == '>') v = v.substr(1, v.size() - 2);
  return v;
}

std::optional<std::uint32_t> ContactValue::regId() const {
  return paramAsUint32(addr.param("reg-id"));
}

Result<std::vector<Via>> parseViaList(std::string_view value) {
  std::vector<Via> out;
  Cursor c(value);
  while (true) {
    Via& v = out.emplace_back();
    if (Status s = detail::parseViaAt(c, v, /*collect=*/true); !s) return s;
    const ListNext next = nextListElement(c);
    if (next == ListNext::kError) return bad("unexpected character after Via value");
    if (next == ListNext::kEnd) return out;
  }
}

Result<std::vector<NameAddr>> parseNameAddrList(std::string_view value) {
  std::vector<NameAddr> out;
  if (detail::trimLws(value).empty()) return bad("empty header value");
  Cursor c(value);
  while (true) {
    NameAddr& na = out.emplace_back();
    if (Status s = detail::parseNameAddrAt(c, na, /*collect=*/true, {/*in_list=*/true}); !s) {
      return s;
    }
    const ListNext next = nextListElement(c);
    if (next == ListNext::kError) return bad("unexpected character after address");
    if (next == ListNext::kEnd) return out;
  }
}

Status detail::parseSingleNameAddr(std::string_view value, NameAddr& na) {
  Cursor c(value);
  if (Status s = detail::parseNameAddrAt(c, na, /*collect=*/true, {/*in_list=*/false}); !s) {
    return s;
  }
  c.skipLws();
  if (!c.done()) return bad("unexpected characters after address");
  return Status::ok();
}

Result<NameAddr> parseNameAddr(std::string_view value) {
  NameAddr na;
  if (Status s = detail::parseSingleNameAddr(value, na); !s) return s;
  return na;
}

Result<std::vector<ContactValue>> parseContactList(std::string_view value) {
  std::vector<ContactValue> out;
  if (Status s = parseNameAddrListImpl(value, /*allow_star=*/true, /*collect=*/true, &out, nullptr);
      !s) {
    return s;
  }
  return out;
}

Result<CSeq> parseCSeq(std::string_view value) {
  Cursor c(value);
  c.skipLws();
  CSeq cs;
  std::uint64_t n = 0;
  const std::string_view digits = c.takeWhile(detail::kDigit);
  if (digits.empty()) return bad("missing sequence number");
  if (!detail::parseUnsigned(digits, 0xFFFFFFFFull, &n)) {
    return bad("sequence number larger than 2**32-1");
  }
  cs.number = static_cast<std::uint32_t>(n);
  if (!c.skipLws()) return bad("missing method");
  cs.method_text = c.takeWhile(detail::kToken);
  if (cs.method_text.empty()) return bad("missing method");
  c.skipLws();
  if (!c.done()) return bad("unexpected characters after method");
  cs.method = static_cast<int>(methodFromName(cs.method_text));
  return cs;
}

Result<std::uint32_t> parseDeltaSeconds(std::string_view value) {
  const std::string_view v = detail::trimLws(value);
  if (!allOf(v, detail::kDigit)) return bad("delta-seconds must be digits");
  std::uint64_t n = 0;
  if (!detail::parseUnsigned(v, 0xFFFFFFFFull, &n)) {
    return Status(StatusCode::kOutOfRange, "delta-seconds larger than 2**32-1");
  }
  return static_cast<std::uint32_t>(n);
}

Result<int> parseMaxForwards(std::string_view value) {
  int v = 0;
  if (Status s = detail::parseMaxForwardsValue(value, &v); !s) return s;
  return v;
}

Result<std::vector<std::string_view>> parseTokenList(std::string_view value) {
  std::vector<std::string_view> out;
  Cursor c(value);
  c.skipLws();
  if (c.done()) return out;
  while (true) {
    c.skipLws();
    const std::string_view tok = c.takeWhile(detail::kToken);
    if (tok.empty()) return bad("expected a token");
    out.push_back(tok);
    const ListNext next = nextListElement(c);
    if (next == ListNext::kError) return bad("unexpected character after token");
    if (next == ListNext::kEnd) return out;
  }
}

std::vector<std::string_view> splitHeaderList(std::string_view value) {
  std::vector<std::string_view> out;
  bool in_quotes = false;
  int angle = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= value.size(); ++i) {
    if (i < value.size()) {
      const char ch = value[i];
      if (in_quotes) {
        if (ch == '\\' && i + 1 < value.size()) {
          ++i;
        } else if (ch == '"') {
          in_quotes = false;
        }
        continue;
      }
      if (ch == '"') {
        in_quotes = true;
        continue;
      }
      if (ch == '<') ++angle;
      if (ch == '>' && angle > 0) --angle;
      if (ch != ',' || angle > 0) continue;
    }
    const std::string_view item =
        detail::trimLws(value.substr(start, std::min(i, value.size()) - start));
    if (!item.empty()) out.push_back(item);
    start = i + 1;
  }
  return out;
}

std::string eraseNameAddrParams(std::string_view value, ParamFilter drop) {
  auto list = parseNameAddrList(value);
  if (!list) return std::string(value);
  std::string out;
  std::size_t at = 0;
  for (const NameAddr& na : *list) {
    // Each element is cut on its own text, so the separators between elements stay as written.
    std::size_t begin = static_cast<std::size_t>(na.text.data() - value.data());
    if (na.text.data() < value.data() || begin < at || begin + na.text.size() > value.size()) {
      return std::string(value);
    }
    out.append(value.substr(at, begin - at));
    out.append(detail::eraseParamsFrom(na.text, {&na.uri.params, &na.params}, drop));
    at = begin + na.text.size();
  }
  out.append(value.substr(at));
  return out;
}

}  // namespace sipwake::sip
