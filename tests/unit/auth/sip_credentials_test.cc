#include "auth/sip_credentials.h"

#include <gtest/gtest.h>

#include <string>

#include "sip/message.h"

namespace sipwake::auth {
namespace {

bool ours(std::string_view host) {
  return host == "127.0.0.1" || host == "example.com" || host == "[::1]";
}

DigestUriMatch match(std::string_view digest_uri, std::string_view request_uri) {
  return matchDigestUri(digest_uri, request_uri, ours);
}

TEST(MatchDigestUri, EquivalentSpellingsAreTheSame) {
  EXPECT_EQ(match("sip:example.com", "sip:example.com"), DigestUriMatch::kSame);
  EXPECT_EQ(match("sip:EXAMPLE.com", "sip:example.com"), DigestUriMatch::kSame);
  EXPECT_EQ(match("SIP:bob@Example.COM", "sip:bob@example.com"), DigestUriMatch::kSame);
  EXPECT_EQ(match("sip:%62ob@example.com", "sip:bob@example.com"), DigestUriMatch::kSame);
  EXPECT_EQ(match("sip:bob@example.com;Transport=UDP", "sip:bob@example.com;transport=udp"),
            DigestUriMatch::kSame);
  EXPECT_EQ(match("sip:bob@[::1]:5060", "sip:bob@[0:0:0::1]:5060"), DigestUriMatch::kSame);
  // Parameters only one side has are ignored by §19.1.4 (other than transport, user, ...).
  EXPECT_EQ(match("sip:bob@example.com;foo=1", "sip:bob@example.com"), DigestUriMatch::kSame);
}

TEST(MatchDigestUri, RequestUriHostWithAnotherPortOrTransport) {
  // Not §19.1.4-equal (an explicit default port or transport differs from an absent one).
  EXPECT_EQ(match("sip:127.0.0.1:5060", "sip:127.0.0.1"), DigestUriMatch::kOtherPort);
  EXPECT_EQ(match("sip:example.com", "sip:example.com;transport=udp"), DigestUriMatch::kOtherPort);
  EXPECT_EQ(match("sip:bob@example.com:5070", "sip:bob@example.com"), DigestUriMatch::kOtherPort);
  EXPECT_EQ(match("sips:example.com", "sip:example.com"), DigestUriMatch::kOtherPort);
  // A foreign domain: only its own host counts, not ours.
  EXPECT_EQ(match("sip:pbx.example.net:5080", "sip:carol@pbx.example.net"),
            DigestUriMatch::kOtherPort);
}

TEST(MatchDigestUri, UriNamingThisServer) {
  // sipp: INVITE sip:bob@example.com with uri="sip:<server ip>:<server port>".
  EXPECT_EQ(match("sip:127.0.0.1:16000", "sip:bob@example.com"), DigestUriMatch::kThisServer);
  EXPECT_EQ(match("sip:[::1]:5060", "sip:bob@example.com"), DigestUriMatch::kThisServer);
  // An SBC rewrote the Request-URI host; the user is the same.
  EXPECT_EQ(match("sip:bob@example.com", "sip:bob@127.0.0.1:5060"), DigestUriMatch::kThisServer);
  // Without a server check nothing names the server.
  EXPECT_EQ(matchDigestUri("sip:127.0.0.1:16000", "sip:bob@example.com", nullptr),
            DigestUriMatch::kMismatch);
}

TEST(MatchDigestUri, Mismatches) {
  EXPECT_EQ(match("sip:evil.example.org", "sip:example.com"), DigestUriMatch::kMismatch);
  // Another user is another resource, even at the same or our host.
  EXPECT_EQ(match("sip:carol@example.com", "sip:bob@example.com"), DigestUriMatch::kMismatch);
  EXPECT_EQ(match("sip:carol@127.0.0.1", "sip:bob@example.com"), DigestUriMatch::kMismatch);
  EXPECT_EQ(match("sip:Bob@example.com", "sip:bob@example.com"), DigestUriMatch::kMismatch);
  EXPECT_EQ(match("tel:+15551234", "sip:bob@example.com"), DigestUriMatch::kMismatch);
  EXPECT_EQ(match("not a uri", "sip:example.com"), DigestUriMatch::kMismatch);
  EXPECT_EQ(match("", "sip:example.com"), DigestUriMatch::kMismatch);
  EXPECT_EQ(match("sip:example.com", "tel:+15551234"), DigestUriMatch::kThisServer);
  EXPECT_EQ(match("sip:bob@example.com", "tel:+15551234"), DigestUriMatch::kMismatch);
  EXPECT_EQ(match("sip:bob@evil.example.org", "tel:+15551234"), DigestUriMatch::kMismatch);
}

sip::Message parse(std::string text) {
  sip::ParseOutcome out = sip::parseMessage(std::move(text), sip::ParseLimits{});
  EXPECT_EQ(out.kind, sip::ParseOutcome::Kind::kOk) << out.reason << out.drop_reason;
  return out.message ? std::move(*out.message) : sip::Message::makeResponse(500, "unparsable");
}

TEST(ConsumeCredentials, RemovesOnlyOurRealm) {
  sip::Message m = parse(
      "INVITE sip:bob@example.com SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
      "Max-Forwards: 70\r\n"
      "From: <sip:alice@example.com>;tag=1\r\n"
      "To: <sip:bob@example.com>\r\n"
      "Call-ID: c1\r\n"
      "CSeq: 2 INVITE\r\n"
      "Proxy-Authorization: Digest username=\"alice\", realm=\"pbx.example.net\", nonce=\"n\", "
      "uri=\"sip:bob@example.com\", response=\"0123456789abcdef0123456789abcdef\"\r\n"
      "Proxy-Authorization: Digest username=\"alice\", realm=\"EXAMPLE.com\", nonce=\"n\", "
      "uri=\"sip:bob@example.com\", response=\"0123456789abcdef0123456789abcdef\"\r\n"
      "Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", "
      "uri=\"sip:bob@example.com\", response=\"0123456789abcdef0123456789abcdef\"\r\n"
      "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"
      "Content-Length: 0\r\n\r\n");
  auto ours_ci = [](std::string_view realm) {
    std::string lower(realm);
    for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    return ours(lower);
  };
  EXPECT_EQ(consumeCredentials(m, ours_ci), 2u);
  std::vector<std::string_view> proxy = m.values(sip::HeaderId::kProxyAuthorization);
  ASSERT_EQ(proxy.size(), 1u);
  EXPECT_NE(proxy[0].find("pbx.example.net"), std::string_view::npos);
  std::vector<std::string_view> www = m.values(sip::HeaderId::kAuthorization);
  ASSERT_EQ(www.size(), 1u);
  EXPECT_EQ(www[0].substr(0, 5), "Basic");
  const std::string wire = m.serialize();
  EXPECT_EQ(wire.find("realm=\"EXAMPLE.com\""), std::string::npos) << wire;
  EXPECT_EQ(wire.find("realm=\"example.com\""), std::string::npos) << wire;
  EXPECT_NE(wire.find("realm=\"pbx.example.net\""), std::string::npos) << wire;
  EXPECT_EQ(consumeCredentials(m, ours_ci), 0u);
}

}  // namespace
}  // namespace sipwake::auth
