#include "sip/message.h"

#include <array>
#include <charconv>
#include <cstring>

#include "sip/chars.h"
#include "sip/parse_internal.h"

namespace sipwake::sip {

using detail::iequals;

namespace {

constexpr std::array<std::string_view, 15> kMethodNames = {
    "",       "INVITE", "ACK",       "BYE",    "CANCEL", "REGISTER", "OPTIONS", "INFO",
    "UPDATE", "PRACK",  "SUBSCRIBE", "NOTIFY", "REFER",  "MESSAGE",  "PUBLISH",
};

constexpr std::array<std::string_view, static_cast<std::size_t>(HeaderId::kCount)> kHeaderNames = {
    "",
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Contact",
    "Route",
    "Record-Route",
    "Path",
    "Expires",
    "Min-Expires",
    "Content-Length",
    "Content-Type",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Require",
    "Proxy-Require",
    "Supported",
    "Unsupported",
    "Feature-Caps",
    "Reason",
    "Warning",
    "User-Agent",
    "Server",
    "Allow",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Content-Encoding",
    "Event",
    "Subject",
    "Refer-To",
    "Timestamp",
    "Date",
};

// Header ids by (name length, lower-cased first letter): at most two names share a bucket, so
// classification is one or two case-folding compares.
constexpr std::size_t kMaxNameLength = 20;
constexpr auto kNameBuckets = [] {
  std::array<std::array<std::array<std::uint8_t, 2>, 26>, kMaxNameLength> t{};
  for (std::size_t i = 1; i < kHeaderNames.size(); ++i) {
    const char first = kHeaderNames[i][0];
    const std::size_t letter = static_cast<std::size_t>((first | 0x20) - 'a');
    for (std::uint8_t& slot : t[kHeaderNames[i].size()][letter]) {
      if (slot == 0) {
        slot = static_cast<std::uint8_t>(i);
        break;
      }
    }
  }
  return t;
}();
// Canonical names lower-cased and zero-padded, for comparing several bytes at a time.
constexpr auto kLowerNames = [] {
  std::array<std::array<char, kMaxNameLength>, kHeaderNames.size()> t{};
  for (std::size_t i = 0; i < kHeaderNames.size(); ++i) {
    for (std::size_t k = 0; k < kHeaderNames[i].size(); ++k)
      t[i][k] = detail::toLower(kHeaderNames[i][k]);
  }
  return t;
}();

template <typename Word>
Word loadWord(const char* p) {
  Word w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}

// name == lower (same length n, 2 <= n < kMaxNameLength) ignoring ASCII case. Canonical names
// hold only letters and '-' (which has bit 0x20 set): OR-ing 0x20 into every byte of `name`
// folds case, and the only other byte that folds onto '-' is CR, which a field name cannot hold.
bool foldedEquals(std::string_view name, const char* lower) {
  const char* a = name.data();
  const std::size_t n = name.size();
  if (n >= 8) {
    constexpr std::uint64_t kFold = 0x2020202020202020ull;
    for (std::size_t i = 0; i + 8 < n; i += 8) {
      if ((loadWord<std::uint64_t>(a + i) | kFold) != loadWord<std::uint64_t>(lower + i)) {
        return false;
      }
    }
    return (loadWord<std::uint64_t>(a + n - 8) | kFold) == loadWord<std::uint64_t>(lower + n - 8);
  }
  if (n >= 4) {
    constexpr std::uint32_t kFold = 0x20202020u;
    return (loadWord<std::uint32_t>(a) | kFold) == loadWord<std::uint32_t>(lower) &&
           (loadWord<std::uint32_t>(a + n - 4) | kFold) == loadWord<std::uint32_t>(lower + n - 4);
  }
  for (std::size_t k = 0; k < n; ++k) {
    if ((a[k] | 0x20) != lower[k]) return false;
  }
  return true;
}

static_assert([] {  // every canonical name found a slot
  std::size_t n = 0;
  for (const auto& by_letter : kNameBuckets)
    for (const auto& slots : by_letter)
      for (std::uint8_t s : slots) n += s != 0;
  return n == kHeaderNames.size() - 1;
}());

std::string toDecimal(std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

void appendDecimal(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

bool contentLengthMatches(std::string_view value, std::size_t body_size) {
  std::size_t n = 0;
  bool negative = false;
  return detail::parseContentLengthValue(value, &n, &negative).isOk() && n == body_size;
}

bool inBuffer(const std::shared_ptr<const std::string>& buf, std::string_view v) {
  if (!buf || v.empty()) return false;
  const char* b = buf->data();
  return v.data() >= b && v.data() + v.size() <= b + buf->size();
}

// Offset of the first top-level ',' in a header value (outside quotes and <>), or npos.
std::size_t firstListComma(std::string_view v) {
  bool quoted = false;
  int angle = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == '<') {
      ++angle;
    } else if (c == '>' && angle > 0) {
      --angle;
    } else if (c == ',' && angle == 0) {
      return i;
    }
  }
  return std::string_view::npos;
}

}  // namespace

Method methodFromName(std::string_view name) {
  for (std::size_t i = 1; i < kMethodNames.size(); ++i) {
    if (kMethodNames[i] == name) return static_cast<Method>(i);
  }
  return Method::kUnknown;
}

std::string_view methodName(Method m) {
  const auto i = static_cast<std::size_t>(m);
  return i < kMethodNames.size() ? kMethodNames[i] : std::string_view();
}

HeaderId headerIdFromName(std::string_view name) {
  if (name.size() == 1) {
    switch (detail::toLower(name[0])) {
      case 'v':
        return HeaderId::kVia;
      case 'f':
        return HeaderId::kFrom;
      case 't':
        return HeaderId::kTo;
      case 'i':
        return HeaderId::kCallId;
      case 'm':
        return HeaderId::kContact;
      case 'l':
        return HeaderId::kContentLength;
      case 'c':
        return HeaderId::kContentType;
      case 'k':
        return HeaderId::kSupported;
      case 's':
        return HeaderId::kSubject;
      case 'e':
        return HeaderId::kContentEncoding;
      case 'o':
        return HeaderId::kEvent;
      case 'r':
        return HeaderId::kReferTo;
      default:
        return HeaderId::kOther;
    }
  }
  if (name.empty() || name.size() >= kMaxNameLength) return HeaderId::kOther;
  const unsigned letter = static_cast<unsigned>((name[0] | 0x20) - 'a');
  if (letter >= 26) return HeaderId::kOther;
  for (std::uint8_t i : kNameBuckets[name.size()][letter]) {
    if (i == 0) break;
    if (foldedEquals(name, kLowerNames[i].data())) return static_cast<HeaderId>(i);
  }
  return HeaderId::kOther;
}

std::string_view canonicalHeaderName(HeaderId id) {
  const auto i = static_cast<std::size_t>(id);
  return i < kHeaderNames.size() ? kHeaderNames[i] : std::string_view();
}

// ---- construction ----------------------------------------------------------------------

Message Message::makeRequest(Method method, std::string_view method_name,
                             std::string_view request_uri) {
  Message m;
  m.is_request_ = true;
  if (method != Method::kUnknown) {
    m.method_ = method;
    m.method_text_ = methodName(method);
  } else {
    m.method_ = methodFromName(method_name);
    m.method_text_ = m.owned_.emplace_front(method_name);
  }
  m.request_uri_text_ = m.owned_.emplace_front(request_uri);
  m.version_ = "SIP/2.0";
  m.start_line_edited_ = true;
  return m;
}

Message Message::makeResponse(int status_code, std::string_view reason) {
  Message m;
  m.is_request_ = false;
  m.status_code_ = status_code;
  m.reason_ = m.owned_.emplace_front(reason);
  m.version_ = "SIP/2.0";
  m.start_line_edited_ = true;
  return m;
}

HeaderField Message::makeField(HeaderId id, std::string_view name, std::string value) {
  HeaderField f;
  f.id = id;
  f.name = name.empty() ? canonicalHeaderName(id) : name;
  f.value = owned_.emplace_front(std::move(value));
  return f;
}

void Message::forgetParsed(HeaderId id) {
  switch (id) {
    case HeaderId::kVia:
      top_via_.reset();
      break;
    case HeaderId::kFrom:
      from_.reset();
      break;
    case HeaderId::kTo:
      to_.reset();
      break;
    case HeaderId::kCSeq:
      cseq_.reset();
      break;
    case HeaderId::kContact:
      contacts_.reset();
      break;
    default:
      break;
  }
}

std::size_t Message::firstIndexOf(HeaderId id) const {
  for (std::size_t i = 0; i < headers_.size(); ++i) {
    if (!headers_[i].removed && headers_[i].id == id) return i;
  }
  return headers_.size();
}

// ---- access ----------------------------------------------------------------------------

const Uri& Message::requestUri() const {
  if (!request_uri_) {
    Uri u;
    if (!detail::parseUriInto(request_uri_text_, u, /*collect=*/true)) {
      u = Uri{};
      u.scheme = Uri::Scheme::kOther;
      u.text = request_uri_text_;
    }
    request_uri_ = std::move(u);
  }
  return *request_uri_;
}

void Message::setRequestUri(std::string_view uri) {
  request_uri_text_ = owned_.emplace_front(uri);
  request_uri_.reset();
  start_line_edited_ = true;
}

const HeaderField* Message::find(HeaderId id) const {
  const std::size_t i = firstIndexOf(id);
  return i < headers_.size() ? &headers_[i] : nullptr;
}

const HeaderField* Message::find(std::string_view name) const {
  const HeaderId id = headerIdFromName(name);
  if (id != HeaderId::kOther) return find(id);
  for (const HeaderField& h : headers_) {
    if (!h.removed && h.id == HeaderId::kOther && iequals(h.name, name)) return &h;
  }
  return nullptr;
}

std::vector<std::string_view> Message::values(HeaderId id) const {
  std::vector<std::string_view> out;
  for (const HeaderField& h : headers_) {
    if (!h.removed && h.id == id) out.push_back(h.value);
  }
  return out;
}

std::size_t Message::count(HeaderId id) const {
  std::size_t n = 0;
  for (const HeaderField& h : headers_) n += (!h.removed && h.id == id) ? 1 : 0;
  return n;
}

Result<std::vector<Via>> Message::vias() const {
  std::vector<Via> out;
  for (const HeaderField& h : headers_) {
    if (h.removed || h.id != HeaderId::kVia) continue;
    Result<std::vector<Via>> part = parseViaList(h.value);
    if (!part) return part.status();
    for (Via& v : *part) out.push_back(std::move(v));
  }
  return out;
}

const Result<Via>& Message::topVia() const {
  if (top_via_) return *top_via_;
  const HeaderField* h = find(HeaderId::kVia);
  if (!h) return top_via_.emplace(notFound("no Via header field"));
  return detail::parseIntoCache(top_via_, [h](Via& out) {
    detail::Cursor c(h->value);
    return detail::parseViaAt(c, out, /*collect=*/true);
  });
}

namespace {
const Result<NameAddr>& cachedNameAddr(std::optional<Result<NameAddr>>& cache, const HeaderField* h,
                                       const char* missing) {
  if (!h) return cache.emplace(notFound(missing));
  return detail::parseIntoCache(
      cache, [h](NameAddr& out) { return detail::parseSingleNameAddr(h->value, out); });
}
}  // namespace

const Result<NameAddr>& Message::from() const {
  return from_ ? *from_ : cachedNameAddr(from_, find(HeaderId::kFrom), "no From header field");
}

const Result<NameAddr>& Message::to() const {
  return to_ ? *to_ : cachedNameAddr(to_, find(HeaderId::kTo), "no To header field");
}

std::string_view Message::callId() const {
  const HeaderField* h = find(HeaderId::kCallId);
  return h ? h->value : std::string_view();
}

const Result<CSeq>& Message::cseq() const {
  if (!cseq_) {
    const HeaderField* h = find(HeaderId::kCSeq);
    cseq_.emplace(h ? parseCSeq(h->value) : Result<CSeq>(notFound("no CSeq header field")));
  }
  return *cseq_;
}

Result<int> Message::maxForwards() const {
  const HeaderField* h = find(HeaderId::kMaxForwards);
  if (!h) return notFound("no Max-Forwards header field");
  return parseMaxForwards(h->value);
}

const Result<std::vector<ContactValue>>& Message::contacts() const {
  if (contacts_) return *contacts_;
  std::vector<ContactValue> out;
  for (const HeaderField& h : headers_) {
    if (h.removed || h.id != HeaderId::kContact) continue;
    Result<std::vector<ContactValue>> part = parseContactList(h.value);
    if (!part) return contacts_.emplace(part.status());
    if (out.empty()) {
      out = std::move(*part);
    } else {
      for (ContactValue& v : *part) out.push_back(std::move(v));
    }
  }
  return contacts_.emplace(std::move(out));
}

namespace {
Result<std::vector<NameAddr>> nameAddrsOf(const std::vector<HeaderField>& headers, HeaderId id) {
  std::vector<NameAddr> out;
  for (const HeaderField& h : headers) {
    if (h.removed || h.id != id) continue;
    Result<std::vector<NameAddr>> part = parseNameAddrList(h.value);
    if (!part) return part.status();
    for (NameAddr& v : *part) out.push_back(std::move(v));
  }
  return out;
}
}  // namespace

Result<std::vector<NameAddr>> Message::routes() const {
  return nameAddrsOf(headers_, HeaderId::kRoute);
}
Result<std::vector<NameAddr>> Message::recordRoutes() const {
  return nameAddrsOf(headers_, HeaderId::kRecordRoute);
}
Result<std::vector<NameAddr>> Message::paths() const {
  return nameAddrsOf(headers_, HeaderId::kPath);
}

Result<std::uint32_t> Message::expires() const {
  const HeaderField* h = find(HeaderId::kExpires);
  if (!h) return notFound("no Expires header field");
  return parseDeltaSeconds(h->value);
}

Result<std::uint32_t> Message::minExpires() const {
  const HeaderField* h = find(HeaderId::kMinExpires);
  if (!h) return notFound("no Min-Expires header field");
  return parseDeltaSeconds(h->value);
}

Result<std::vector<std::string_view>> Message::optionTags(HeaderId id) const {
  std::vector<std::string_view> out;
  for (const HeaderField& h : headers_) {
    if (h.removed || h.id != id) continue;
    Result<std::vector<std::string_view>> part = parseTokenList(h.value);
    if (!part) return part.status();
    out.insert(out.end(), part->begin(), part->end());
  }
  return out;
}

// ---- edits -----------------------------------------------------------------------------

void Message::pushVia(std::string value) {
  forgetParsed(HeaderId::kVia);
  HeaderField f = makeField(HeaderId::kVia, {}, std::move(value));
  const std::size_t i = firstIndexOf(HeaderId::kVia);
  headers_.insert(headers_.begin() + static_cast<std::ptrdiff_t>(i < headers_.size() ? i : 0), f);
}

void Message::popVia() {
  const std::size_t i = firstIndexOf(HeaderId::kVia);
  if (i == headers_.size()) return;
  forgetParsed(HeaderId::kVia);
  HeaderField& f = headers_[i];
  const std::size_t comma = firstListComma(f.value);
  if (comma == std::string_view::npos) {
    f.removed = true;
    return;
  }
  // The remainder still lives in the buffer (or in owned_): keep a view, write it as edited.
  f.value = detail::trimLws(f.value.substr(comma + 1));
  f.raw = {};
  if (f.value.empty()) f.removed = true;
}

void Message::prependHeader(HeaderId id, std::string value) {
  forgetParsed(id);
  HeaderField f = makeField(id, {}, std::move(value));
  headers_.insert(headers_.begin() + static_cast<std::ptrdiff_t>(firstIndexOf(id)), f);
}

void Message::appendHeader(std::string_view name, std::string value) {
  const HeaderId id = headerIdFromName(name);
  const std::string_view stored_name = id != HeaderId::kOther && canonicalHeaderName(id) == name
                                           ? canonicalHeaderName(id)
                                           : owned_.emplace_front(name);
  forgetParsed(id);
  headers_.push_back(makeField(id, stored_name, std::move(value)));
}

void Message::removeHeaders(HeaderId id) {
  forgetParsed(id);
  for (HeaderField& h : headers_) {
    if (h.id == id) h.removed = true;
  }
}

void Message::removeHeaderAt(std::size_t index) {
  SIPWAKE_CHECK(index < headers_.size());
  forgetParsed(headers_[index].id);
  headers_[index].removed = true;
}

void Message::setHeader(HeaderId id, std::string value) {
  const std::size_t i = firstIndexOf(id);
  HeaderField f = makeField(id, {}, std::move(value));
  removeHeaders(id);
  if (i < headers_.size()) {
    headers_[i] = f;
  } else {
    headers_.push_back(f);
  }
}

void Message::decrementMaxForwards() {
  const std::size_t i = firstIndexOf(HeaderId::kMaxForwards);
  SIPWAKE_CHECK(i < headers_.size());
  HeaderField& f = headers_[i];
  Result<int> v = parseMaxForwards(f.value);
  SIPWAKE_CHECK(v.isOk() && *v > 0);
  f.value = owned_.emplace_front(toDecimal(static_cast<std::uint64_t>(*v - 1)));
  f.raw = {};
  // Identical duplicates were tolerated by the parser; they must not now contradict the new value.
  for (std::size_t j = i + 1; j < headers_.size(); ++j) {
    if (headers_[j].id == HeaderId::kMaxForwards) headers_[j].removed = true;
  }
}

void Message::setBody(std::string content_type, std::string body) {
  body_ = owned_.emplace_front(std::move(body));
  if (content_type.empty()) {
    removeHeaders(HeaderId::kContentType);
  } else {
    setHeader(HeaderId::kContentType, std::move(content_type));
  }
  setHeader(HeaderId::kContentLength, toDecimal(body_.size()));
}

// ---- serialization ---------------------------------------------------------------------

std::size_t Message::wireSizeHint() const {
  std::size_t n = (buffer_ ? buffer_->size() : 0) + body_.size() + 64;
  for (const std::string& s : owned_) n += s.size();
  return n + headers_.size() * 8;
}

std::string Message::serialize() const {
  std::string out;
  out.reserve(wireSizeHint());
  if (!raw_start_line_.empty() && !start_line_edited_) {
    out.append(raw_start_line_);
  } else if (is_request_) {
    out.append(method_text_).append(" ").append(request_uri_text_).append(" ");
    out.append(version_.empty() ? std::string_view("SIP/2.0") : version_);
  } else {
    out.append(version_.empty() ? std::string_view("SIP/2.0") : version_).append(" ");
    appendDecimal(out, static_cast<std::uint64_t>(status_code_ < 0 ? 0 : status_code_));
    out.append(" ").append(reason_);
  }
  out.append("\r\n");
  bool content_length_written = false;
  for (const HeaderField& h : headers_) {
    if (h.removed) continue;
    if (h.id == HeaderId::kContentLength) {
      if (content_length_written) continue;  // duplicates collapse into one correct value
      content_length_written = true;
      if (!h.raw.empty() && contentLengthMatches(h.value, body_.size())) {
        out.append(h.raw);
      } else {
        out.append(h.name.empty() ? canonicalHeaderName(h.id) : h.name).append(": ");
        appendDecimal(out, body_.size());
      }
    } else if (!h.raw.empty()) {
      out.append(h.raw);
    } else {
      out.append(h.name.empty() ? canonicalHeaderName(h.id) : h.name).append(": ").append(h.value);
    }
    out.append("\r\n");
  }
  if (!content_length_written) {
    out.append("Content-Length: ");
    appendDecimal(out, body_.size());
    out.append("\r\n");
  }
  out.append("\r\n");
  out.append(body_);
  return out;
}

// ---- responses -------------------------------------------------------------------------

Message makeResponseTo(const Message& request, int status_code, std::string_view reason,
                       std::string_view to_tag) {
  Message r = Message::makeResponse(status_code, reason);
  r.buffer_ = request.buffer_;  // copied fields below stay views into the request's bytes
  auto copy = [&](const HeaderField& h) {
    if (inBuffer(request.buffer_, h.value) && (h.raw.empty() || inBuffer(request.buffer_, h.raw))) {
      HeaderField f = h;
      f.removed = false;
      r.headers_.push_back(f);
    } else {
      r.headers_.push_back(r.makeField(h.id, {}, std::string(h.value)));
    }
  };
  for (const HeaderField& h : request.headers_) {
    if (!h.removed && h.id == HeaderId::kVia) copy(h);
  }
  if (const HeaderField* h = request.find(HeaderId::kFrom)) copy(*h);
  if (const HeaderField* h = request.find(HeaderId::kTo)) {
    const Result<NameAddr>& to = request.to();
    if (!to_tag.empty() && to.isOk() && to->tag().empty()) {
      std::string v(detail::trimLws(h->value));
      v.append(";tag=").append(to_tag);
      r.headers_.push_back(r.makeField(HeaderId::kTo, {}, std::move(v)));
    } else {
      copy(*h);
    }
  }
  if (const HeaderField* h = request.find(HeaderId::kCallId)) copy(*h);
  if (const HeaderField* h = request.find(HeaderId::kCSeq)) copy(*h);
  if (status_code == 100) {  // §8.2.6.1: a 100 (Trying) copies Timestamp
    if (const HeaderField* h = request.find(HeaderId::kTimestamp)) copy(*h);
  }
  r.headers_.push_back(r.makeField(HeaderId::kContentLength, {}, "0"));
  return r;
}

}  // namespace sipwake::sip
