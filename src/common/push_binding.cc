#include "common/push_binding.h"

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

namespace sipwake::push {
namespace {

using Json = nlohmann::json;

std::string hexOf(const unsigned char* data, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xf]);
  }
  return out;
}

}  // namespace

std::string_view providerName(Provider p) {
  switch (p) {
    case Provider::kApns:
      return "apns";
    case Provider::kFcm:
      return "fcm";
    case Provider::kWebpush:
      return "webpush";
  }
  return "?";
}

std::string_view dialectName(Dialect d) {
  switch (d) {
    case Dialect::kRfc8599:
      return "rfc8599";
    case Dialect::kAbto:
      return "abto";
    case Dialect::kPjsip:
      return "pjsip";
    case Dialect::kLinphoneLegacy:
      return "linphone-legacy";
  }
  return "?";
}

std::string_view PushBinding::appKey() const {
  switch (provider) {
    case Provider::kApns:
      return app_id;
    case Provider::kFcm:
      return project_id.empty() ? std::string_view(app_id) : std::string_view(project_id);
    case Provider::kWebpush:
      return {};
  }
  return {};
}

std::string PushBinding::deviceKey() const {
  std::string material(providerName(provider));
  material.push_back('|');
  material.append(callToken());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SIPWAKE_CHECK(EVP_Digest(material.data(), material.size(), md, &len, EVP_sha256(), nullptr) == 1);
  return std::string(providerName(provider)) + ":" + hexOf(md, 16);
}

// Fields at their default (empty, false, the RFC 8599 dialect, no Linphone strings) are left
// out: deserialize() reads an absent field as its default, and a row holds half as many bytes.
std::string serialize(const PushBinding& b) {
  Json j;
  j["v"] = 1;
  j["provider"] = providerName(b.provider);
  auto put = [](Json& o, const char* key, const std::string& v) {
    if (!v.empty()) o[key] = v;
  };
  if (b.sandbox) j["sandbox"] = true;
  if (b.dialect != Dialect::kRfc8599) j["dialect"] = dialectName(b.dialect);
  put(j, "app_id", b.app_id);
  put(j, "team_id", b.team_id);
  put(j, "project_id", b.project_id);
  put(j, "voip_token", b.voip_token);
  put(j, "message_token", b.message_token);
  put(j, "purr", b.purr);
  if (b.has_pnsreg) j["pnsreg"] = true;
  Json l = Json::object();
  put(l, "call_str", b.linphone.call_str);
  put(l, "msg_str", b.linphone.msg_str);
  put(l, "groupchat_str", b.linphone.groupchat_str);
  put(l, "call_snd", b.linphone.call_snd);
  put(l, "msg_snd", b.linphone.msg_snd);
  if (b.linphone.timeout) l["timeout"] = *b.linphone.timeout;
  if (b.linphone.silent) l["silent"] = true;
  if (!l.empty()) j["linphone"] = std::move(l);
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<PushBinding> deserialize(std::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalidArgument("push binding: not a JSON object");
  auto str = [&j](const char* key, std::string& out) -> bool {
    auto it = j.find(key);
    if (it == j.end()) return true;  // absent = empty
    if (!it->is_string()) return false;
    out = it->get<std::string>();
    return true;
  };
  auto it = j.find("v");
  if (it == j.end() || !it->is_number_integer() || it->get<int>() != 1) {
    return invalidArgument("push binding: unsupported version");
  }
  PushBinding b;
  std::string provider, dialect;
  if (!str("provider", provider)) return invalidArgument("push binding: bad provider");
  if (provider == "apns") {
    b.provider = Provider::kApns;
  } else if (provider == "fcm") {
    b.provider = Provider::kFcm;
  } else if (provider == "webpush") {
    b.provider = Provider::kWebpush;
  } else {
    return invalidArgument("push binding: unknown provider");
  }
  if (!str("dialect", dialect)) return invalidArgument("push binding: bad dialect");
  b.dialect = dialect == "abto"              ? Dialect::kAbto
              : dialect == "pjsip"           ? Dialect::kPjsip
              : dialect == "linphone-legacy" ? Dialect::kLinphoneLegacy
                                             : Dialect::kRfc8599;
  if (auto s = j.find("sandbox"); s != j.end()) {
    if (!s->is_boolean()) return invalidArgument("push binding: bad sandbox");
    b.sandbox = s->get<bool>();
  }
  if (auto s = j.find("pnsreg"); s != j.end()) {
    if (!s->is_boolean()) return invalidArgument("push binding: bad pnsreg");
    b.has_pnsreg = s->get<bool>();
  }
  if (!str("app_id", b.app_id) || !str("team_id", b.team_id) || !str("project_id", b.project_id) ||
      !str("voip_token", b.voip_token) || !str("message_token", b.message_token) ||
      !str("purr", b.purr)) {
    return invalidArgument("push binding: a field is not a string");
  }
  if (b.callToken().empty()) return invalidArgument("push binding: no token");
  if (auto l = j.find("linphone"); l != j.end()) {
    if (!l->is_object()) return invalidArgument("push binding: bad linphone strings");
    const Json& lj = *l;
    auto lstr = [&lj](const char* key, std::string& out) -> bool {
      auto f = lj.find(key);
      if (f == lj.end()) return true;
      if (!f->is_string()) return false;
      out = f->get<std::string>();
      return true;
    };
    if (!lstr("call_str", b.linphone.call_str) || !lstr("msg_str", b.linphone.msg_str) ||
        !lstr("groupchat_str", b.linphone.groupchat_str) ||
        !lstr("call_snd", b.linphone.call_snd) || !lstr("msg_snd", b.linphone.msg_snd)) {
      return invalidArgument("push binding: bad linphone strings");
    }
    if (auto t = lj.find("timeout"); t != lj.end()) {
      if (!t->is_number_unsigned() || t->get<std::uint64_t>() > kMaxPnTimeoutSecs) {
        return invalidArgument("push binding: bad timeout");
      }
      b.linphone.timeout = t->get<std::uint32_t>();
    }
    if (auto s = lj.find("silent"); s != lj.end()) {
      if (!s->is_boolean()) return invalidArgument("push binding: bad silent");
      b.linphone.silent = s->get<bool>();
    }
  }
  return b;
}
}  // namespace sipwake::push
