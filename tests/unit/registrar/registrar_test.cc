// The registrar behind a real TransactionLayer, with a fake transport, a fake clock, an in-memory
// (or SQLite, for durability) location store and a real Authenticator: REGISTERs go in as bytes,
// the responses that come out are parsed back and checked, and so is the store.
#include "registrar/registrar.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "auth/digest.h"
#include "common/clock.h"
#include "fake_transport.h"
#include "location/memory_location_store.h"
#include "location/sqlite_location_store.h"
#include "sip/message.h"
#include "transaction/transaction_layer.h"

namespace sipwake::registrar {
namespace {

using location::Binding;
using transport::Address;
using transport::Protocol;

const location::SysSeconds kNow{std::chrono::seconds(1'700'000'000)};

// A store that fails every write (disk full, queue full...).
class FailingStore final : public location::LocationStore {
 public:
  Result<location::LoadReport> load(location::SysSeconds) override {
    return location::LoadReport{};
  }
  void applyRegistration(location::RegistrationChange, location::Executor reply_on,
                         Done done) override {
    ++calls;
    reply_on([done] { done(unavailable("disk on fire")); });
  }
  std::vector<Binding> lookup(std::string_view, location::SysSeconds) const override { return {}; }
  std::size_t sweepExpired(location::SysSeconds) override { return 0; }
  std::size_t size() const override { return 0; }
  std::vector<location::PushRecord> lookupPush(std::string_view,
                                               location::SysSeconds) const override {
    return {};
  }
  std::optional<location::PushRecord> lookupPushDevice(std::string_view) const override {
    return std::nullopt;
  }
  std::vector<location::PushRecord> livePushRecords(location::SysSeconds) const override {
    return {};
  }
  std::size_t pushSize() const override { return 0; }
  int calls = 0;
};

class RecordingObserver final : public RegistrationObserver {
 public:
  void onRegistered(std::string_view aor, const Binding& b,
                    const transport::ReceivedMessage& request) override {
    seen.push_back({std::string(aor), b.contact_uri, std::string(request.message.callId())});
  }
  struct Seen {
    std::string aor, contact, call_id;
  };
  std::vector<Seen> seen;
};

struct Options {
  std::string ruri = "sip:example.com";
  std::string to = "sip:alice@example.com";
  std::string call_id = "call-1@phone";
  std::uint32_t cseq = 0;  // 0: next
  Protocol protocol = Protocol::kUdp;
  std::uint64_t flow = 0;
  std::string source_ip = "198.51.100.7";
  int branch = 0;  // 0: a new branch (a new transaction); else that Via branch number
};

class RegistrarTest : public ::testing::Test, public transaction::TransactionUser {
 protected:
  RegistrarTest() : layer_(timers_, transport_, *this) {
    users_[{"alice", "example.com"}] = "pw";
    users_[{"bob", "example.com"}] = "pw2";
  }

  // Builds the authenticator and the registrar (after the test adjusted config_/store_).
  void make(RegistrarConfig config = {}, std::vector<std::string> trusted = {}) {
    auth::AuthConfig ac;
    ac.rate_limit.max_failures = 3;
    // These REGISTERs mostly carry no User-Agent and answer SHA-256: offer it to them too.
    ac.md5_only_without_user_agent = false;
    auto peers = auth::TrustedPeers::parse(trusted);
    ASSERT_TRUE(peers.isOk());
    authenticator_ = std::make_unique<auth::Authenticator>(
        ac,
        [this](std::string_view user, std::string_view realm) -> std::optional<auth::UserHa1> {
          auto it = users_.find({std::string(user), std::string(realm)});
          if (it == users_.end()) return std::nullopt;
          return auth::UserHa1{
              auth::computeHa1(auth::DigestAlgorithm::kMd5, user, realm, it->second),
              auth::computeHa1(auth::DigestAlgorithm::kSha256, user, realm, it->second)};
        },
        std::move(*peers));
    location::LocationStore& store = store_override_ ? *store_override_ : memory_;
    registrar_ = std::make_unique<Registrar>(
        config,
        Services{store, *authenticator_,
                 [](std::string_view host) {
                   return host == "example.com" || host == "EXAMPLE.COM" || host == "10.0.0.1";
                 }},
        layer_,
        [this](std::function<void()> fn) {
          if (defer_) {
            // May run on the SQLite store's writer thread.
            std::lock_guard lock(queue_mu_);
            queued_.push_back(std::move(fn));
            queue_cv_.notify_all();
          } else {
            fn();
          }
        },
        [this] { return now_; });
    registrar_->setObserver(&observer_);
  }

  // TransactionUser: every request goes to the registrar.
  void onRequest(transaction::ServerTransaction& tx, transport::ReceivedMessage&& r) override {
    registrar_->handle(tx, std::move(r));
  }
  void onAck(transport::ReceivedMessage&&) override {}
  void onStrayResponse(transport::ReceivedMessage&&) override {}
  void onCancel(transaction::ServerTransaction&, transport::ReceivedMessage&&) override {}
  void onTransportError(transaction::ServerTransaction&, const Status&) override {}

  // Delivers a REGISTER; returns the response sent for it, if any.
  std::optional<sip::Message> deliver(const std::string& headers, Options o = {}) {
    std::uint32_t cseq = o.cseq != 0 ? o.cseq : ++cseq_;
    std::string text = "REGISTER " + o.ruri + " SIP/2.0\r\n" +
                       "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK" +
                       std::to_string(o.branch != 0 ? o.branch : ++branch_) + "\r\nMax-Forwards: 70\r\n" + "From: <" + o.to +
                       ">;tag=f1\r\nTo: <" + o.to + ">\r\nCall-ID: " + o.call_id +
                       "\r\nCSeq: " + std::to_string(cseq) + " REGISTER\r\n" + headers +
                       "Content-Length: 0\r\n\r\n";
    auto parsed = sip::parseMessage(std::move(text), sip::ParseLimits{});
    EXPECT_EQ(parsed.kind, sip::ParseOutcome::Kind::kOk) << parsed.reason;
    transport::ReceivedMessage rm{
        std::move(*parsed.message),         o.protocol, *Address::parse(o.source_ip, 40000),
        *Address::parse("192.0.2.1", 5060), o.flow,     timers_.now()};
    std::size_t before = transport_.sent.size();
    layer_.receive(std::move(rm));
    if (transport_.sent.size() == before) return std::nullopt;
    return lastResponse();
  }

  sip::Message lastResponse() {
    auto out = sip::parseMessage(transport_.sent.back().bytes, sip::ParseLimits{});
    EXPECT_EQ(out.kind, sip::ParseOutcome::Kind::kOk) << transport_.sent.back().bytes;
    return std::move(*out.message);
  }

  sip::Message reg(const std::string& headers, Options o = {}) {
    auto r = deliver(headers, std::move(o));
    if (!r) {
      ADD_FAILURE() << "no response";
      return sip::Message::makeResponse(999, "none");
    }
    return std::move(*r);
  }

  // Answers the last 401 for `user` with a SHA-256 qop=auth response.
  std::string authorization(const sip::Message& challenge, const std::string& user,
                            const std::string& password, const std::string& uri = "sip:example.com",
                            const std::string& realm = "example.com") {
    std::string nonce;
    for (auto v : challenge.values(sip::HeaderId::kWwwAuthenticate)) {
      auto p = v.find("nonce=\"");
      if (p != std::string_view::npos) {
        nonce = std::string(v.substr(p + 7, v.find('"', p + 7) - p - 7));
        break;
      }
    }
    EXPECT_FALSE(nonce.empty());
    auto ha1 = auth::computeHa1(auth::DigestAlgorithm::kSha256, user, realm, password);
    auth::ResponseInputs in;
    in.algorithm = auth::DigestAlgorithm::kSha256;
    in.ha1 = ha1.view();
    in.nonce = nonce;
    in.nc_text = "00000001";
    in.cnonce = "c0ffee";
    in.qop = auth::Qop::kAuth;
    in.method = "REGISTER";
    in.uri = uri;
    auto resp = auth::computeResponse(in);
    return "Authorization: Digest username=\"" + user + "\", realm=\"" + realm + "\", nonce=\"" +
           nonce + "\", uri=\"" + uri + "\", response=\"" + std::string(resp.view()) +
           "\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n";
  }

  static std::string header(const sip::Message& m, std::string_view name) {
    const sip::HeaderField* f = m.find(name);
    return f ? std::string(f->value) : std::string("<absent>");
  }
  static std::vector<std::string> contacts(const sip::Message& m) {
    std::vector<std::string> out;
    for (auto v : m.values(sip::HeaderId::kContact)) out.emplace_back(v);
    return out;
  }
  std::vector<Binding> bindings(const std::string& aor = "sip:alice@example.com") {
    location::LocationStore& store = store_override_ ? *store_override_ : memory_;
    return store.lookup(aor, now_);
  }

  RegistrarConfig noAuth() {
    RegistrarConfig c;
    c.require_auth = false;
    return c;
  }

  FakeTimerService timers_;
  sipwake::testing::FakeTransport transport_;
  transaction::TransactionLayer layer_;
  location::MemoryLocationStore memory_;
  location::LocationStore* store_override_ = nullptr;
  std::map<std::pair<std::string, std::string>, std::string> users_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<Registrar> registrar_;
  RecordingObserver observer_;
  bool defer_ = false;
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<std::function<void()>> queued_;
  location::SysSeconds now_ = kNow;
  std::uint32_t cseq_ = 0;
  int branch_ = 0;
};

// --- authentication --------------------------------------------------------------------------

TEST_F(RegistrarTest, BaresipIsChallengedWithMd5Alone) {
  make();
  sip::Message c =
      reg("User-Agent: baresip v1.0.0 (x86_64/linux)\r\n"
          "Contact: <sip:alice@198.51.100.7:5060>\r\n");
  ASSERT_EQ(c.statusCode(), 401);
  auto challenges = c.values(sip::HeaderId::kWwwAuthenticate);
  ASSERT_EQ(challenges.size(), 1u);
  EXPECT_NE(challenges[0].find("algorithm=MD5"), std::string_view::npos);
}

TEST_F(RegistrarTest, ChallengeThenAuthenticatedRegisterIs200ListingTheBinding) {
  make();
  sip::Message c = reg("Contact: <sip:alice@198.51.100.7:5060>\r\n");
  ASSERT_EQ(c.statusCode(), 401);
  auto challenges = c.values(sip::HeaderId::kWwwAuthenticate);
  ASSERT_EQ(challenges.size(), 2u);
  EXPECT_NE(challenges[0].find("algorithm=SHA-256"), std::string_view::npos);
  EXPECT_NE(challenges[0].find("realm=\"example.com\""), std::string_view::npos);
  EXPECT_TRUE(bindings().empty());

  sip::Message ok =
      reg("Contact: <sip:alice@198.51.100.7:5060>\r\n" + authorization(c, "alice", "pw"));
  ASSERT_EQ(ok.statusCode(), 200) << ok.reasonPhrase();
  EXPECT_EQ(contacts(ok), std::vector<std::string>{"<sip:alice@198.51.100.7:5060>;expires=3600"});
  EXPECT_NE(header(ok, "Date").find("GMT"), std::string::npos);
  EXPECT_NE(header(ok, "To").find("tag="), std::string::npos);
  ASSERT_EQ(bindings().size(), 1u);
  EXPECT_EQ(bindings()[0].expires_at, kNow + std::chrono::seconds(3600));
  ASSERT_EQ(observer_.seen.size(), 1u);
  EXPECT_EQ(observer_.seen[0].aor, "sip:alice@example.com");
}

TEST_F(RegistrarTest, ChallengeIsStatelessAndARetransmissionIsChallengedAfresh) {
  make();
  Options first;
  first.cseq = 1;
  first.branch = 1000;
  sip::Message c1 = reg("Contact: <sip:alice@198.51.100.7:5060>\r\n", first);
  ASSERT_EQ(c1.statusCode(), 401);
  timers_.advance(Duration::zero());
  EXPECT_EQ(layer_.serverTransactionCount(), 0u);  // nothing held for 64*T1
  // The same REGISTER again (a UDP retransmission): challenged again with a new nonce, and the
  // answer to either challenge is accepted.
  sip::Message c2 = reg("Contact: <sip:alice@198.51.100.7:5060>\r\n", first);
  ASSERT_EQ(c2.statusCode(), 401);
  EXPECT_NE(header(c1, "WWW-Authenticate"), header(c2, "WWW-Authenticate"));
  sip::Message ok =
      reg("Contact: <sip:alice@198.51.100.7:5060>\r\n" + authorization(c1, "alice", "pw"));
  EXPECT_EQ(ok.statusCode(), 200) << ok.reasonPhrase();
  // The 200 is kept for retransmissions as before (Timer J).
  timers_.advance(Duration::zero());
  EXPECT_EQ(layer_.serverTransactionCount(), 1u);
}

TEST_F(RegistrarTest, ChallengeOfWrongCredentialsKeepsItsTransaction) {
  make();
  sip::Message c = reg("Contact: <sip:alice@198.51.100.7:5060>\r\n");
  ASSERT_EQ(c.statusCode(), 401);
  Options again;
  again.branch = 2000;
  again.cseq = 5;
  const std::string wrong =
      "Contact: <sip:alice@198.51.100.7:5060>\r\n" + authorization(c, "alice", "nope");
  sip::Message w1 = reg(wrong, again);
  ASSERT_EQ(w1.statusCode(), 401);
  timers_.advance(Duration::zero());
  EXPECT_EQ(layer_.serverTransactionCount(), 1u);
  // Its retransmission gets the same 401 from the transaction, not a second check.
  sip::Message w2 = reg(wrong, again);
  EXPECT_EQ(header(w1, "WWW-Authenticate"), header(w2, "WWW-Authenticate"));
}

TEST_F(RegistrarTest, WrongPasswordAndUnknownUserGetTheSameChallengeThenRateLimit) {
  make();
  sip::Message c = reg("Contact: <sip:alice@198.51.100.7>\r\n");
  sip::Message wrong =
      reg("Contact: <sip:alice@198.51.100.7>\r\n" + authorization(c, "alice", "x"));
  EXPECT_EQ(wrong.statusCode(), 401);
  sip::Message unknown = reg("Contact: <sip:zed@198.51.100.7>\r\n" + authorization(c, "zed", "x"),
                             {.to = "sip:zed@example.com"});
  EXPECT_EQ(unknown.statusCode(), 401);
  EXPECT_EQ(wrong.reasonPhrase(), unknown.reasonPhrase());
  reg("Contact: <sip:alice@198.51.100.7>\r\n" + authorization(c, "alice", "y"));
  sip::Message blocked =
      reg("Contact: <sip:alice@198.51.100.7>\r\n" + authorization(c, "alice", "pw"));
  EXPECT_EQ(blocked.statusCode(), 403);
  EXPECT_EQ(blocked.reasonPhrase(), "Too Many Failed Attempts");
  EXPECT_NE(header(blocked, "Retry-After"), "<absent>");
  EXPECT_TRUE(bindings().empty());
}

TEST_F(RegistrarTest, AuthenticatedUserMustOwnTheAor) {
  make();
  Options o{.to = "sip:alice@example.com"};
  sip::Message c = reg("Contact: <sip:bob@198.51.100.7>\r\n", o);
  sip::Message r = reg("Contact: <sip:bob@198.51.100.7>\r\n" + authorization(c, "bob", "pw2"), o);
  EXPECT_EQ(r.statusCode(), 403);
  EXPECT_TRUE(bindings().empty());
}

TEST_F(RegistrarTest, TrustedPeerSkipsAuthentication) {
  make({}, {"198.51.100.0/24"});
  EXPECT_EQ(reg("Contact: <sip:alice@198.51.100.7>\r\n").statusCode(), 200);
  EXPECT_EQ(reg("Contact: <sip:alice@203.0.113.1>\r\n", {.source_ip = "203.0.113.1"}).statusCode(),
            401);
}

TEST_F(RegistrarTest, MalformedCredentialsAre400) {
  make();
  sip::Message r =
      reg("Contact: <sip:alice@198.51.100.7>\r\n"
          "Authorization: Digest username=\"alice\", realm=\"example.com\"\r\n");
  EXPECT_EQ(r.statusCode(), 400);
}

// --- §10.3 steps 1, 2, 5 -----------------------------------------------------------------------

TEST_F(RegistrarTest, ForeignRequestUriDomainIs403AndForeignToIs404) {
  make(noAuth());
  EXPECT_EQ(reg("Contact: <sip:a@1.2.3.4>\r\n", {.ruri = "sip:other.org"}).statusCode(), 403);
  EXPECT_EQ(reg("Contact: <sip:a@1.2.3.4>\r\n", {.to = "sip:alice@other.org"}).statusCode(), 404);
  EXPECT_EQ(reg("Contact: <sip:a@1.2.3.4>\r\n", {.to = "sip:example.com"}).statusCode(), 404);
  EXPECT_EQ(reg("Contact: <sip:a@1.2.3.4>\r\n", {.to = "tel:+15551234"}).statusCode(), 404);
}

TEST_F(RegistrarTest, UnsupportedRequireIs420) {
  make(noAuth());
  sip::Message r = reg("Require: path, foo\r\nContact: <sip:a@1.2.3.4>\r\n");
  EXPECT_EQ(r.statusCode(), 420);
  EXPECT_EQ(header(r, "Unsupported"), "foo");
  EXPECT_EQ(reg("Require: path\r\nContact: <sip:a@1.2.3.4>\r\n").statusCode(), 200);
}

TEST_F(RegistrarTest, AorIsCanonicalised) {
  make(noAuth());
  ASSERT_EQ(reg("Contact: <sip:a@1.2.3.4>\r\n", {.to = "sip:%61lice@EXAMPLE.COM;user=phone"})
                .statusCode(),
            200);
  EXPECT_EQ(bindings("sip:alice@example.com").size(), 1u);
}

// --- step 6: contacts and expiry -------------------------------------------------------------

TEST_F(RegistrarTest, ExpiryParamBeatsHeaderBeatsDefault) {
  RegistrarConfig c = noAuth();
  c.default_expires = 1800;
  make(c);
  sip::Message r = reg("Expires: 900\r\nContact: <sip:a@1.2.3.4>;expires=120, <sip:b@1.2.3.4>\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  auto cs = contacts(r);
  ASSERT_EQ(cs.size(), 2u);
  EXPECT_NE(std::find(cs.begin(), cs.end(), "<sip:a@1.2.3.4>;expires=120"), cs.end());
  EXPECT_NE(std::find(cs.begin(), cs.end(), "<sip:b@1.2.3.4>;expires=900"), cs.end());
  r = reg("Contact: <sip:c@1.2.3.4>\r\n");
  cs = contacts(r);
  EXPECT_NE(std::find(cs.begin(), cs.end(), "<sip:c@1.2.3.4>;expires=1800"), cs.end());
}

TEST_F(RegistrarTest, TooBriefIs423WithMinExpiresAndLongIsClipped) {
  RegistrarConfig c = noAuth();
  c.min_expires = 60;
  c.max_expires = 7200;
  make(c);
  sip::Message r = reg("Contact: <sip:a@1.2.3.4>;expires=59\r\n");
  EXPECT_EQ(r.statusCode(), 423);
  EXPECT_EQ(header(r, "Min-Expires"), "60");
  EXPECT_TRUE(bindings().empty());
  r = reg("Expires: 30\r\nContact: <sip:a@1.2.3.4>\r\n");
  EXPECT_EQ(r.statusCode(), 423);
  r = reg("Contact: <sip:a@1.2.3.4>;expires=100000\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_EQ(contacts(r), std::vector<std::string>{"<sip:a@1.2.3.4>;expires=7200"});
}

TEST_F(RegistrarTest, MalformedExpiresCountsAsDefault) {
  make(noAuth());
  sip::Message r = reg("Contact: <sip:a@1.2.3.4>;expires=soon\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_EQ(contacts(r), std::vector<std::string>{"<sip:a@1.2.3.4>;expires=3600"});
}

TEST_F(RegistrarTest, WildcardRules) {
  make(noAuth());
  ASSERT_EQ(reg("Contact: <sip:a@1.2.3.4>, <sip:b@1.2.3.4>\r\n").statusCode(), 200);
  sip::Message r = reg("Contact: *\r\n");
  EXPECT_EQ(r.statusCode(), 400);
  EXPECT_NE(std::string(r.reasonPhrase()).find("Expires: 0"), std::string::npos);
  // (A "*, <uri>" list is already refused by the parser; separate fields reach the registrar.)
  EXPECT_EQ(reg("Expires: 0\r\nContact: *\r\nContact: <sip:a@1.2.3.4>\r\n").statusCode(), 400);
  EXPECT_EQ(reg("Expires: 60\r\nContact: *\r\n").statusCode(), 400);
  EXPECT_EQ(bindings().size(), 2u);
  r = reg("Expires: 0\r\nContact: *\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_TRUE(contacts(r).empty());
  EXPECT_TRUE(bindings().empty());
}

TEST_F(RegistrarTest, RemoveOneContactWithExpiresZero) {
  make(noAuth());
  reg("Contact: <sip:a@1.2.3.4>, <sip:b@1.2.3.4>\r\n");
  sip::Message r = reg("Contact: <sip:a@1.2.3.4>;expires=0\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_EQ(contacts(r), std::vector<std::string>{"<sip:b@1.2.3.4>;expires=3600"});
  // Removing what is not there is fine (§10.3 step 7).
  EXPECT_EQ(reg("Contact: <sip:zzz@1.2.3.4>;expires=0\r\n").statusCode(), 200);
}

TEST_F(RegistrarTest, QValuesOrderTheListAndBadQIs400) {
  make(noAuth());
  sip::Message r =
      reg("Contact: <sip:low@1.2.3.4>;q=0.1, <sip:mid@1.2.3.4>;q=0.5\r\n"
          "Contact: <sip:top@1.2.3.4>\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_EQ(contacts(r), (std::vector<std::string>{"<sip:top@1.2.3.4>;expires=3600",
                                                   "<sip:mid@1.2.3.4>;expires=3600;q=0.5",
                                                   "<sip:low@1.2.3.4>;expires=3600;q=0.1"}));
  EXPECT_EQ(reg("Contact: <sip:x@1.2.3.4>;q=2\r\n").statusCode(), 400);
}

TEST_F(RegistrarTest, RefreshUpdatesExpiryAndOutOfOrderCSeqIs400) {
  make(noAuth());
  ASSERT_EQ(reg("Contact: <sip:a@1.2.3.4>;expires=600\r\n", {.cseq = 10}).statusCode(), 200);
  now_ += std::chrono::seconds(100);
  sip::Message r = reg("Contact: <sip:a@1.2.3.4>;expires=600\r\n", {.cseq = 11});
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_EQ(contacts(r), std::vector<std::string>{"<sip:a@1.2.3.4>;expires=600"});
  r = reg("Contact: <sip:a@1.2.3.4>;expires=0\r\n", {.cseq = 11});
  EXPECT_EQ(r.statusCode(), 400);
  EXPECT_NE(std::string(r.reasonPhrase()).find("CSeq"), std::string::npos);
  EXPECT_EQ(bindings().size(), 1u);
  // Another Call-ID may do it (a different UA, or a rebooted one).
  EXPECT_EQ(
      reg("Contact: <sip:a@1.2.3.4>;expires=0\r\n", {.call_id = "other", .cseq = 1}).statusCode(),
      200);
  EXPECT_TRUE(bindings().empty());
}

TEST_F(RegistrarTest, QueryWithoutContactListsBindingsAndWritesNothing) {
  make(noAuth());
  reg("Contact: <sip:a@1.2.3.4>;expires=600\r\n");
  now_ += std::chrono::seconds(10);
  observer_.seen.clear();
  sip::Message r = reg("");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_EQ(contacts(r), std::vector<std::string>{"<sip:a@1.2.3.4>;expires=590"});
  EXPECT_TRUE(observer_.seen.empty());
}

TEST_F(RegistrarTest, TooManyContactsIs403) {
  RegistrarConfig c = noAuth();
  c.max_contacts_per_aor = 2;
  make(c);
  ASSERT_EQ(reg("Contact: <sip:a@1.2.3.4>, <sip:b@1.2.3.4>\r\n").statusCode(), 200);
  EXPECT_EQ(reg("Contact: <sip:c@1.2.3.4>\r\n").statusCode(), 403);
  EXPECT_EQ(bindings().size(), 2u);
}

// --- RFC 5626 outbound and RFC 3327 Path --------------------------------------------------------

constexpr const char* kInstance =
    "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";

TEST_F(RegistrarTest, OutboundRegistrationRecordsTheFlowAndRequiresOutbound) {
  make(noAuth());
  Options o{.protocol = Protocol::kTcp, .flow = 77};
  sip::Message r =
      reg(std::string("Supported: outbound, path\r\nContact: <sip:a@10.9.9.9;transport=tcp>;") +
              kInstance + ";reg-id=1\r\n",
          o);
  ASSERT_EQ(r.statusCode(), 200) << r.reasonPhrase();
  EXPECT_EQ(header(r, "Require"), "outbound");
  auto cs = contacts(r);
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_NE(cs[0].find("reg-id=1"), std::string::npos);
  EXPECT_NE(cs[0].find("+sip.instance"), std::string::npos);
  auto b = bindings();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].reg_id, std::optional<std::uint32_t>(1));
  EXPECT_EQ(b[0].received.protocol, "tcp");
  EXPECT_EQ(b[0].received.flow_id, 77u);
  EXPECT_EQ(b[0].received.source_ip, "198.51.100.7");
  EXPECT_EQ(b[0].received.source_port, 40000);
  EXPECT_EQ(b[0].received.local_listener, "tcp:192.0.2.1:5060");
  EXPECT_NE(b[0].contact_params.find("reg-id=1"), std::string::npos);

  // The device comes back from a new address: its binding is replaced, not added.
  Options o2{.call_id = "call-2@phone", .protocol = Protocol::kTcp, .flow = 78};
  r = reg(std::string("Supported: outbound\r\nContact: <sip:a@10.8.8.8;transport=tcp>;") +
              kInstance + ";reg-id=1\r\n",
          o2);
  ASSERT_EQ(r.statusCode(), 200);
  b = bindings();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].contact_uri, "sip:a@10.8.8.8;transport=tcp");
  EXPECT_EQ(b[0].received.flow_id, 78u);
}

TEST_F(RegistrarTest, RegIdIgnoredWithoutSupportedOutbound) {
  make(noAuth());
  sip::Message r = reg(std::string("Contact: <sip:a@10.9.9.9>;") + kInstance + ";reg-id=1\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_EQ(header(r, "Require"), "<absent>");
  auto b = bindings();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_FALSE(b[0].reg_id.has_value());
  EXPECT_FALSE(b[0].instance_id.empty());
}

TEST_F(RegistrarTest, TwoContactsWithRegIdIs400AndBadRegIdIs400) {
  make(noAuth());
  EXPECT_EQ(reg(std::string("Supported: outbound\r\nContact: <sip:a@1.1.1.1>;") + kInstance +
                ";reg-id=1, <sip:b@1.1.1.1>;" + kInstance + ";reg-id=2\r\n")
                .statusCode(),
            400);
  EXPECT_EQ(
      reg(std::string("Contact: <sip:a@1.1.1.1>;") + kInstance + ";reg-id=x\r\n").statusCode(),
      400);
}

TEST_F(RegistrarTest, PathIsStoredAndEchoedWhenSupported) {
  make(noAuth());
  sip::Message r = reg(
      "Supported: path\r\nPath: <sip:edge2.example.net;lr>\r\nPath: <sip:edge1.example.net;lr>\r\n"
      "Contact: <sip:a@10.9.9.9>\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_EQ(header(r, "Path"), "<sip:edge2.example.net;lr>, <sip:edge1.example.net;lr>");
  auto b = bindings();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].path,
            (std::vector<std::string>{"<sip:edge2.example.net;lr>", "<sip:edge1.example.net;lr>"}));
  // Without Supported: path the Path is still stored but not echoed.
  r = reg("Path: <sip:edge1.example.net;lr>\r\nContact: <sip:b@10.9.9.9>\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_EQ(header(r, "Path"), "<absent>");
}

TEST_F(RegistrarTest, OutboundThroughEdgeWithoutObIs439) {
  make(noAuth());
  sip::Message r = reg(std::string("Supported: outbound\r\nPath: <sip:edge.example.net;lr>\r\n"
                                   "Contact: <sip:a@10.9.9.9>;") +
                       kInstance + ";reg-id=1\r\n");
  EXPECT_EQ(r.statusCode(), 439);
  r = reg(std::string("Supported: outbound\r\nPath: <sip:edge.example.net;lr;ob>\r\n"
                      "Contact: <sip:a@10.9.9.9>;") +
          kInstance + ";reg-id=1\r\n");
  EXPECT_EQ(r.statusCode(), 200);
}

// --- durability contract ---------------------------------------------------------------------

TEST_F(RegistrarTest, OkIsSentOnlyAfterTheStoreCompletes) {
  make(noAuth());
  defer_ = true;
  auto r = deliver("Contact: <sip:a@1.2.3.4>\r\n");
  EXPECT_FALSE(r.has_value()) << "answered before the store's done callback";
  EXPECT_TRUE(observer_.seen.empty());
  ASSERT_EQ(queued_.size(), 1u);
  queued_[0]();
  EXPECT_EQ(lastResponse().statusCode(), 200);
  EXPECT_EQ(observer_.seen.size(), 1u);
}

TEST_F(RegistrarTest, StoreUnavailableIs503WithRetryAfterNeverA200) {
  FailingStore failing;
  store_override_ = &failing;
  make(noAuth());
  sip::Message r = reg("Contact: <sip:a@1.2.3.4>\r\n");
  EXPECT_EQ(r.statusCode(), 503);
  EXPECT_EQ(r.reasonPhrase(), "Service Unavailable - Location Store Unavailable");
  EXPECT_EQ(header(r, "Retry-After"), "5");
  EXPECT_EQ(failing.calls, 1);
  EXPECT_TRUE(observer_.seen.empty());
}

TEST_F(RegistrarTest, SqliteStoreKeepsEveryFieldAcrossReopen) {
  auto dir =
      std::filesystem::temp_directory_path() / ("sipwake-registrar-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "store.db").string();
  {
    auto store = location::SqliteLocationStore::open(path);
    ASSERT_TRUE(store.isOk()) << store.status().message();
    ASSERT_TRUE((*store)->load(now_).isOk());
    store_override_ = store->get();
    make(noAuth());
    // The real store answers from its writer thread: collect and run on "the loop" here.
    defer_ = true;
    auto r = deliver(std::string("Supported: outbound\r\nUser-Agent: Phone/1\r\n"
                                 "Contact: <sip:a@10.9.9.9;transport=tcp>;q=0.7;") +
                         kInstance + ";reg-id=3\r\n",
                     {.protocol = Protocol::kTcp, .flow = 5});
    EXPECT_FALSE(r.has_value());
    {
      // Wait (bounded) for the writer thread to post the completion.
      std::unique_lock lock(queue_mu_);
      ASSERT_TRUE(queue_cv_.wait_for(lock, seconds(10), [&] { return !queued_.empty(); }));
    }
    ASSERT_EQ(queued_.size(), 1u);
    queued_[0]();
    EXPECT_EQ(lastResponse().statusCode(), 200);
    registrar_.reset();
    store_override_ = nullptr;
  }
  auto again = location::SqliteLocationStore::open(path);
  ASSERT_TRUE(again.isOk());
  ASSERT_TRUE((*again)->load(now_).isOk());
  auto b = (*again)->lookup("sip:alice@example.com", now_);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].contact_uri, "sip:a@10.9.9.9;transport=tcp");
  EXPECT_EQ(b[0].q_milli, 700);
  EXPECT_EQ(b[0].reg_id, std::optional<std::uint32_t>(3));
  EXPECT_EQ(b[0].user_agent, "Phone/1");
  EXPECT_EQ(b[0].received.protocol, "tcp");
  EXPECT_EQ(b[0].received.flow_id, 0u);  // process-local, not persisted
  EXPECT_NE(b[0].contact_params.find("reg-id=3"), std::string::npos);
  EXPECT_EQ(b[0].contact_params.find("q="), std::string::npos);
  again->reset();
  std::filesystem::remove_all(dir);
}

// --- edge relay mode (RegisterRelay) -----------------------------------------------------------

// Records what the registrar relays and answers with a verdict the test sets (synchronously).
class FakeRelay final : public RegisterRelay {
 public:
  bool relays(std::string_view domain) const override { return domain == "example.com"; }
  void relay(Request request, std::function<void(Verdict)> done) override {
    requests.push_back(std::move(request));
    done(verdict);
  }
  std::vector<Request> requests;
  Verdict verdict;
};

TEST_F(RegistrarTest, RelayedRegisterIsNotChallengedHereAndCarriesThePhonesCredentials) {
  make();  // require_auth: on
  FakeRelay relay;
  relay.verdict.accepted = true;
  registrar_->setRelay(&relay);
  sip::Message r = reg(
      "Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"pbx-nonce\", "
      "uri=\"sip:example.com\", response=\"0123\"\r\nUser-Agent: phone/1\r\n"
      "Contact: <sip:alice@198.51.100.7:5060>;expires=600\r\n");
  EXPECT_EQ(r.statusCode(), 200);
  ASSERT_EQ(relay.requests.size(), 1u);
  const RegisterRelay::Request& q = relay.requests[0];
  EXPECT_EQ(q.aor, "sip:alice@example.com");
  EXPECT_EQ(q.request_uri, "sip:example.com");
  EXPECT_EQ(q.call_id, "call-1@phone");
  EXPECT_EQ(q.source, "198.51.100.7");
  EXPECT_EQ(q.user_agent, "phone/1");
  ASSERT_EQ(q.authorization.size(), 1u);
  EXPECT_NE(q.authorization[0].find("nonce=\"pbx-nonce\""), std::string::npos);
  ASSERT_EQ(q.devices.size(), 1u);
  EXPECT_FALSE(q.devices[0].push);
  EXPECT_FALSE(q.devices[0].removed);
  EXPECT_EQ(bindings().size(), 1u);
}

TEST_F(RegistrarTest, UpstreamChallengeIsRelayedAndNothingIsWritten) {
  make();
  FakeRelay relay;
  relay.verdict.status = 401;
  relay.verdict.reason = "Unauthorized";
  relay.verdict.headers = {{"WWW-Authenticate", "Digest realm=\"example.com\", nonce=\"n1\""}};
  registrar_->setRelay(&relay);
  sip::Message r = reg("Contact: <sip:alice@198.51.100.7:5060>\r\n");
  EXPECT_EQ(r.statusCode(), 401);
  EXPECT_EQ(header(r, "WWW-Authenticate"), "Digest realm=\"example.com\", nonce=\"n1\"");
  EXPECT_TRUE(bindings().empty());
  EXPECT_TRUE(observer_.seen.empty());
}

TEST_F(RegistrarTest, RelayedUnRegisterNamesTheLeavingDeviceAndBadInputIsRefusedHere) {
  make();
  FakeRelay relay;
  relay.verdict.accepted = true;
  registrar_->setRelay(&relay);
  EXPECT_EQ(reg("Contact: <sip:alice@198.51.100.7:5060>\r\n").statusCode(), 200);
  EXPECT_EQ(reg("Contact: <sip:alice@198.51.100.7:5060>;expires=0\r\n").statusCode(), 200);
  ASSERT_EQ(relay.requests.size(), 2u);
  ASSERT_EQ(relay.requests[1].devices.size(), 1u);
  EXPECT_TRUE(relay.requests[1].devices[0].removed);
  EXPECT_EQ(relay.requests[1].devices[0].key, relay.requests[0].devices[0].key);
  EXPECT_TRUE(bindings().empty());
  // Checked before anything goes upstream: the PBX never sees a REGISTER sipwake would refuse.
  EXPECT_EQ(reg("Contact: <sip:alice@198.51.100.7>;expires=10\r\n").statusCode(), 423);
  EXPECT_EQ(reg("Contact: *\r\n").statusCode(), 400);
  EXPECT_EQ(relay.requests.size(), 2u);
  // Another domain is not relayed (and is challenged here as before).
  Options other;
  other.ruri = "sip:10.0.0.1";
  other.to = "sip:alice@10.0.0.1";
  EXPECT_EQ(reg("Contact: <sip:alice@198.51.100.7>\r\n", other).statusCode(), 401);
  EXPECT_EQ(relay.requests.size(), 2u);
}

}  // namespace
}  // namespace sipwake::registrar
