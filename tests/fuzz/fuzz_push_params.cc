// libFuzzer target: Contact push-parameter parsing (src/push/push_params.h).
// Input: a Contact parameter list as it follows a URI (";name=value;flag;..."). Checks:
//   * parsePushParams never crashes and errors are 400/555 with a one-line reason phrase that
//     never contains a control character;
//   * a parsed binding has a call token, serialises and deserialises to itself, and its
//     Feature-Caps value is well formed.
// The same input also goes through the SIP parser as the params of a Contact
// ("<sip:u@h>" + input, sip::parseContactList, whose unquoted values may hold blanks), and the
// parsed URI + header params through parsePushParams with the same checks: the path a REGISTER
// takes in the registrar.
// Build: configure with clang++ and -DSIPWAKE_BUILD_FUZZ=ON, then `ninja fuzz_push_params`;
// seeds live in tests/data/push/fuzz_corpus/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "push/push_params.h"
#include "sip/headers.h"

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

void checkParsed(const sipwake::push::PushParamsResult& r) {
  using namespace sipwake::push;
  if (!r.isOk()) {
    const PushParamError& e = r.error();
    check(e.sip_code == 400 || e.sip_code == 555);
    check(!e.reason.empty() && e.reason.size() < 200);
    for (unsigned char c : e.reason) check(c >= 0x20 && c != 0x7f);
    return;
  }
  if (!r.value()) return;
  const PushBinding& b = *r.value();
  check(!b.callToken().empty());
  auto back = deserialize(serialize(b));
  check(back.isOk() && *back == b);
  std::string caps = featureCapsValue(b, 3600);
  check(caps.rfind("*;+sip.pns=\"", 0) == 0);
  (void)b.deviceKey();
  (void)redactToken(b.callToken());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sipwake::push;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string contact = "<sip:u@h>" + std::string(in);
  std::vector<RawParam> params;
  while (!in.empty()) {
    std::size_t semi = in.find(';');
    std::string_view item = in.substr(0, semi);
    in = semi == std::string_view::npos ? std::string_view() : in.substr(semi + 1);
    if (item.empty()) continue;
    std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      params.push_back(RawParam{item, {}, false});
    } else {
      params.push_back(RawParam{item.substr(0, eq), item.substr(eq + 1), true});
    }
  }
  // The first byte, if any, picks a serves() policy so the 555 path is exercised too.
  ServesFn serves;
  if (size > 0 && (data[0] & 1)) {
    serves = [](const PushBinding& b) {
      return b.provider != Provider::kWebpush && !b.appKey().empty();
    };
  }
  checkParsed(parsePushParams(params, serves));

  auto contacts = sipwake::sip::parseContactList(contact);
  if (!contacts) return 0;
  for (const sipwake::sip::ContactValue& cv : *contacts) {
    if (cv.star) continue;
    std::vector<RawParam> raw;
    for (const auto& p : cv.addr.uri.params) raw.push_back(RawParam{p.name, p.value, p.has_value});
    for (const auto& p : cv.addr.params) raw.push_back(RawParam{p.name, p.value, p.has_value});
    checkParsed(parsePushParams(raw, serves));
  }
  return 0;
}
