// JSON Web Tokens for the push services (RFC 7515/7519, compact form only):
//   * APNs provider tokens: ES256, signed with the team's .p8 (PKCS#8 PEM, P-256) key;
//     header {"alg":"ES256","kid":KEYID}, claims {"iss":TEAMID,"iat":now}.
//   * FCM: the RS256 JWT assertion exchanged at the service account's token_uri for an OAuth2
//     access token (RFC 7523); header {"alg":"RS256","typ":"JWT","kid":private_key_id}.
// Verification is here too, for the fake push services and for tests.
// Secrets: keys and tokens are never logged; error messages never contain key material.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace sipwake::push {

// RFC 4648 §5 base64url without padding. Decode accepts no padding and no whitespace.
std::string base64UrlEncode(std::string_view bytes);
std::optional<std::string> base64UrlDecode(std::string_view text);

// An immutable OpenSSL key (private or public). Copies share the key; safe to use from several
// threads because signing/verifying never mutates it.
class Key {
 public:
  enum class Type { kEcP256, kRsa, kOther };

  Key() = default;  // empty: valid() is false; every operation fails cleanly
  bool valid() const { return pkey_ != nullptr; }

  // Private key from PEM: PKCS#8 "PRIVATE KEY" (.p8 files, service accounts) or a traditional
  // "EC/RSA PRIVATE KEY". Encrypted keys are rejected (no passphrase prompt).
  static Result<Key> privateFromPem(std::string_view pem);
  // Public key from a SubjectPublicKeyInfo "PUBLIC KEY" PEM.
  static Result<Key> publicFromPem(std::string_view pem);
  // Fresh keys, for tests and the fake push services.
  static Result<Key> generateEcP256();
  static Result<Key> generateRsa(int bits = 2048);

  Type type() const { return type_; }
  bool isPrivate() const { return is_private_; }
  // PEM of the public half (SPKI), and of the private key as PKCS#8 (REQUIRES: isPrivate()).
  Result<std::string> publicPem() const;
  Result<std::string> privatePem() const;
  EVP_PKEY* raw() const { return pkey_.get(); }

 private:
  Key(std::shared_ptr<EVP_PKEY> pkey, bool is_private);
  std::shared_ptr<EVP_PKEY> pkey_;
  Type type_ = Type::kOther;
  bool is_private_ = false;
};

// ECDSA P-256 signature conversions: DER SEQUENCE{r,s} <-> the 64-byte r||s form JWS uses.
std::optional<std::string> ecdsaDerToRaw(std::string_view der);
std::optional<std::string> ecdsaRawToDer(std::string_view raw);

// Signs `header`.`claims` with `key`; the header's "alg" must match the key (ES256 for P-256,
// RS256 for RSA). Returns the compact JWT.
Result<std::string> signJwt(const Key& key, const nlohmann::json& header,
                            const nlohmann::json& claims);

// APNs provider token. REQUIRES: key is a private P-256 key.
Result<std::string> makeApnsJwt(const Key& key, std::string_view key_id, std::string_view team_id,
                                std::int64_t iat_unix);

inline constexpr std::string_view kFcmScope = "https://www.googleapis.com/auth/firebase.messaging";
inline constexpr std::int64_t kFcmAssertionLifetimeSecs = 3600;

// The fields of a Google service-account JSON file that we use.
struct ServiceAccount {
  std::string client_email;
  std::string private_key_id;
  std::string token_uri;
  std::string project_id;  // may be empty in hand-written files
  Key private_key;         // RSA
};
// Precise errors name the missing or malformed field; the key itself never appears.
Result<ServiceAccount> parseServiceAccount(std::string_view json);

// The RS256 assertion: iss=client_email, scope=kFcmScope, aud=token_uri, iat, exp=iat+3600.
Result<std::string> makeFcmAssertion(const ServiceAccount& sa, std::int64_t iat_unix);
// application/x-www-form-urlencoded body for the token endpoint POST.
std::string oauthTokenRequestBody(std::string_view assertion);

struct VerifiedJwt {
  nlohmann::json header;
  nlohmann::json claims;
};
// Checks structure, that header.alg matches the key type (ES256 ↔ P-256, RS256 ↔ RSA; "none" and
// everything else refused) and the signature. Claims (iat, exp, aud...) are the caller's to check.
Result<VerifiedJwt> verifyJwt(std::string_view jwt, const Key& public_key);

}  // namespace sipwake::push
