// Internal to src/sip: the validate-or-collect entry points shared by uri.cc, headers.cc and
// parser.cc. With collect=false the parsers check the full grammar but fill no parameter
// vectors, so parseMessage() validates a message without a heap allocation per header.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sip/chars.h"
#include "sip/headers.h"
#include "sip/uri.h"

namespace sipwake::sip::detail {

Status parseUriInto(std::string_view text, Uri& out, bool collect);

// Appends a parsed parameter; the first one reserves room for a typical list in one allocation.
inline void appendParam(std::vector<Param>& params, const Param& p) {
  if (params.capacity() == 0) params.reserve(4);
  params.push_back(p);
}
// host = hostname / IPv4address / IPv6reference (brackets included).
Status checkHost(std::string_view host);

// Parses one via-parm at the cursor (which may sit on leading LWS). Stops before the ',' that
// separates it from the next one. With sent_by_only, stops after sent-by (for "can we answer").
Status parseViaAt(Cursor& c, Via& out, bool collect, bool sent_by_only = false);
// How the header params after a name-addr are read.
struct NameAddrSyntax {
  // A ',' ends an addr-spec (Contact, Route); otherwise the caller checks that nothing follows.
  bool in_list = false;
  // Contact: an unquoted param value may hold SP/HT between gen-value words, up to the next ';',
  // ',' or the end ("push-token-app=hero voip", sent by the ABTO SDK). The value keeps its inner
  // blanks; anything else after a value is a defect named after that param.
  bool spaced_param_values = false;
};

// Parses one name-addr / addr-spec with its header params at the cursor. When the defect lies in
// a header param, `*bad_param` (if given) is set to that param's name (empty for a nameless one).
Status parseNameAddrAt(Cursor& c, NameAddr& out, bool collect, NameAddrSyntax syntax,
                       std::string_view* bad_param = nullptr);

// Reset a value before parsing into it, keeping the capacity of its vectors (assigning a
// temporary costs a construction, a deallocation and a destruction per call). Each lists every
// field; the size checks catch a field added to the struct without being added here.
inline void resetForParse(Uri& u) {
  static_assert(sizeof(Uri) == 152, "resetForParse(Uri) must reset every field");
  u.scheme = Uri::Scheme::kSip;
  u.scheme_text = {};
  u.user = {};
  u.password = {};
  u.has_password = false;
  u.host = {};
  u.port = 0;
  u.has_port = false;
  u.params.clear();
  u.headers.clear();
  u.text = {};
}
inline void resetForParse(NameAddr& na) {
  static_assert(sizeof(NameAddr) == sizeof(Uri) + 64, "resetForParse(NameAddr): every field");
  na.display_name = {};
  na.display_quoted = false;
  na.angle_brackets = false;
  resetForParse(na.uri);
  na.params.clear();
  na.text = {};
}
inline void resetForParse(Via& v) {
  static_assert(sizeof(Via) == 112, "resetForParse(Via) must reset every field");
  v.protocol_name = {};
  v.protocol_version = {};
  v.transport = {};
  v.host = {};
  v.port = 0;
  v.has_port = false;
  v.params.clear();
  v.text = {};
}

// `text` without each ";name[=value]" of `lists` that `drop` names. Every Param must view into
// `text`; one that does not (or is not preceded by ';') is kept.
std::string eraseParamsFrom(std::string_view text,
                            std::initializer_list<const std::vector<Param>*> lists,
                            ParamFilter drop);

// Parses straight into a Message's cache slot (no moves of the parsed value): `parse` fills
// the value and returns a Status; on failure the slot holds that Status instead.
template <typename T, typename Parse>
const Result<T>& parseIntoCache(std::optional<Result<T>>& slot, Parse&& parse) {
  Result<T>& r = slot.emplace(T{});
  if (Status s = parse(r.value()); !s) r = Result<T>(std::move(s));
  return r;
}

// From/To value: exactly one name-addr / addr-spec, nothing after it but LWS.
Status parseSingleNameAddr(std::string_view value, NameAddr& out);

// Validation-only forms (no allocation on success unless asked for a parsed value).
// Validates every via-parm of a Via field value; `top`, if given, receives the first one with
// its parameters.
Status validateViaList(std::string_view value, Via* top);
// Contact (allow_star) is read with NameAddrSyntax::spaced_param_values; `bad_param` as in
// parseNameAddrAt.
Status validateNameAddrList(std::string_view value, bool allow_star,
                            std::string_view* bad_param = nullptr);
Status validateTokenList(std::string_view value);
Status validateCallId(std::string_view value);
Status parseMaxForwardsValue(std::string_view value, int* out);
// Content-Length value; distinguishes a negative number for the reason phrase.
Status parseContentLengthValue(std::string_view value, std::size_t* out, bool* negative);

}  // namespace sipwake::sip::detail
