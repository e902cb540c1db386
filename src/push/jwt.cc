#include "push/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <array>

namespace sipwake::push {
namespace {

using Json = nlohmann::json;

constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kMaxPemLen = 16 * 1024;
constexpr std::size_t kMaxJwtLen = 8 * 1024;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct SigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};

// Refuses to prompt for a passphrase: encrypted keys fail to load.
int noPassphrase(char*, int, int, void*) { return -1; }

std::string dumpJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string bioToString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

Key::Type classify(EVP_PKEY* pkey) {
  int id = EVP_PKEY_get_base_id(pkey);
  if (id == EVP_PKEY_RSA) return Key::Type::kRsa;
  if (id == EVP_PKEY_EC) {
    char group[64] = {0};
    std::size_t len = 0;
    if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &len) == 1 &&
        std::string_view(group, len) == "prime256v1") {
      return Key::Type::kEcP256;
    }
  }
  return Key::Type::kOther;
}

std::string_view algFor(Key::Type t) {
  switch (t) {
    case Key::Type::kEcP256:
      return "ES256";
    case Key::Type::kRsa:
      return "RS256";
    case Key::Type::kOther:
      break;
  }
  return "";
}

// Signs `input` with SHA-256; returns the JWS signature bytes (r||s for EC).
Result<std::string> signBytes(const Key& key, std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.raw()) != 1) {
    ERR_clear_error();
    return internalError("jwt: cannot initialise signing");
  }
  std::size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) != 1) {
    ERR_clear_error();
    return internalError("jwt: signing failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data,
                     input.size()) != 1) {
    ERR_clear_error();
    return internalError("jwt: signing failed");
  }
  sig.resize(len);
  if (key.type() != Key::Type::kEcP256) return sig;
  auto raw = ecdsaDerToRaw(sig);
  if (!raw) return internalError("jwt: bad ECDSA signature encoding");
  return *raw;
}

bool verifyBytes(const Key& key, std::string_view input, std::string_view sig) {
  std::string der;
  if (key.type() == Key::Type::kEcP256) {
    auto d = ecdsaRawToDer(sig);
    if (!d) return false;
    der = std::move(*d);
    sig = der;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.raw()) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  ERR_clear_error();
  return ok;
}

bool isUnreservedFormChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string formEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (isUnreservedFormChar(c)) {
      out.push_back(c);
    } else {
      auto u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  return out;
}

}  // namespace

std::string base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto at = [&bytes](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
    out.push_back(kB64Url[(v >> 6) & 63]);
    out.push_back(kB64Url[v & 63]);
  }
  std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    std::uint32_t v = at(i) << 16;
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
  } else if (rest == 2) {
    std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8);
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
    out.push_back(kB64Url[(v >> 6) & 63]);
  }
  return out;
}

std::optional<std::string> base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

Key::Key(std::shared_ptr<EVP_PKEY> pkey, bool is_private)
    : pkey_(std::move(pkey)), type_(classify(pkey_.get())), is_private_(is_private) {}

Result<Key> Key::privateFromPem(std::string_view pem) {
  if (pem.empty() || pem.size() > kMaxPemLen) return invalidArgument("key: empty or oversized PEM");
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw =
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, nullptr) : nullptr;
  ERR_clear_error();
  if (raw == nullptr) return invalidArgument("key: not an unencrypted PEM private key");
  return Key(std::shared_ptr<EVP_PKEY>(raw, EVP_PKEY_free), true);
}

Result<Key> Key::publicFromPem(std::string_view pem) {
  if (pem.empty() || pem.size() > kMaxPemLen) return invalidArgument("key: empty or oversized PEM");
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw = bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, noPassphrase, nullptr) : nullptr;
  ERR_clear_error();
  if (raw == nullptr) return invalidArgument("key: not a PEM public key");
  return Key(std::shared_ptr<EVP_PKEY>(raw, EVP_PKEY_free), false);
}

Result<Key> Key::generateEcP256() {
  EVP_PKEY* raw = EVP_EC_gen("P-256");
  ERR_clear_error();
  if (raw == nullptr) return internalError("key: EC key generation failed");
  return Key(std::shared_ptr<EVP_PKEY>(raw, EVP_PKEY_free), true);
}

Result<Key> Key::generateRsa(int bits) {
  EVP_PKEY* raw = EVP_RSA_gen(static_cast<unsigned>(bits));
  ERR_clear_error();
  if (raw == nullptr) return internalError("key: RSA key generation failed");
  return Key(std::shared_ptr<EVP_PKEY>(raw, EVP_PKEY_free), true);
}

Result<std::string> Key::publicPem() const {
  if (!valid()) return invalidArgument("key: empty");
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey_.get()) != 1) {
    ERR_clear_error();
    return internalError("key: cannot write public PEM");
  }
  return bioToString(bio.get());
}

Result<std::string> Key::privatePem() const {
  if (!valid() || !is_private_) return invalidArgument("key: not a private key");
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1) {
    ERR_clear_error();
    return internalError("key: cannot write private PEM");
  }
  return bioToString(bio.get());
}

std::optional<std::string> ecdsaDerToRaw(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, SigFree> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!sig || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return std::nullopt;
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out(64, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(r, o, 32) != 32 || BN_bn2binpad(s, o + 32, 32) != 32) return std::nullopt;
  return out;
}

std::optional<std::string> ecdsaRawToDer(std::string_view raw) {
  if (raw.size() != 64) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  std::unique_ptr<BIGNUM, BnFree> r(BN_bin2bn(p, 32, nullptr));
  std::unique_ptr<BIGNUM, BnFree> s(BN_bin2bn(p + 32, 32, nullptr));
  std::unique_ptr<ECDSA_SIG, SigFree> sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  r.release();  // owned by sig now
  s.release();
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return std::nullopt;
  std::string out(static_cast<std::size_t>(len), '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (i2d_ECDSA_SIG(sig.get(), &o) != len) return std::nullopt;
  return out;
}

Result<std::string> signJwt(const Key& key, const Json& header, const Json& claims) {
  if (!key.valid() || !key.isPrivate()) return invalidArgument("jwt: signing needs a private key");
  std::string_view alg = algFor(key.type());
  auto it = header.find("alg");
  if (alg.empty() || !header.is_object() || it == header.end() || !it->is_string() ||
      it->get<std::string>() != alg) {
    return invalidArgument("jwt: header alg does not match the key");
  }
  if (!claims.is_object()) return invalidArgument("jwt: claims must be an object");
  std::string input = base64UrlEncode(dumpJson(header));
  input.push_back('.');
  input += base64UrlEncode(dumpJson(claims));
  Result<std::string> sig = signBytes(key, input);
  if (!sig.isOk()) return sig.status();
  input.push_back('.');
  input += base64UrlEncode(*sig);
  return input;
}

Result<std::string> makeApnsJwt(const Key& key, std::string_view key_id, std::string_view team_id,
                                std::int64_t iat_unix) {
  if (key.type() != Key::Type::kEcP256) return invalidArgument("apns jwt: key is not P-256");
  if (key_id.empty() || team_id.empty())
    return invalidArgument("apns jwt: key id or team id empty");
  Json header = {{"alg", "ES256"}, {"kid", key_id}};
  Json claims = {{"iss", team_id}, {"iat", iat_unix}};
  return signJwt(key, header, claims);
}

Result<ServiceAccount> parseServiceAccount(std::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return invalidArgument("service account: not a JSON object");
  }
  auto field = [&j](const char* name, std::string& out) -> Status {
    auto it = j.find(name);
    if (it == j.end()) return invalidArgument(std::string("service account: ") + name + " missing");
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return invalidArgument(std::string("service account: ") + name + " must be a string");
    }
    out = it->get<std::string>();
    return Status::ok();
  };
  if (auto t = j.find("type"); t != j.end() && (!t->is_string() || *t != "service_account")) {
    return invalidArgument("service account: type is not service_account");
  }
  ServiceAccount sa;
  std::string pem;
  for (auto [name, dst] : {std::pair{"client_email", &sa.client_email},
                           std::pair{"private_key_id", &sa.private_key_id},
                           std::pair{"token_uri", &sa.token_uri}, std::pair{"private_key", &pem}}) {
    if (Status s = field(name, *dst); !s.isOk()) return s;
  }
  if (sa.token_uri.rfind("https://", 0) != 0) {
    return invalidArgument("service account: token_uri must be https");
  }
  if (auto p = j.find("project_id"); p != j.end() && p->is_string()) {
    sa.project_id = p->get<std::string>();
  }
  Result<Key> key = Key::privateFromPem(pem);
  if (!key.isOk()) return invalidArgument("service account: private_key is not a PEM private key");
  if (key->type() != Key::Type::kRsa)
    return invalidArgument("service account: private_key is not RSA");
  sa.private_key = std::move(*key);
  return sa;
}

Result<std::string> makeFcmAssertion(const ServiceAccount& sa, std::int64_t iat_unix) {
  if (sa.private_key.type() != Key::Type::kRsa) return invalidArgument("fcm jwt: key is not RSA");
  Json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", sa.private_key_id}};
  Json claims = {{"iss", sa.client_email},
                 {"scope", kFcmScope},
                 {"aud", sa.token_uri},
                 {"iat", iat_unix},
                 {"exp", iat_unix + kFcmAssertionLifetimeSecs}};
  return signJwt(sa.private_key, header, claims);
}

std::string oauthTokenRequestBody(std::string_view assertion) {
  return "grant_type=" + formEncode("urn:ietf:params:oauth:grant-type:jwt-bearer") +
         "&assertion=" + formEncode(assertion);
}

Result<VerifiedJwt> verifyJwt(std::string_view jwt, const Key& public_key) {
  if (!public_key.valid()) return invalidArgument("jwt: no key");
  if (jwt.size() > kMaxJwtLen) return invalidArgument("jwt: too long");
  std::size_t d1 = jwt.find('.');
  std::size_t d2 = d1 == std::string_view::npos ? d1 : jwt.find('.', d1 + 1);
  if (d2 == std::string_view::npos || jwt.find('.', d2 + 1) != std::string_view::npos) {
    return invalidArgument("jwt: not three dot-separated parts");
  }
  auto header_text = base64UrlDecode(jwt.substr(0, d1));
  auto claims_text = base64UrlDecode(jwt.substr(d1 + 1, d2 - d1 - 1));
  auto sig = base64UrlDecode(jwt.substr(d2 + 1));
  if (!header_text || !claims_text || !sig) return invalidArgument("jwt: bad base64url");
  VerifiedJwt out;
  out.header = Json::parse(*header_text, nullptr, false);
  out.claims = Json::parse(*claims_text, nullptr, false);
  if (out.header.is_discarded() || !out.header.is_object()) {
    return invalidArgument("jwt: header is not a JSON object");
  }
  if (out.claims.is_discarded() || !out.claims.is_object()) {
    return invalidArgument("jwt: claims are not a JSON object");
  }
  auto alg = out.header.find("alg");
  std::string_view expected = algFor(public_key.type());
  if (alg == out.header.end() || !alg->is_string() || expected.empty() ||
      alg->get_ref<const std::string&>() != expected) {
    return invalidArgument("jwt: alg does not match the key");
  }
  if (!verifyBytes(public_key, jwt.substr(0, d2), *sig)) {
    return Status(StatusCode::kPermissionDenied, "jwt: bad signature");
  }
  return out;
}

}  // namespace sipwake::push
