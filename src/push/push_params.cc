#include "push/push_params.h"


#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <vector>

namespace sipwake::push {
namespace {


constexpr std::size_t kMaxValueLen = 4096;
constexpr std::size_t kMinApnsTokenLen = 64;
constexpr std::size_t kMaxApnsTokenLen = 200;
constexpr std::size_t kMinFcmTokenLen = 16;
constexpr std::size_t kMaxFcmTokenLen = 1024;
constexpr std::size_t kMaxWebpushUriLen = 2048;
constexpr std::size_t kMaxAppLen = 256;
constexpr std::uint32_t kMaxPnTimeout = kMaxPnTimeoutSecs;
constexpr std::string_view kNotSupported = "Push Notification Service Not Supported";

// Every parameter name we read. Names starting with "pn-" or "push-token-" are push params too.
constexpr std::array<std::string_view, 19> kKnownNames = {
    "pn-provider", "pn-param",    "pn-prid",         "pn-purr",          "pn-call-str",
    "pn-msg-str",  "pn-call-snd", "pn-msg-snd",      "pn-groupchat-str", "pn-timeout",
    "pn-silent",   "pn-type",     "pn-tok",          "pn-voip-tok",      "pn-im-tok",
    "pn-platform", "app-id",      "push-token-type", "push-token-app",
};
constexpr std::string_view kPushTokenId = "push-token-id";
constexpr std::string_view kPnsregTag = "+sip.pnsreg";

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

bool istartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool isHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// Well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
bool isValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

PushParamError bad(std::string_view param, std::string_view why) {
  std::string r = "Bad Request - ";
  r.append(param);
  r.push_back(' ');
  r.append(why);
  return PushParamError{400, std::move(r)};
}

PushParamError notSupported() { return PushParamError{555, std::string(kNotSupported)}; }

struct Entry {
  std::string name;   // lower case
  std::string value;  // %-decoded
  bool has_value = false;
};

class ParamTable {
 public:
  const Entry* get(std::string_view name) const {
    for (const Entry& e : entries_) {
      if (e.name == name) return &e;
    }
    return nullptr;
  }
  bool has(std::string_view name) const { return get(name) != nullptr; }
  std::string_view value(std::string_view name) const {
    const Entry* e = get(name);
    return e ? std::string_view(e->value) : std::string_view();
  }
  // Adds a decoded param; a repeat with another value is a conflict (returns false).
  bool add(Entry e) {
    for (const Entry& old : entries_) {
      if (old.name == e.name) return old.value == e.value && old.has_value == e.has_value;
    }
    entries_.push_back(std::move(e));
    return true;
  }
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<Entry> entries_;
};

struct ProviderAlias {
  Provider provider;
  bool sandbox;
};

// Maps the provider names clients use (lower-cased) to a provider; nullopt = unknown.
std::optional<ProviderAlias> mapProvider(std::string_view lowered) {
  if (lowered == "apns" || lowered == "apple" || lowered == "ios") {
    return ProviderAlias{Provider::kApns, false};
  }
  if (lowered == "apns.dev") return ProviderAlias{Provider::kApns, true};
  if (lowered == "fcm" || lowered == "firebase" || lowered == "google" || lowered == "android" ||
      lowered == "gcm") {
    return ProviderAlias{Provider::kFcm, false};
  }
  if (lowered == "webpush") return ProviderAlias{Provider::kWebpush, false};
  return std::nullopt;
}

std::optional<PushParamError> checkApnsToken(std::string_view param, std::string& token) {
  if (token.empty()) return bad(param, "missing");
  if (!std::all_of(token.begin(), token.end(), isHex)) return bad(param, "is not a hex APNs token");
  if (token.size() < kMinApnsTokenLen || token.size() > kMaxApnsTokenLen) {
    return bad(param, "has a bad APNs token length");
  }
  for (char& c : token) c = lower(c);
  return std::nullopt;
}

std::optional<PushParamError> checkFcmToken(std::string_view param, std::string_view token) {
  if (token.empty()) return bad(param, "missing");
  for (char c : token) {
    if (!(isAlnum(c) || c == '_' || c == ':' || c == '-')) {
      return bad(param, "has a character not allowed in an FCM token");
    }
  }
  if (token.size() < kMinFcmTokenLen || token.size() > kMaxFcmTokenLen) {
    return bad(param, "has a bad FCM token length");
  }
  return std::nullopt;
}

std::optional<PushParamError> checkWebpushUri(std::string_view param, std::string_view uri) {
  if (uri.empty()) return bad(param, "missing");
  if (!istartsWith(uri, "https://") || uri.size() <= 8) return bad(param, "must be an https URI");
  if (uri.size() > kMaxWebpushUriLen) return bad(param, "too long");
  for (char c : uri) {
    if (c == ' ' || c == '"' || c == '<' || c == '>') return bad(param, "is not a valid URI");
  }
  return std::nullopt;
}

// Bundle id / package name: letters, digits, '.', '-', '_'.
std::optional<PushParamError> checkBundleId(std::string_view param, std::string_view id) {
  if (id.empty()) return bad(param, "has an empty app id");
  if (id.size() > kMaxAppLen) return bad(param, "too long");
  for (char c : id) {
    if (!(isAlnum(c) || c == '.' || c == '-' || c == '_')) {
      return bad(param, "has a character not allowed in a bundle id");
    }
  }
  if (id.front() == '.' || id.back() == '.') return bad(param, "has a malformed bundle id");
  return std::nullopt;
}

// Free-form app name (ABTO push-token-app "hero voip"): printable, bounded.
std::optional<PushParamError> checkAppName(std::string_view param, std::string_view name) {
  if (name.size() > kMaxAppLen) return bad(param, "too long");
  return std::nullopt;  // control characters were rejected while decoding
}

std::optional<PushParamError> checkProjectId(std::string_view param, std::string_view id) {
  if (id.empty() || id.size() > 128) return bad(param, "has a bad FCM project id length");
  for (char c : id) {
    if (!(isAlnum(c) || c == '-' || c == '.' || c == '_' || c == ':')) {
      return bad(param, "has a character not allowed in an FCM project id");
    }
  }
  return std::nullopt;
}

// The Linphone/Flexisip alert strings, accepted in every dialect.
std::optional<PushParamError> readLinphoneStrings(const ParamTable& t, LinphoneStrings& out) {
  struct Field {
    std::string_view name;
    std::string* dst;
  };
  const Field fields[] = {{"pn-call-str", &out.call_str},
                          {"pn-msg-str", &out.msg_str},
                          {"pn-groupchat-str", &out.groupchat_str},
                          {"pn-call-snd", &out.call_snd},
                          {"pn-msg-snd", &out.msg_snd}};
  for (const Field& f : fields) {
    std::string_view v = t.value(f.name);
    if (v.size() > kMaxAppLen) return bad(f.name, "too long");
    *f.dst = std::string(v);
  }
  if (const Entry* e = t.get("pn-timeout")) {
    std::uint32_t secs = 0;
    const char* end = e->value.data() + e->value.size();
    auto [p, ec] = std::from_chars(e->value.data(), end, secs);
    if (e->value.empty() || ec != std::errc() || p != end || secs > kMaxPnTimeout) {
      return bad("pn-timeout", "must be seconds 0..3600");
    }
    out.timeout = secs;
  }
  if (const Entry* e = t.get("pn-silent")) {
    if (!e->has_value || e->value == "1" || iequals(e->value, "true")) {
      out.silent = true;
    } else if (e->value == "0" || iequals(e->value, "false")) {
      out.silent = false;
    } else {
      return bad("pn-silent", "must be 0 or 1");
    }
  }
  return std::nullopt;
}

struct ApnsService {
  bool voip = false;
  bool remote = false;
};

// pn-param for APNs: "<TeamID>.<BundleID>.<service>": the first dot ends the team id, the last
// dot starts the service (RFC 8599 §9.2).
std::optional<PushParamError> parseApnsPnParam(std::string_view v, PushBinding& b,
                                               ApnsService& svc) {
  constexpr std::string_view kParam = "pn-param";
  std::size_t first = v.find('.');
  std::size_t last = v.rfind('.');
  if (first == std::string_view::npos || first == last) {
    return bad(kParam, "must be TEAMID.bundle.id.service");
  }
  std::string_view team = v.substr(0, first);
  std::string_view bundle = v.substr(first + 1, last - first - 1);
  std::string_view service = v.substr(last + 1);
  if (team.empty() || team.size() > 32 || !std::all_of(team.begin(), team.end(), isAlnum)) {
    return bad(kParam, "has a malformed team id");
  }
  if (auto err = checkBundleId(kParam, bundle)) return err;
  if (service == "voip") {
    svc.voip = true;
  } else if (service == "remote") {
    svc.remote = true;
  } else if (service == "remote&voip" || service == "voip&remote") {
    svc.voip = svc.remote = true;
  } else {
    return bad(kParam, "service must be voip, remote or remote&voip");
  }
  b.team_id = std::string(team);
  b.app_id = std::string(bundle);
  return std::nullopt;
}

// pn-prid for APNs: one token, or "tok1:remote&tok2:voip" (Flexisip).
std::optional<PushParamError> parseApnsPrid(std::string_view v, const ApnsService& svc,
                                            PushBinding& b) {
  constexpr std::string_view kParam = "pn-prid";
  if (v.empty()) return bad(kParam, "missing");
  if (v.find(':') == std::string_view::npos) {
    std::string token(v);
    if (auto err = checkApnsToken(kParam, token)) return err;
    if (svc.voip && svc.remote) return bad(kParam, "must be tok:remote&tok:voip for remote&voip");
    (svc.voip ? b.voip_token : b.message_token) = std::move(token);
    return std::nullopt;
  }
  std::size_t pos = 0;
  while (pos <= v.size()) {
    std::size_t amp = v.find('&', pos);
    std::string_view item = v.substr(pos, amp == std::string_view::npos ? v.npos : amp - pos);
    std::size_t colon = item.rfind(':');
    if (colon == std::string_view::npos) return bad(kParam, "list item lacks :remote or :voip");
    std::string token(item.substr(0, colon));
    std::string_view kind = item.substr(colon + 1);
    if (auto err = checkApnsToken(kParam, token)) return err;
    std::string* dst = nullptr;
    if (kind == "voip") {
      dst = &b.voip_token;
    } else if (kind == "remote") {
      dst = &b.message_token;
    } else {
      return bad(kParam, "has an unknown token type");
    }
    if (!dst->empty()) return bad(kParam, "repeats a token type");
    *dst = std::move(token);
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  if (svc.voip && b.voip_token.empty()) return bad(kParam, "has no voip token");
  if (svc.remote && b.message_token.empty()) return bad(kParam, "has no remote token");
  return std::nullopt;
}

// pn-prid for FCM: the registration token (it contains ':' itself). A Flexisip-style ":remote" /
// ":voip" label is tolerated; FCM has one token per app instance.
std::optional<PushParamError> parseFcmPrid(std::string_view v, PushBinding& b) {
  constexpr std::string_view kParam = "pn-prid";
  if (v.empty()) return bad(kParam, "missing");
  std::string token;
  std::size_t pos = 0;
  while (true) {
    std::size_t amp = v.find('&', pos);
    std::string_view item = v.substr(pos, amp == std::string_view::npos ? v.npos : amp - pos);
    if (endsWith(item, ":remote")) {
      item.remove_suffix(7);
    } else if (endsWith(item, ":voip")) {
      item.remove_suffix(5);
    }
    if (token.empty()) {
      token = std::string(item);
    } else if (token != item) {
      return bad(kParam, "lists several FCM tokens");
    }
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  if (auto err = checkFcmToken(kParam, token)) return err;
  b.message_token = std::move(token);
  return std::nullopt;
}

std::optional<PushParamError> parseRfc8599(const ParamTable& t, PushBinding& b) {
  b.dialect = Dialect::kRfc8599;
  const Entry* prov = t.get("pn-provider");
  if (!prov->has_value || prov->value.empty()) return bad("pn-provider", "empty");
  auto alias = mapProvider(toLower(prov->value));
  if (!alias) return notSupported();
  b.provider = alias->provider;
  b.sandbox = alias->sandbox;
  const Entry* prid = t.get("pn-prid");
  const Entry* param = t.get("pn-param");
  if (b.provider == Provider::kApns) {
    if (param == nullptr || param->value.empty()) return bad("pn-param", "missing");
    ApnsService svc;
    if (auto err = parseApnsPnParam(param->value, b, svc)) return err;
    if (prid == nullptr) return bad("pn-prid", "missing");
    if (auto err = parseApnsPrid(prid->value, svc, b)) return err;
  } else if (b.provider == Provider::kFcm) {
    if (param != nullptr) {
      if (auto err = checkProjectId("pn-param", param->value)) return err;
      b.project_id = param->value;
    }
    if (prid == nullptr) return bad("pn-prid", "missing");
    if (auto err = parseFcmPrid(prid->value, b)) return err;
  } else {
    if (prid == nullptr) return bad("pn-prid", "missing");
    if (auto err = checkWebpushUri("pn-prid", prid->value)) return err;
    b.message_token = prid->value;
  }
  if (const Entry* purr = t.get("pn-purr")) {
    if (purr->value.empty() || purr->value.size() > 256) return bad("pn-purr", "has a bad length");
    b.purr = purr->value;
  }
  return std::nullopt;
}

std::optional<PushParamError> parseAbto(const ParamTable& t, PushBinding& b) {
  b.dialect = Dialect::kAbto;
  const Entry* type = t.get("push-token-type");
  if (type == nullptr || type->value.empty()) return bad("push-token-type", "missing");
  auto alias = mapProvider(toLower(type->value));
  if (!alias || alias->provider == Provider::kWebpush) return notSupported();
  b.provider = alias->provider;
  b.sandbox = alias->sandbox;
  const Entry* id = t.get(kPushTokenId);
  if (id == nullptr || id->value.empty()) return bad(kPushTokenId, "missing");
  std::string_view app = t.value("push-token-app");
  if (b.provider == Provider::kApns) {
    if (app.empty()) return bad("push-token-app", "missing");
    if (auto err = checkBundleId("push-token-app", app)) return err;
    std::string token = id->value;
    if (auto err = checkApnsToken(kPushTokenId, token)) return err;
    b.voip_token = std::move(token);  // ABTO's iOS SDK registers its PushKit token
  } else {
    if (auto err = checkAppName("push-token-app", app)) return err;
    if (auto err = checkFcmToken(kPushTokenId, id->value)) return err;
    b.message_token = id->value;
  }
  b.app_id = std::string(app);
  return std::nullopt;
}

std::optional<PushParamError> parsePjsip(const ParamTable& t, PushBinding& b) {
  b.dialect = Dialect::kPjsip;
  b.provider = Provider::kApns;  // mod_apn is APNs-only; pn-platform may say otherwise
  if (const Entry* platform = t.get("pn-platform")) {
    auto alias = mapProvider(toLower(platform->value));
    if (!alias || alias->provider == Provider::kWebpush) return notSupported();
    b.provider = alias->provider;
    b.sandbox = alias->sandbox;
  }
  std::string voip(t.value("pn-voip-tok"));
  std::string im(t.value("pn-im-tok"));
  if (voip.empty() && im.empty()) return bad("pn-voip-tok", "missing");
  std::string_view app = t.value("app-id");
  if (b.provider == Provider::kApns) {
    if (app.empty()) return bad("app-id", "missing");
    if (auto err = checkBundleId("app-id", app)) return err;
    if (!voip.empty()) {
      if (auto err = checkApnsToken("pn-voip-tok", voip)) return err;
    }
    if (!im.empty()) {
      if (auto err = checkApnsToken("pn-im-tok", im)) return err;
    }
    b.voip_token = std::move(voip);
    b.message_token = std::move(im);
  } else {
    if (auto err = checkAppName("app-id", app)) return err;
    std::string_view name = voip.empty() ? "pn-im-tok" : "pn-voip-tok";
    std::string& token = voip.empty() ? im : voip;
    if (auto err = checkFcmToken(name, token)) return err;
    b.message_token = std::move(token);
  }
  b.app_id = std::string(app);
  return std::nullopt;
}

std::optional<PushParamError> parseLinphoneLegacy(const ParamTable& t, PushBinding& b) {
  b.dialect = Dialect::kLinphoneLegacy;
  const Entry* type = t.get("pn-type");
  if (type == nullptr || type->value.empty()) return bad("pn-type", "missing");
  auto alias = mapProvider(toLower(type->value));
  if (!alias || alias->provider == Provider::kWebpush) return notSupported();
  b.provider = alias->provider;
  b.sandbox = alias->sandbox;
  const Entry* tok = t.get("pn-tok");
  if (tok == nullptr || tok->value.empty()) return bad("pn-tok", "missing");
  std::string_view app = t.value("app-id");
  if (b.provider == Provider::kApns) {
    // app-id "<bundle>[.voip].dev|.prod": the suffix picks the environment; ".voip" says the
    // token is a PushKit token.
    if (endsWith(app, ".dev")) {
      b.sandbox = true;
      app.remove_suffix(4);
    } else if (endsWith(app, ".prod")) {
      app.remove_suffix(5);
    }
    bool voip = false;
    if (endsWith(app, ".voip")) {
      voip = true;
      app.remove_suffix(5);
    }
    if (app.empty()) return bad("app-id", "missing");
    if (auto err = checkBundleId("app-id", app)) return err;
    std::string token = tok->value;
    if (auto err = checkApnsToken("pn-tok", token)) return err;
    (voip ? b.voip_token : b.message_token) = std::move(token);
  } else {
    if (auto err = checkAppName("app-id", app)) return err;
    if (auto err = checkFcmToken("pn-tok", tok->value)) return err;
    b.message_token = tok->value;
  }
  b.app_id = std::string(app);
  return std::nullopt;
}


}  // namespace

std::optional<std::string> percentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size() || !isHex(in[i + 1]) || !isHex(in[i + 2])) return std::nullopt;
    auto nibble = [](char c) {
      return static_cast<unsigned>(
          std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : lower(c) - 'a' + 10);
    };
    out.push_back(static_cast<char>(nibble(in[i + 1]) << 4 | nibble(in[i + 2])));
    i += 2;
  }
  return out;
}

bool isPushParamName(std::string_view name) {
  if (istartsWith(name, "pn-") || istartsWith(name, "push-token-")) return true;
  for (std::string_view known : kKnownNames) {
    if (iequals(name, known)) return true;
  }
  return false;
}

PushParamsResult parsePushParams(std::span<const RawParam> params, const ServesFn& serves) {
  ParamTable table;
  bool pnsreg = false;
  for (const RawParam& p : params) {
    if (iequals(p.name, kPnsregTag)) {
      pnsreg = true;
      continue;
    }
    // Only names we interpret are read (so a reason phrase only ever names one of them); other
    // "pn-*" names are merely stripped when forwarding.
    bool known = iequals(p.name, kPushTokenId) ||
                 std::any_of(kKnownNames.begin(), kKnownNames.end(),
                             [&p](std::string_view k) { return iequals(p.name, k); });
    if (!known) continue;
    std::string name = toLower(p.name);
    if (p.value.size() > kMaxValueLen) return bad(name, "too long");
    std::optional<std::string> decoded = percentDecode(p.value);
    if (!decoded) return bad(name, "has a bad %-escape");
    for (unsigned char c : *decoded) {
      if (c < 0x20 || c == 0x7f) return bad(name, "has control characters");
    }
    if (!isValidUtf8(*decoded)) return bad(name, "is not UTF-8");
    std::string value = std::move(*decoded);
    // A quoted header-param value (gen-value = quoted-string) is taken without its quotes.
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (!table.add(Entry{name, std::move(value), p.has_value})) return bad(name, "conflicting");
  }
  if (table.empty()) return std::optional<PushBinding>();

  PushBinding b;
  std::optional<PushParamError> err;
  if (table.has("pn-provider")) {
    err = parseRfc8599(table, b);
  } else if (table.has("push-token-type") || table.has(kPushTokenId) ||
             table.has("push-token-app")) {
    err = parseAbto(table, b);
  } else if (table.has("pn-type") || table.has("pn-tok")) {
    err = parseLinphoneLegacy(table, b);
  } else if (table.has("pn-voip-tok") || table.has("pn-im-tok") || table.has("pn-platform")) {
    err = parsePjsip(table, b);
  } else if (table.has("pn-prid") || table.has("pn-param") || table.has("pn-purr")) {
    err = bad("pn-provider", "missing");
  } else {
    // Only app-id and/or alert strings: nothing identifies a device, so no push (RFC 8599: a UA
    // disables push by registering without a token).
    return std::optional<PushBinding>();
  }
  if (err) return *err;
  if (auto e = readLinphoneStrings(table, b.linphone)) return *e;
  b.has_pnsreg = pnsreg;
  if (serves && !serves(b)) return notSupported();
  return std::optional<PushBinding>(std::move(b));
}

std::string featureCapsValue(const PushBinding& binding, std::optional<std::uint32_t> pnsreg_secs) {
  std::string out = "*;+sip.pns=\"";
  out.append(providerName(binding.provider));
  out.push_back('"');
  if (binding.has_pnsreg && pnsreg_secs && *pnsreg_secs > 120) {
    out.append(";+sip.pnsreg=\"");
    out.append(std::to_string(*pnsreg_secs));
    out.push_back('"');
  }
  return out;
}

std::string redactToken(std::string_view token) {
  constexpr std::size_t kShown = 6;
  if (token.empty()) return "";
  // Short values are hidden entirely: six characters of a ten-character secret is too much.
  if (token.size() <= 2 * kShown) return "…";
  return std::string(token.substr(0, kShown)) + "…";
}

}  // namespace sipwake::push
