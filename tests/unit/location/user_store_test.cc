#include "location/user_store.h"

#include <fstream>
#include <iterator>

#include "location/sqlite_location_store.h"
#include "test_util.h"

namespace sipwake::location {
namespace {

// RFC 7616 §3.9.1 response = KD(HA1, nonce:nc:cnonce:qop:H(method:uri)), computed from a stored
// HA1: checks that our HA1 is exactly what a real digest exchange needs.
std::string rfc7616Response(DigestAlgorithm alg, const std::string& ha1) {
  const std::string ha2 = digestHex(alg, "GET:/dir/index.html");
  return digestHex(alg, ha1 +
                            ":7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v:00000001:"
                            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:" +
                            ha2);
}

TEST(DigestTest, Rfc2617Ha1) {
  // RFC 2617 §3.5 example credentials.
  EXPECT_EQ(computeHa1(DigestAlgorithm::kMd5, "Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9");
}

class UserStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = UserStore::open(path_);
    ASSERT_TRUE(opened.isOk()) << opened.status().toString();
    users_ = std::move(opened).value();
  }
  testing::TempDir dir_;
  std::string path_ = dir_.file("sipwake.db");
  std::unique_ptr<UserStore> users_;
};

TEST_F(UserStoreTest, StoredHa1MatchesRfc7616Example) {
  ASSERT_TRUE(users_->add("Mufasa", "http-auth@example.org", "Circle of Life").isOk());
  auto c = users_->lookup("Mufasa", "http-auth@example.org");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(rfc7616Response(DigestAlgorithm::kMd5, c->ha1_md5), "8ca523f5e9506fed4657c9700eebdbec");
  EXPECT_EQ(rfc7616Response(DigestAlgorithm::kSha256, c->ha1_sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
  EXPECT_FALSE(users_->lookup("mufasa", "http-auth@example.org").has_value());
  EXPECT_FALSE(users_->lookup("Mufasa", "example.org").has_value());
}

TEST_F(UserStoreTest, AddListRemoveSetPassword) {
  ASSERT_TRUE(users_->add("alice", "example.com", "s3cret").isOk());
  ASSERT_TRUE(users_->add("bob", "example.com", "hunter2").isOk());
  ASSERT_TRUE(users_->add("alice", "example.org", "other").isOk());
  EXPECT_EQ(users_->add("alice", "example.com", "again").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(users_->size(), 3u);

  auto list = users_->list();
  ASSERT_TRUE(list.isOk());
  std::vector<UserEntry> expected{
      {"alice", "example.com"}, {"bob", "example.com"}, {"alice", "example.org"}};
  EXPECT_EQ(*list, expected);

  ASSERT_TRUE(users_->setPassword("alice", "example.com", "n3w").isOk());
  EXPECT_EQ(users_->lookup("alice", "example.com")->ha1_md5,
            computeHa1(DigestAlgorithm::kMd5, "alice", "example.com", "n3w"));
  EXPECT_EQ(users_->setPassword("carol", "example.com", "x").code(), StatusCode::kNotFound);

  ASSERT_TRUE(users_->remove("bob", "example.com").isOk());
  EXPECT_FALSE(users_->lookup("bob", "example.com").has_value());
  EXPECT_EQ(users_->remove("bob", "example.com").code(), StatusCode::kNotFound);
  EXPECT_EQ(users_->size(), 2u);
}

TEST_F(UserStoreTest, RejectsBadInput) {
  EXPECT_EQ(users_->add("", "example.com", "pw").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(users_->add("a:b", "example.com", "pw").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(users_->add("a", "exa\nmple.com", "pw").code(), StatusCode::kInvalidArgument);
  Status empty_pw = users_->add("a", "example.com", "");
  EXPECT_EQ(empty_pw.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(users_->size(), 0u);
}

TEST_F(UserStoreTest, ImportAddsEveryUserInOneGo) {
  std::vector<NewUser> batch;
  for (int i = 0; i < 500; ++i) {
    // Appending (not "u" + std::to_string(i)) avoids GCC 12's false -Wrestrict at -O3.
    std::string user = "u", password = "pw";
    user += std::to_string(i);
    password += std::to_string(i);
    batch.push_back({user, i % 2 ? "example.com" : "example.org", password});
  }
  std::size_t bad = 999;
  ASSERT_TRUE(users_->importUsers(batch, false, &bad).isOk());
  EXPECT_EQ(bad, 999u);  // untouched on success
  EXPECT_EQ(users_->size(), 500u);
  auto c = users_->lookup("u7", "example.com");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->ha1_md5, computeHa1(DigestAlgorithm::kMd5, "u7", "example.com", "pw7"));
  EXPECT_EQ(c->ha1_sha256, computeHa1(DigestAlgorithm::kSha256, "u7", "example.com", "pw7"));
  auto again = UserStore::open(path_);  // durable, not just cached
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ((*again)->size(), 500u);
}

TEST_F(UserStoreTest, ImportIsAllOrNothing) {
  ASSERT_TRUE(users_->add("carol", "example.com", "old").isOk());
  const std::string old_ha1 = users_->lookup("carol", "example.com")->ha1_md5;
  std::vector<NewUser> batch{{"alice", "example.com", "a"},
                             {"bob", "example.com", "b"},
                             {"carol", "example.com", "new"},
                             {"dave", "example.com", "d"}};
  // An existing user fails the import at its entry, after rows were already written: rolled back.
  std::size_t bad = 999;
  Status s = users_->importUsers(batch, false, &bad);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(s.message().find("carol@example.com"), std::string::npos) << s.message();
  EXPECT_EQ(bad, 2u);
  EXPECT_EQ(users_->size(), 1u);
  ASSERT_TRUE(users_->reload().isOk());
  EXPECT_EQ(users_->size(), 1u);
  EXPECT_FALSE(users_->lookup("alice", "example.com").has_value());

  // A bad field is found before anything is written.
  std::vector<NewUser> invalid = batch;
  invalid[3].password.clear();
  EXPECT_EQ(users_->importUsers(invalid, true, &bad).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad, 3u);
  invalid[3] = {"a:b", "example.com", "x"};
  EXPECT_EQ(users_->importUsers(invalid, true, &bad).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad, 3u);
  // So is the same user twice.
  std::vector<NewUser> twice = batch;
  twice.push_back({"bob", "example.com", "b2"});
  EXPECT_EQ(users_->importUsers(twice, true, &bad).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad, 4u);
  EXPECT_EQ(users_->size(), 1u);
  EXPECT_EQ(users_->lookup("carol", "example.com")->ha1_md5, old_ha1);

  // --replace: existing users get the new password, the others are added.
  ASSERT_TRUE(users_->importUsers(batch, true, &bad).isOk());
  EXPECT_EQ(users_->size(), 4u);
  EXPECT_EQ(users_->lookup("carol", "example.com")->ha1_md5,
            computeHa1(DigestAlgorithm::kMd5, "carol", "example.com", "new"));
  // The connection is usable after the rollbacks.
  ASSERT_TRUE(users_->add("erin", "example.com", "e").isOk());
  EXPECT_TRUE(users_->importUsers({}, false).isOk());
  EXPECT_EQ(users_->size(), 5u);
}

TEST_F(UserStoreTest, ReloadSeesEditsFromAnotherConnection) {
  ASSERT_TRUE(users_->add("alice", "example.com", "pw").isOk());
  {
    auto cli = UserStore::open(path_);  // what `sipwake user add` does from its own process
    ASSERT_TRUE(cli.isOk());
    ASSERT_TRUE((*cli)->add("dave", "example.com", "pw2").isOk());
    ASSERT_TRUE((*cli)->remove("alice", "example.com").isOk());
  }
  EXPECT_TRUE(users_->lookup("alice", "example.com").has_value());  // cached until reload
  ASSERT_TRUE(users_->reload().isOk());
  EXPECT_FALSE(users_->lookup("alice", "example.com").has_value());
  EXPECT_TRUE(users_->lookup("dave", "example.com").has_value());
}

TEST_F(UserStoreTest, PasswordNeverReachesTheFile) {
  const std::string password = "correct horse battery staple";
  ASSERT_TRUE(users_->add("erin", "example.com", password).isOk());
  users_.reset();
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream in(path_ + suffix, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find(password), std::string::npos) << path_ << suffix;
  }
}

TEST_F(UserStoreTest, SharesTheFileWithTheLocationStore) {
  ASSERT_TRUE(users_->add("alice", "example.com", "pw").isOk());
  auto locations = SqliteLocationStore::open(path_);  // same file, its own connection
  ASSERT_TRUE(locations.isOk()) << locations.status().toString();
  ASSERT_TRUE((*locations)->load(testing::kNow).isOk());
  ASSERT_TRUE(testing::applySync(**locations,
                                 testing::reg("sip:alice@example.com", "c1", 1,
                                              {testing::contact("sip:alice@198.51.100.7", 60)})));
  ASSERT_TRUE(users_->add("bob", "example.com", "pw").isOk());  // while the writer is live
  auto again = UserStore::open(path_);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ((*again)->size(), 2u);
}

}  // namespace
}  // namespace sipwake::location
