// Internal to src/sip: the validate-or-collect entry points shared by uri.cc, headers.cc and
// parser.cc. With collect=false the parsers check the full grammar but fill no parameter
// vectors, so parseMessage() validates a message without a heap allocation per header.
#pragma once

#include <string_view>

#include "common/status.h"
#include "sip/chars.h"
#include "sip/headers.h"
#include "sip/uri.h"

namespace sipwake::sip::detail {

Status parseUriInto(std::string_view text, Uri& out, bool collect);
// host = hostname / IPv4address / IPv6reference (brackets included).
Status checkHost(std::string_view host);

// Parses one via-parm at the cursor (which may sit on leading LWS). Stops before the ',' that
// separates it from the next one. With sent_by_only, stops after sent-by (for "can we answer").
// `branch`, if given, receives the branch parameter's value (also when not collecting).
Status parseViaAt(Cursor& c, Via& out, bool collect, bool sent_by_only = false,
                  std::string_view* branch = nullptr);
// Parses one name-addr / addr-spec with its header params at the cursor. `in_list`: a ','
// ends an addr-spec (Contact, Route); otherwise the caller checks that nothing follows.
Status parseNameAddrAt(Cursor& c, NameAddr& out, bool collect, bool in_list);

// Validation-only forms (no allocation on success).
Status validateViaList(std::string_view value, std::string_view* top_branch);
Status validateNameAddr(std::string_view value);
Status validateNameAddrList(std::string_view value, bool allow_star);
Status validateTokenList(std::string_view value);
Status validateCallId(std::string_view value);
Status parseMaxForwardsValue(std::string_view value, int* out);
// Content-Length value; distinguishes a negative number for the reason phrase.
Status parseContentLengthValue(std::string_view value, std::size_t* out, bool* negative);

}  // namespace sipwake::sip::detail
