// SIP message model (RFC 3261 §7). No I/O: fuzzable, used by every layer above.
//
// Ownership: a Message owns one immutable byte buffer (the bytes as received). Parsed header
// fields are string_views into that buffer; nothing is copied per header. Edits (push/pop Via,
// add Record-Route, rewrite Request-URI, decrement Max-Forwards, add/remove headers) never touch
// the buffer: edited/added values are owned by the Message (stable storage) and serialize()
// splices them between the unchanged raw byte ranges, which are copied verbatim.
// A response built by makeResponseTo() shares the request's buffer (a shared_ptr to const bytes)
// so the copied Via/From/To/Call-ID/CSeq fields are views, not copies.
//
// Views returned by accessors (and the typed values' string_views) stay valid as long as the
// Message lives and is not edited; a HeaderField pointer from find() is invalidated by edits.
//
// Serialization: an unedited parsed message serializes byte-identically to its input, except
// (1) CRLFs before the start line are dropped, (2) a datagram's octets after Content-Length are
// dropped (RFC 3261 §18.3), (3) a missing/wrong/duplicated Content-Length is written as one
// correct "Content-Length: N", and (4) a header section that ended without its empty line gets
// one. Edited or added fields are written "Name: value".
//
// Thread: a Message is not thread-safe; it is moved between loops, never shared.
#pragma once

#include <cstdint>
#include <forward_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sip/headers.h"
#include "sip/uri.h"

namespace sipwake::sip {

enum class Method : std::uint8_t {
  kUnknown = 0,
  kInvite,
  kAck,
  kBye,
  kCancel,
  kRegister,
  kOptions,
  kInfo,
  kUpdate,
  kPrack,
  kSubscribe,
  kNotify,
  kRefer,
  kMessage,
  kPublish,
};
Method methodFromName(std::string_view name);  // case-sensitive, as RFC 3261 says
std::string_view methodName(Method m);         // "" for kUnknown
inline Method methodOf(const CSeq& cseq) { return static_cast<Method>(cseq.method); }

// Header names we give typed access to. Everything else is kOther and passes through byte-exact.
enum class HeaderId : std::uint8_t {
  kOther = 0,
  kVia,
  kFrom,
  kTo,
  kCallId,
  kCSeq,
  kMaxForwards,
  kContact,
  kRoute,
  kRecordRoute,
  kPath,
  kExpires,
  kMinExpires,
  kContentLength,
  kContentType,
  kAuthorization,
  kProxyAuthorization,
  kWwwAuthenticate,
  kProxyAuthenticate,
  kRequire,
  kProxyRequire,
  kSupported,
  kUnsupported,
  kFeatureCaps,
  kReason,
  kWarning,
  kUserAgent,
  kServer,
  kAllow,
  kAccept,
  kAcceptEncoding,
  kAcceptLanguage,
  kContentEncoding,
  kEvent,
  kSubject,
  kReferTo,
  kTimestamp,
  kDate,
  kCount  // number of ids; not a header
};
// Case-insensitive; understands compact forms (v, f, t, i, m, l, c, k, s, e, o, r, u, ...).
HeaderId headerIdFromName(std::string_view name);
std::string_view canonicalHeaderName(HeaderId id);  // "" for kOther

// One header field line (after unfolding is NOT applied: `value` may contain folded LWS;
// typed parsers treat CRLF followed by SP/HT as LWS).
struct HeaderField {
  HeaderId id = HeaderId::kOther;
  std::string_view name;   // as written (may be compact form / odd case)
  std::string_view value;  // trimmed of leading/trailing LWS
  std::string_view
      raw;  // whole field as received, "Name: value" without the final CRLF; empty if added
  bool removed = false;  // tombstone for serialize()
};

// Limits against hostile input; configurable (see docs/configuration.md [limits]).
struct ParseLimits {
  std::size_t max_message_bytes = 65535;
  std::size_t max_headers = 256;
  std::size_t max_line_bytes = 8192;
};

class Message {
 public:
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  Message(Message&&) noexcept = default;
  Message& operator=(Message&&) noexcept = default;
  ~Message() = default;

  // Builders for messages we originate (responses, CANCEL, ACK); the result behaves as if parsed.
  static Message makeRequest(Method method, std::string_view method_name,
                             std::string_view request_uri);
  static Message makeResponse(int status_code, std::string_view reason);

  bool isRequest() const { return is_request_; }
  bool isResponse() const { return !is_request_; }

  // Requests.
  Method method() const { return method_; }
  std::string_view methodText() const {
    return method_text_;
  }  // exact token, also for unknown methods
  std::string_view requestUriText() const { return request_uri_text_; }
  // The parsed Request-URI (cached). REQUIRES: isRequest(). For a message that did not parse
  // kOk and whose Request-URI is unparsable, returns a kOther Uri holding only `text`.
  const Uri& requestUri() const;
  void setRequestUri(std::string_view uri);
  std::string_view version() const { return version_; }  // "SIP/2.0" as written

  // Responses.
  int statusCode() const { return status_code_; }
  std::string_view reasonPhrase() const { return reason_; }

  // Headers in wire order (removed ones skipped by the helpers below).
  const std::vector<HeaderField>& headers() const { return headers_; }
  const HeaderField* find(HeaderId id) const;            // first, or nullptr
  const HeaderField* find(std::string_view name) const;  // by name, case-insensitive, any form
  std::vector<std::string_view> values(
      HeaderId id) const;  // every field value of that header, in order
  std::size_t count(HeaderId id) const;

  // Typed access (errors are Status with a precise message).
  // Parsed once: for a message that parsed kOk, parseMessage() already filled the top Via,
  // From, To and CSeq while validating them; Contact is parsed on the first contacts() call.
  // A returned reference points into this Message object: it stays valid until the Message is
  // moved or destroyed or that header is edited (pushVia/popVia for the top Via). Copy the
  // Result (`auto v = m.topVia();`) to keep it across a move.
  const Result<Via>& topVia() const;
  const Result<NameAddr>& from() const;
  const Result<NameAddr>& to() const;
  const Result<CSeq>& cseq() const;
  const Result<std::vector<ContactValue>>& contacts() const;  // "*": one value with star=true
  // Parsed on every call.
  Result<std::vector<Via>> vias() const;  // all Via values, comma lists split, top first
  std::string_view callId() const;        // "" if absent
  Result<int> maxForwards() const;        // kNotFound status if absent
  Result<std::vector<NameAddr>> routes() const;
  Result<std::vector<NameAddr>> recordRoutes() const;
  Result<std::vector<NameAddr>> paths() const;
  Result<std::uint32_t> expires() const;     // Expires header (delta-seconds); kNotFound if absent
  Result<std::uint32_t> minExpires() const;  // Min-Expires header; kNotFound if absent
  Result<std::vector<std::string_view>> optionTags(HeaderId id) const;  // Require/Supported/...
  std::string_view body() const { return body_; }

  // Edits. Each keeps all other bytes as they were.
  void pushVia(std::string value);  // new top Via
  void popVia();                    // removes the top Via value (only that value of a comma list)
  void prependHeader(HeaderId id,
                     std::string value);  // e.g. Record-Route; placed before the first of its kind
  void appendHeader(std::string_view name, std::string value);
  void removeHeaders(HeaderId id);
  // Removes the one field at `index` of headers() (e.g. one of several credentials).
  // REQUIRES: index < headers().size().
  void removeHeaderAt(std::size_t index);
  void setHeader(HeaderId id, std::string value);  // replaces every field of that id with one
  void decrementMaxForwards();                     // REQUIRES: Max-Forwards present, valid and > 0
  void setBody(std::string content_type, std::string body);  // also fixes Content-Length

  // Wire form: start line, header fields, CRLF, body. Content-Length is always written
  // consistently with the body.
  std::string serialize() const;
  std::size_t wireSizeHint() const;

 private:
  Message() = default;
  friend class Parser;
  friend struct MessageBuilderAccess;
  friend Message makeResponseTo(const Message&, int, std::string_view, std::string_view);

  HeaderField makeField(HeaderId id, std::string_view name, std::string value);
  std::size_t firstIndexOf(HeaderId id) const;  // headers_.size() if none

  std::shared_ptr<const std::string> buffer_;  // bytes as received (or the request's, see above)
  // Stable storage for edited/added values (node-based: no allocation while empty, and moving a
  // Message never moves the strings the views point into).
  std::forward_list<std::string> owned_;
  bool is_request_ = true;
  Method method_ = Method::kUnknown;
  std::string_view method_text_;
  std::string_view request_uri_text_;
  std::string_view version_;
  int status_code_ = 0;
  std::string_view reason_;
  bool start_line_edited_ = false;
  std::string_view raw_start_line_;
  std::vector<HeaderField> headers_;
  std::string_view body_;
  mutable std::optional<Uri> request_uri_;
  // Typed values parsed once (see topVia()); views into buffer_/owned_, so moves keep them valid.
  mutable std::optional<Result<Via>> top_via_;
  mutable std::optional<Result<NameAddr>> from_;
  mutable std::optional<Result<NameAddr>> to_;
  mutable std::optional<Result<CSeq>> cseq_;
  mutable std::optional<Result<std::vector<ContactValue>>> contacts_;
  void forgetParsed(HeaderId id);  // drops the cached value of that header after an edit
};

// Outcome of parsing bytes from the network.
// "Answerable" means: a request whose top Via has a readable sent-by and that has a CSeq header
// field; makeResponseTo() copies whatever From/To/Call-ID exist (RFC 4475 §3.3.1 asks for a 400
// even when From, To and Call-ID are missing). Status codes used: 400 (reason
// "Bad Request - <defect>"), 416 (Request-URI scheme not sip/sips/tel), 505 (SIP version other
// than 2.0), 513 (a ParseLimits bound was exceeded). 420/483 are for the proxy layer.
struct ParseOutcome {
  enum class Kind {
    kOk,      // message parsed and passed validation
    kReject,  // a request we can answer: send `status_code`/`reason` (message holds what parsed)
    kDrop,    // unanswerable (response, or not enough parsed to build a response): drop and count
  };
  Kind kind = Kind::kDrop;
  std::optional<Message> message;  // present for kOk and kReject
  int status_code = 0;             // for kReject: 400, 505, 416, 420, 483, 413, 513 ...
  std::string reason;              // precise reason phrase, e.g. "Bad Request - Malformed CSeq"
  std::string drop_reason;         // for kDrop/kReject: for stats and debug logs
};

// Parses exactly one message from `bytes` (a datagram, or one frame cut by StreamFramer) and
// validates it (RFC 3261, RFC 4475; see tests/data/rfc4475/EXPECTED.md for each torture case).
// A body longer than Content-Length is truncated; shorter is an error (§18.3); without a
// Content-Length the body is the rest of the bytes (a UDP datagram, §20.14).
ParseOutcome parseMessage(std::string bytes, const ParseLimits& limits);

// Builds a response to `request` per RFC 3261 §8.2.6: copies Via (all), From, To (adds `to_tag`
// if To has none and to_tag non-empty), Call-ID, CSeq; Content-Length: 0. Works on a request
// that failed validation as long as those headers are present.
Message makeResponseTo(const Message& request, int status_code, std::string_view reason,
                       std::string_view to_tag = {});

}  // namespace sipwake::sip
