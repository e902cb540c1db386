// parseMessage(): one pass over the bytes to cut the start line and the header fields (views
// into the buffer), then validation of the fields every layer relies on. The first defect
// found decides the outcome; see message.h (ParseOutcome) for what "answerable" means.
#include <array>
#include <bit>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "sip/chars.h"
#include "sip/message.h"
#include "sip/parse_internal.h"

namespace sipwake::sip {

using detail::iequals;
using detail::istartsWith;

namespace {

struct Defect {
  int code = 0;  // 0: none
  std::string reason;
  std::string detail;
  explicit operator bool() const { return code != 0; }
};

Defect badRequest(std::string_view what, std::string_view detail = {}) {
  Defect d;
  d.code = 400;
  d.reason = "Bad Request - " + std::string(what);
  d.detail = std::string(what);
  if (!detail.empty()) d.detail.append(": ").append(detail);
  return d;
}

// SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT ("SIP" is case-insensitive).
bool isSipVersion(std::string_view v) {
  if (!istartsWith(v, "SIP/")) return false;
  const std::string_view num = v.substr(4);
  const std::size_t dot = num.find('.');
  return dot != std::string_view::npos && detail::allOf(num.substr(0, dot), detail::kDigit) &&
         detail::allOf(num.substr(dot + 1), detail::kDigit);
}

// Longest param name a reason phrase repeats (a name is a token of any length).
constexpr std::size_t kMaxNamedParam = 64;

// After isSipVersion() passed: is it 2.0?
bool isSip20(std::string_view v) { return v.size() == 7 && v.substr(4) == "2.0"; }

// First CR or LF in [p, end), or end. 16 bytes at a time with SSE2, else 8 at a time (SWAR:
// the lowest flagged byte is always a real match, later ones may be false positives).
const char* findCrOrLf(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#else
  if constexpr (std::endian::native == std::endian::little) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ull;
    constexpr std::uint64_t kHigh = 0x8080808080808080ull;
    while (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      const std::uint64_t x = w ^ (kOnes * '\r');
      const std::uint64_t y = w ^ (kOnes * '\n');
      const std::uint64_t hit = ((x - kOnes) & ~x & kHigh) | ((y - kOnes) & ~y & kHigh);
      if (hit != 0) return p + (__builtin_ctzll(hit) >> 3);
      p += 8;
    }
  }
#endif
  while (p < end && *p != '\r' && *p != '\n') ++p;
  return p;
}

}  // namespace

class Parser {
 public:
  explicit Parser(const ParseLimits& limits) : limits_(limits) {}
  ParseOutcome run(std::string bytes);

 private:
  struct Line {
    const char* b;
    const char* e;     // excludes the CRLF
    const char* next;  // start of the following line
    bool terminated;
  };

  Line nextLine(const char* p) {
    const char* q = findCrOrLf(p, end_);
    if (q + 1 < end_ && q[0] == '\r' && q[1] == '\n') return Line{p, q, q + 2, true};
    return lineEndingOddly(p, q);
  }
  Line lineEndingOddly(const char* p, const char* q);  // at the end of the bytes or a bare CR/LF
  void parseStartLine(std::string_view sl);
  void parseHeaders(const char*& p, bool* terminated);
  void finishField(std::size_t index, const char* value_begin, const char* raw_end);
  void parseBody(const char* body_begin, bool terminated);

  Defect validateRequest();
  Defect validateResponse();
  Defect validateCommon(bool is_request);
  Defect validateSingle(HeaderId id, std::string_view name, bool required);
  bool conflicting(HeaderId id) const;
  bool answerable() const;

  void structural(Defect d) {
    if (!structural_) structural_ = std::move(d);
  }
  void limit(std::string detail) {
    if (!limit_) {
      limit_.code = 513;
      limit_.reason = "Message Too Large";
      limit_.detail = std::move(detail);
    }
  }

  const ParseLimits& limits_;
  Message m_;
  // Per header id: how many fields, and the index of the first (filled by parseHeaders).
  std::array<std::uint16_t, static_cast<std::size_t>(HeaderId::kCount)> count_{};
  std::array<std::uint16_t, static_cast<std::size_t>(HeaderId::kCount)> first_{};
  const char* end_ = nullptr;
  Defect structural_;
  Defect limit_;
  bool stopped_ = false;  // a limit stopped the header scan
};

Parser::Line Parser::lineEndingOddly(const char* p, const char* q) {
  Line l{p, q, end_, false};
  if (q == end_) return l;  // unterminated last line
  // A bare CR or LF: never guess where the line ends (header-injection risk downstream).
  // Keep cutting lines at LF so that the rest can still be read to answer the request.
  structural(badRequest("Malformed line ending", *q == '\r' ? "bare CR" : "bare LF"));
  const void* nl = std::memchr(q, '\n', static_cast<std::size_t>(end_ - q));
  if (nl == nullptr) {
    l.e = end_;
    return l;
  }
  const char* n = static_cast<const char*>(nl);
  l.e = (n > p && n[-1] == '\r') ? n - 1 : n;
  l.next = n + 1;
  l.terminated = true;
  return l;
}

void Parser::parseStartLine(std::string_view sl) {
  m_.raw_start_line_ = sl;
  if (istartsWith(sl, "SIP/")) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    m_.is_request_ = false;
    const std::size_t sp = sl.find(' ');
    m_.version_ = sl.substr(0, sp);
    const std::string_view rest =
        sp == std::string_view::npos ? std::string_view() : sl.substr(sp + 1);
    std::uint64_t code = 0;
    if (!isSipVersion(m_.version_) || rest.size() < 3 ||
        !detail::parseUnsigned(rest.substr(0, 3), 999, &code) || code < 100 || code > 699 ||
        (rest.size() > 3 && rest[3] != ' ')) {
      structural(badRequest("Malformed Status-Line"));
      return;
    }
    m_.status_code_ = static_cast<int>(code);
    m_.reason_ = rest.size() > 4 ? rest.substr(4) : std::string_view();
    return;
  }
  // Request-Line = Method SP Request-URI SP SIP-Version (exactly one SP each)
  m_.is_request_ = true;
  if (!sl.empty() && (sl.back() == ' ' || sl.back() == '\t')) {
    structural(badRequest("Malformed Request-Line", "trailing whitespace"));
  }
  const std::size_t sp1 = sl.find(' ');
  const std::size_t sp2 = sl.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2) {
    m_.method_text_ = sl.substr(0, sp1);
    m_.method_ = methodFromName(m_.method_text_);
    structural(badRequest("Malformed Request-Line"));
    return;
  }
  m_.method_text_ = sl.substr(0, sp1);
  m_.method_ = methodFromName(m_.method_text_);
  m_.request_uri_text_ = sl.substr(sp1 + 1, sp2 - sp1 - 1);
  m_.version_ = sl.substr(sp2 + 1);
  if (!detail::allOf(m_.method_text_, detail::kToken)) {
    structural(badRequest("Malformed Request-Line", "method is not a token"));
  } else if (m_.request_uri_text_.empty() ||
             m_.request_uri_text_.find(' ') != std::string_view::npos ||
             m_.request_uri_text_.find('\t') != std::string_view::npos) {
    structural(badRequest("Malformed Request-Line", "whitespace in or around the Request-URI"));
  } else if (!isSipVersion(m_.version_)) {
    structural(badRequest("Malformed Request-Line", "bad SIP-Version"));
  }
}

inline void Parser::finishField(std::size_t index, const char* value_begin, const char* raw_end) {
  HeaderField& f = m_.headers_[index];
  f.raw = std::string_view(f.name.data(), static_cast<std::size_t>(raw_end - f.name.data()));
  f.value = detail::trimLws(
      std::string_view(value_begin, static_cast<std::size_t>(raw_end - value_begin)));
  if (f.raw.size() > limits_.max_line_bytes) {
    limit("header field longer than " + std::to_string(limits_.max_line_bytes) + " bytes");
    stopped_ = true;
  }
}

void Parser::parseHeaders(const char*& p, bool* terminated) {
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t current = kNone;
  const char* value_begin = nullptr;
  const char* raw_end = nullptr;
  *terminated = false;
  while (p < end_ && !stopped_) {
    const Line l = nextLine(p);
    if (l.b == l.e && l.terminated) {  // the empty line
      p = l.next;
      *terminated = true;
      break;
    }
    if (static_cast<std::size_t>(l.e - l.b) > limits_.max_line_bytes) {
      limit("line longer than " + std::to_string(limits_.max_line_bytes) + " bytes");
      stopped_ = true;
      break;
    }
    if (*l.b == ' ' || *l.b == '\t') {  // folded continuation of the current field
      if (current == kNone) {
        structural(badRequest("Malformed header field", "continuation line without a field"));
      } else {
        raw_end = l.e;
      }
      p = l.next;
      continue;
    }
    if (current != kNone) {
      finishField(current, value_begin, raw_end);
      current = kNone;
      if (stopped_) break;
    }
    // field-name *(SP / HTAB) ":" value
    detail::Cursor c(std::string_view(l.b, static_cast<std::size_t>(l.e - l.b)));
    const std::string_view name = c.takeWhile(detail::kToken);
    while (c.at(' ') || c.at('\t')) ++c.p;
    if (name.empty() || !c.consume(':')) {
      structural(badRequest(
          "Malformed header field",
          "no field name and ':' in \"" +
              std::string(std::string_view(l.b, std::min<std::size_t>(32, l.e - l.b))) + "\""));
      p = l.next;
      continue;
    }
    if (m_.headers_.size() >= std::min<std::size_t>(limits_.max_headers, 0xFFFF)) {
      limit("more than " + std::to_string(limits_.max_headers) + " header fields");
      stopped_ = true;
      break;
    }
    HeaderField f;
    f.id = headerIdFromName(name);
    f.name = name;
    const auto id = static_cast<std::size_t>(f.id);
    if (count_[id]++ == 0) first_[id] = static_cast<std::uint16_t>(m_.headers_.size());
    m_.headers_.push_back(f);
    current = m_.headers_.size() - 1;
    value_begin = c.p;
    raw_end = l.e;
    p = l.next;
  }
  if (current != kNone) finishField(current, value_begin, raw_end);
}

void Parser::parseBody(const char* body_begin, bool terminated) {
  const std::size_t available = static_cast<std::size_t>(end_ - body_begin);
  bool have_length = false;
  std::size_t length = 0;
  const auto cl = static_cast<std::size_t>(HeaderId::kContentLength);
  const std::size_t from = count_[cl] == 0 ? m_.headers_.size() : first_[cl];
  for (std::size_t i = from; i < m_.headers_.size(); ++i) {
    const HeaderField& h = m_.headers_[i];
    if (h.id != HeaderId::kContentLength) continue;
    std::size_t n = 0;
    bool negative = false;
    if (!detail::parseContentLengthValue(h.value, &n, &negative)) {
      structural(negative ? badRequest("Negative Content-Length", h.value)
                          : badRequest("Malformed Content-Length", h.value));
      have_length = false;
      break;
    }
    if (have_length && n != length) {
      structural(badRequest("Conflicting Content-Length headers"));
      have_length = false;
      break;
    }
    have_length = true;
    length = n;
  }
  if (!terminated) {
    // The header section ran to the end of the bytes without its empty line (e.g. RFC 4475
    // "baddn"): accepted for a datagram when no body is announced.
    m_.body_ = std::string_view(end_, 0);
    if (have_length && length > 0) structural(badRequest("Content-Length larger than body"));
    return;
  }
  if (have_length && length > available) {
    structural(badRequest("Content-Length larger than body",
                          std::to_string(length) + " > " + std::to_string(available)));
    m_.body_ = std::string_view(body_begin, available);
    return;
  }
  m_.body_ = std::string_view(body_begin, have_length ? length : available);
}

bool Parser::conflicting(HeaderId id) const {
  if (count_[static_cast<std::size_t>(id)] < 2) return false;
  const HeaderField* first = nullptr;
  for (const HeaderField& h : m_.headers_) {
    if (h.id != id) continue;
    if (first == nullptr) {
      first = &h;
    } else if (h.value != first->value) {
      return true;
    }
  }
  return false;
}

bool Parser::answerable() const {
  if (!m_.is_request_) return false;
  const HeaderField* via = m_.find(HeaderId::kVia);
  if (via == nullptr || m_.find(HeaderId::kCSeq) == nullptr) return false;
  detail::Cursor c(via->value);
  Via v;
  return detail::parseViaAt(c, v, /*collect=*/false, /*sent_by_only=*/true).isOk();
}

Defect Parser::validateSingle(HeaderId id, std::string_view name, bool required) {
  const auto i = static_cast<std::size_t>(id);
  const HeaderField* h = count_[i] > 0 ? &m_.headers_[first_[i]] : nullptr;
  if (h == nullptr) return required ? badRequest("Missing " + std::string(name)) : Defect{};
  if (conflicting(id)) return badRequest("Conflicting " + std::string(name) + " headers");
  Status s;
  switch (id) {
    case HeaderId::kCallId:
      s = detail::validateCallId(h->value);
      break;
    case HeaderId::kFrom:
    case HeaderId::kTo: {
      // Parsed with parameters: the accessors reuse it (parse once).
      const Result<NameAddr>& na = detail::parseIntoCache(
          id == HeaderId::kFrom ? m_.from_ : m_.to_,
          [&](NameAddr& out) { return detail::parseSingleNameAddr(h->value, out); });
      if (!na) s = na.status();
      break;
    }
    case HeaderId::kMaxForwards: {
      int v = 0;
      s = detail::parseMaxForwardsValue(h->value, &v);
      break;
    }
    case HeaderId::kCSeq: {
      const Result<CSeq>& cs = m_.cseq_.emplace(parseCSeq(h->value));
      if (!cs) {
        s = cs.status();
      } else if (m_.is_request_ && cs->method_text != m_.method_text_) {
        return badRequest("CSeq method does not match the request method",
                          std::string(cs->method_text) + " vs " + std::string(m_.method_text_));
      }
      break;
    }
    case HeaderId::kExpires: {
      Result<std::uint32_t> e = parseDeltaSeconds(h->value);
      if (!e) s = e.status();
      break;
    }
    default:
      break;
  }
  if (!s) return badRequest("Malformed " + std::string(name), s.message());
  return {};
}

Defect Parser::validateCommon(bool is_request) {
  // Via: every value of every field, and the top branch (RFC 4475 §3.2.1). The top via-parm
  // is kept with its parameters for topVia() (parse once).
  bool top = true;
  for (const HeaderField& h : m_.headers_) {
    if (h.id != HeaderId::kVia) continue;
    if (!top) {
      if (Status s = detail::validateViaList(h.value, nullptr); !s) {
        return badRequest("Malformed Via", s.message());
      }
      continue;
    }
    top = false;
    const Result<Via>& top_via = detail::parseIntoCache(
        m_.top_via_, [&](Via& out) { return detail::validateViaList(h.value, &out); });
    if (!top_via) {
      Defect d = badRequest("Malformed Via", top_via.status().message());
      m_.top_via_.reset();  // the defect may lie after the top via-parm: topVia() parses alone
      return d;
    }
    if (is_request && top_via->branch() == "z9hG4bK") {
      return badRequest("Empty Via branch", "branch is only the magic cookie");
    }
  }
  if (top) return badRequest("Missing Via");
  if (Defect d = validateSingle(HeaderId::kCSeq, "CSeq", true)) return d;
  if (Defect d = validateSingle(HeaderId::kCallId, "Call-ID", true)) return d;
  if (Defect d = validateSingle(HeaderId::kFrom, "From", true)) return d;
  if (Defect d = validateSingle(HeaderId::kTo, "To", true)) return d;
  return {};
}

Defect Parser::validateRequest() {
  if (!isSip20(m_.version_)) {
    Defect d;
    d.code = 505;
    d.reason = "Version Not Supported";
    d.detail = "unsupported SIP version " + std::string(m_.version_);
    return d;
  }
  Uri& ruri = m_.request_uri_.emplace();
  if (Status s = detail::parseUriInto(m_.request_uri_text_, ruri, /*collect=*/true); !s) {
    m_.request_uri_.reset();
    return badRequest("Malformed Request-URI", s.message());
  }
  if (ruri.scheme == Uri::Scheme::kOther) {
    Defect d;
    d.code = 416;
    d.reason = "Unsupported URI Scheme";
    d.detail = "unsupported Request-URI scheme '" + std::string(ruri.scheme_text) + "'";
    return d;
  }
  if (ruri.isSipOrSips() && !ruri.headers.empty()) {
    // RFC 4475 §3.1.2.11: a proxy must never turn these into header fields; we refuse them.
    return badRequest("Request-URI contains headers");
  }
  if (Defect d = validateCommon(true)) return d;
  if (Defect d = validateSingle(HeaderId::kMaxForwards, "Max-Forwards", false)) return d;
  if (Defect d = validateSingle(HeaderId::kExpires, "Expires", false)) return d;
  // Address lists (Contact, Route, Record-Route, Path) and option-tag lists (Require,
  // Proxy-Require, Supported), in wire order.
  for (const HeaderField& h : m_.headers_) {
    Status s;
    std::string_view bad_param;
    switch (h.id) {
      case HeaderId::kContact:
      case HeaderId::kRoute:
      case HeaderId::kRecordRoute:
      case HeaderId::kPath:
        s = detail::validateNameAddrList(h.value, h.id == HeaderId::kContact, &bad_param);
        break;
      case HeaderId::kRequire:
      case HeaderId::kProxyRequire:
      case HeaderId::kSupported:
        s = detail::validateTokenList(h.value);
        break;
      default:
        continue;
    }
    if (!s) {
      std::string what = "Malformed " + std::string(canonicalHeaderName(h.id));
      if (!bad_param.empty()) {  // a token: safe in a reason phrase once bounded
        what.append(" Parameter ").append(bad_param.substr(0, kMaxNamedParam));
      }
      return badRequest(what, s.message());
    }
  }
  return {};
}

Defect Parser::validateResponse() {
  if (!isSip20(m_.version_)) {
    Defect d = badRequest("Unsupported SIP version");
    d.detail = "unsupported SIP version " + std::string(m_.version_);
    return d;
  }
  return validateCommon(false);
}

ParseOutcome Parser::run(std::string bytes) {
  auto buffer = std::make_shared<const std::string>(std::move(bytes));
  m_.buffer_ = buffer;
  const char* p = buffer->data();
  end_ = p + buffer->size();
  if (buffer->size() > limits_.max_message_bytes) {
    limit("message larger than " + std::to_string(limits_.max_message_bytes) + " bytes");
    end_ = p + limits_.max_message_bytes;  // bounded work: the rest is never looked at
  }
  ParseOutcome out;
  while (end_ - p >= 2 && p[0] == '\r' && p[1] == '\n') p += 2;  // RFC 3261 §7.5
  if (p == end_) {
    out.kind = ParseOutcome::Kind::kDrop;
    out.drop_reason = "empty message";
    return out;
  }
  const Line start = nextLine(p);
  if (static_cast<std::size_t>(start.e - start.b) > limits_.max_line_bytes) {
    out.kind = ParseOutcome::Kind::kDrop;
    out.drop_reason = "start line longer than " + std::to_string(limits_.max_line_bytes) + " bytes";
    return out;
  }
  parseStartLine(std::string_view(start.b, static_cast<std::size_t>(start.e - start.b)));
  p = start.next;
  m_.headers_.reserve(16);
  bool terminated = false;
  parseHeaders(p, &terminated);
  if (!stopped_) parseBody(p, terminated);

  Defect defect;
  if (limit_) {
    defect = std::move(limit_);
  } else if (structural_) {
    defect = std::move(structural_);
  } else {
    defect = m_.is_request_ ? validateRequest() : validateResponse();
  }
  if (!defect) {
    out.kind = ParseOutcome::Kind::kOk;
    out.message.emplace(std::move(m_));
    return out;
  }
  if (answerable()) {
    out.kind = ParseOutcome::Kind::kReject;
    out.status_code = defect.code;
    out.reason = std::move(defect.reason);
    out.drop_reason = std::move(defect.detail);
    out.message.emplace(std::move(m_));
    return out;
  }
  out.kind = ParseOutcome::Kind::kDrop;
  out.drop_reason = m_.is_request_
                        ? "unanswerable request (no readable top Via or no CSeq): " + defect.detail
                        : "malformed response: " + defect.detail;
  return out;
}

ParseOutcome parseMessage(std::string bytes, const ParseLimits& limits) {
  Parser parser(limits);
  return parser.run(std::move(bytes));
}

}  // namespace sipwake::sip
