#include "push/payload.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>

#include "common/status.h"

namespace sipwake::push {
namespace {

std::string formatUuid(std::array<unsigned char, 16> b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0xf]);
  }
  return out;
}

void setVersion(std::array<unsigned char, 16>& b, unsigned version) {
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | (version << 4));
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 9562 variant 10xx
}

}  // namespace

std::string_view callEventName(CallEventKind k) {
  switch (k) {
    case CallEventKind::kCall:
      return "call";
    case CallEventKind::kCancel:
      return "cancel";
    case CallEventKind::kMissed:
      return "missed";
    case CallEventKind::kAnsweredElsewhere:
      return "answered_elsewhere";
    case CallEventKind::kRefresh:
      return "refresh";
    case CallEventKind::kMessage:
      return "message";
  }
  return "?";
}

std::string deriveCallUuid(std::string_view call_id, std::string_view callee_aor,
                           std::string_view salt) {
  std::string material(salt);
  material.push_back('\0');
  material.append(call_id);
  material.push_back('\0');
  material.append(callee_aor);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SIPWAKE_CHECK(EVP_Digest(material.data(), material.size(), md, &len, EVP_sha256(), nullptr) == 1);
  std::array<unsigned char, 16> b{};
  std::copy(md, md + 16, b.begin());
  setVersion(b, 8);
  return formatUuid(b);
}

std::string randomUuidV4() {
  std::array<unsigned char, 16> b{};
  SIPWAKE_CHECK(RAND_bytes(b.data(), static_cast<int>(b.size())) == 1);
  setVersion(b, 4);
  return formatUuid(b);
}

std::string truncateUtf8(std::string_view s, std::size_t max) {
  if (s.size() <= max) return std::string(s);
  std::size_t cut = max;
  // Back up over continuation bytes (10xxxxxx) so the cut lands before a lead byte.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
  return std::string(s.substr(0, cut));
}

nlohmann::json callEventFields(const CallEvent& ev) {
  nlohmann::json fields{
      {"event", callEventName(ev.kind)},
      {"call_id", truncateUtf8(ev.call_id, kMaxUriBytes)},
      {"call_uuid", ev.call_uuid},
      {"caller_uri", truncateUtf8(ev.caller_uri, kMaxUriBytes)},
      {"caller_name", truncateUtf8(ev.caller_display_name, kMaxDisplayNameBytes)},
      {"callee_aor", truncateUtf8(ev.callee_aor, kMaxUriBytes)},
      {"sent_at", std::to_string(ev.sent_at_ms)},
  };
  if (!ev.preview.empty()) fields["preview"] = truncateUtf8(ev.preview, kMaxPreviewBytes);
  return fields;
}

std::string dumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sipwake::push
