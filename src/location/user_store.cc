#include "location/user_store.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "common/log.h"
#include "location/sqlite_db.h"

namespace sipwake::location {
namespace {

Status validateName(std::string_view what, std::string_view value) {
  if (value.empty()) return invalidArgument(fmt::format("{} must not be empty", what));
  // ':' would make H(user:realm:password) ambiguous; control characters cannot be typed in a
  // SIP header (and would corrupt the CLI's listing).
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ':') {
      return invalidArgument(fmt::format("{} contains a control character or ':'", what));
    }
  }
  return Status::ok();
}

Status validatePassword(std::string_view password) {
  // Never echo the password itself.
  if (password.empty()) return invalidArgument("password must not be empty");
  return Status::ok();
}

std::string mapKey(std::string_view user, std::string_view domain) {
  std::string key;
  key.reserve(user.size() + 1 + domain.size());
  key.append(user).push_back('\0');  // validateName() keeps NUL out of both parts
  key.append(domain);
  return key;
}

}  // namespace

std::string digestHex(DigestAlgorithm algorithm, std::string_view data) {
  const EVP_MD* md = algorithm == DigestAlgorithm::kMd5 ? EVP_md5() : EVP_sha256();
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  int ok = EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  SIPWAKE_CHECK(ok == 1);  // only fails on allocation failure or a broken OpenSSL build
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * len, '\0');
  for (unsigned int i = 0; i < len; ++i) {
    hex[2 * i] = kHex[out[i] >> 4];
    hex[2 * i + 1] = kHex[out[i] & 0xf];
  }
  return hex;
}

std::string computeHa1(DigestAlgorithm algorithm, std::string_view user, std::string_view realm,
                       std::string_view password) {
  std::string a1;
  a1.reserve(user.size() + realm.size() + password.size() + 2);
  a1.append(user).append(":").append(realm).append(":").append(password);
  std::string ha1 = digestHex(algorithm, a1);
  OPENSSL_cleanse(a1.data(), a1.size());  // do not leave the password behind in freed memory
  return ha1;
}

class UserStore::Impl {
 public:
  using Map = std::unordered_map<std::string, UserCredentials>;

  explicit Impl(std::string path) : path_(std::move(path)) {}

  Status init(int busy_timeout_ms) {
    Result<sqlite::DbHandle> db = sqlite::openDatabase(
        path_, {.synchronous_full = false, .busy_timeout_ms = busy_timeout_ms});
    if (!db) return db.status();
    db_ = std::move(db).value();
    struct {
      sqlite::Statement* st;
      std::string_view sql;
    } const statements[] = {
        {&insert_, "INSERT INTO users (user, domain, ha1_md5, ha1_sha256) VALUES (?1, ?2, ?3, ?4)"},
        {&delete_, "DELETE FROM users WHERE user = ?1 AND domain = ?2"},
        {&update_,
         "UPDATE users SET ha1_md5 = ?3, ha1_sha256 = ?4 WHERE user = ?1 AND domain = ?2"},
        {&select_all_, "SELECT user, domain, ha1_md5, ha1_sha256 FROM users ORDER BY domain, user"},
        {&upsert_,
         "INSERT INTO users (user, domain, ha1_md5, ha1_sha256) VALUES (?1, ?2, ?3, ?4) "
         "ON CONFLICT (user, domain) DO UPDATE SET ha1_md5 = excluded.ha1_md5, "
         "ha1_sha256 = excluded.ha1_sha256"},
    };
    for (const auto& s : statements) {
      Result<sqlite::Statement> st = sqlite::Statement::prepare(db_.get(), s.sql);
      if (!st) return st.status();
      *s.st = std::move(st).value();
    }
    return reload();
  }

  Status add(std::string_view user, std::string_view domain, std::string_view password) {
    if (Status s = validateName("user", user); !s) return s;
    if (Status s = validateName("domain", domain); !s) return s;
    if (Status s = validatePassword(password); !s) return s;
    std::lock_guard lock(db_mu_);
    bindCredentials(insert_, user, domain, password);
    int rc = insert_.step();
    insert_.reset();
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT) {
      return {StatusCode::kAlreadyExists, fmt::format("user {}@{} already exists", user, domain)};
    }
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "add user");
    return reloadLocked();
  }

  Status remove(std::string_view user, std::string_view domain) {
    std::lock_guard lock(db_mu_);
    delete_.bind(1, user);
    delete_.bind(2, domain);
    return changeOne(delete_, user, domain, "remove user");
  }

  Status setPassword(std::string_view user, std::string_view domain, std::string_view password) {
    if (Status s = validatePassword(password); !s) return s;
    std::lock_guard lock(db_mu_);
    bindCredentials(update_, user, domain, password);
    return changeOne(update_, user, domain, "set password");
  }

  Status importUsers(const std::vector<NewUser>& users, bool replace, std::size_t* bad_index) {
    // Every entry is checked before the transaction starts: a bad one writes nothing.
    std::unordered_map<std::string, std::size_t> seen;
    seen.reserve(users.size());
    for (std::size_t i = 0; i < users.size(); ++i) {
      const NewUser& u = users[i];
      Status s = validateName("user", u.user);
      if (s) s = validateName("domain", u.domain);
      if (s) s = validatePassword(u.password);
      if (s && !seen.emplace(mapKey(u.user, u.domain), i).second) {
        s = invalidArgument(fmt::format("user {}@{} is listed twice", u.user, u.domain));
      }
      if (!s) {
        if (bad_index != nullptr) *bad_index = i;
        return s;
      }
    }
    std::lock_guard lock(db_mu_);
    // IMMEDIATE: take the write lock now, so no other writer can slip in between our rows.
    if (Status s = sqlite::exec(db_.get(), "BEGIN IMMEDIATE"); !s) return s;
    sqlite::Statement& st = replace ? upsert_ : insert_;
    for (std::size_t i = 0; i < users.size(); ++i) {
      const NewUser& u = users[i];
      bindCredentials(st, u.user, u.domain, u.password);
      int rc = st.step();
      st.reset();
      if (rc == SQLITE_DONE) continue;
      Status error = rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT
                         ? Status(StatusCode::kAlreadyExists,
                                  fmt::format("user {}@{} already exists", u.user, u.domain))
                         : sqlite::sqliteError(db_.get(), "import users");
      if (error.code() == StatusCode::kAlreadyExists && bad_index != nullptr) *bad_index = i;
      (void)sqlite::exec(db_.get(), "ROLLBACK");
      return error;
    }
    if (Status s = sqlite::exec(db_.get(), "COMMIT"); !s) {
      (void)sqlite::exec(db_.get(), "ROLLBACK");
      return s;
    }
    return reloadLocked();
  }

  Result<std::vector<UserEntry>> list() {
    std::lock_guard lock(db_mu_);
    std::vector<UserEntry> out;
    int rc;
    while ((rc = select_all_.step()) == SQLITE_ROW) {
      out.push_back(
          {std::string(select_all_.columnText(0)), std::string(select_all_.columnText(1))});
    }
    select_all_.reset();
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "list users");
    return out;
  }

  std::optional<UserCredentials> lookup(std::string_view user, std::string_view domain) const {
    std::shared_ptr<const Map> map = snapshot();
    auto it = map->find(mapKey(user, domain));
    if (it == map->end()) return std::nullopt;
    return it->second;
  }

  std::size_t size() const { return snapshot()->size(); }

  Status reload() {
    std::lock_guard lock(db_mu_);
    return reloadLocked();
  }

 private:
  std::shared_ptr<const Map> snapshot() const {
    std::lock_guard lock(map_mu_);
    return map_;
  }

  // REQUIRES: db_mu_ held. Parameters 1..4 = user, domain, HA1-MD5, HA1-SHA256.
  void bindCredentials(sqlite::Statement& st, std::string_view user, std::string_view domain,
                       std::string_view password) {
    st.bind(1, user);
    st.bind(2, domain);
    st.bind(3, computeHa1(DigestAlgorithm::kMd5, user, domain, password));
    st.bind(4, computeHa1(DigestAlgorithm::kSha256, user, domain, password));
  }

  // REQUIRES: db_mu_ held, `st` bound. Runs a statement meant to touch exactly one user.
  Status changeOne(sqlite::Statement& st, std::string_view user, std::string_view domain,
                   std::string_view what) {
    int rc = st.step();
    st.reset();
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), what);
    if (sqlite3_changes(db_.get()) == 0) {
      return notFound(fmt::format("no user {}@{}", user, domain));
    }
    return reloadLocked();
  }

  // REQUIRES: db_mu_ held.
  Status reloadLocked() {
    auto map = std::make_shared<Map>();
    int rc;
    while ((rc = select_all_.step()) == SQLITE_ROW) {
      UserCredentials c{
          std::string(select_all_.columnText(0)), std::string(select_all_.columnText(1)),
          std::string(select_all_.columnText(2)), std::string(select_all_.columnText(3))};
      std::string key = mapKey(c.user, c.domain);
      map->emplace(std::move(key), std::move(c));
    }
    select_all_.reset();
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "load users");
    std::lock_guard lock(map_mu_);
    map_ = std::move(map);
    return Status::ok();
  }

  const std::string path_;
  std::mutex db_mu_;  // serialises the connection and its statements
  sqlite::DbHandle db_;
  sqlite::Statement insert_, delete_, update_, select_all_, upsert_;
  mutable std::mutex map_mu_;  // guards the pointer only; the map it points to is immutable
  std::shared_ptr<const Map> map_ = std::make_shared<const Map>();
};

Result<std::unique_ptr<UserStore>> UserStore::open(const std::string& path, int busy_timeout_ms) {
  auto impl = std::make_unique<Impl>(path);
  if (Status s = impl->init(busy_timeout_ms); !s) return s;
  return std::unique_ptr<UserStore>(new UserStore(std::move(impl)));
}

UserStore::UserStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UserStore::~UserStore() = default;

Status UserStore::add(std::string_view user, std::string_view domain, std::string_view password) {
  return impl_->add(user, domain, password);
}
Status UserStore::remove(std::string_view user, std::string_view domain) {
  return impl_->remove(user, domain);
}
Status UserStore::setPassword(std::string_view user, std::string_view domain,
                              std::string_view password) {
  return impl_->setPassword(user, domain, password);
}
Status UserStore::importUsers(const std::vector<NewUser>& users, bool replace,
                              std::size_t* bad_index) {
  return impl_->importUsers(users, replace, bad_index);
}
Result<std::vector<UserEntry>> UserStore::list() const { return impl_->list(); }
std::optional<UserCredentials> UserStore::lookup(std::string_view user,
                                                 std::string_view domain) const {
  return impl_->lookup(user, domain);
}
std::size_t UserStore::size() const { return impl_->size(); }
Status UserStore::reload() { return impl_->reload(); }

}  // namespace sipwake::location
