#include "location/user_store.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "common/log.h"
#include "location/sqlite_db.h"
#include "location/user_backend.h"

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

namespace {

class SqliteUserBackend final : public UserBackend {
 public:
  explicit SqliteUserBackend(std::string path) : path_(std::move(path)) {}

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
    return Status::ok();
  }

  Status write(Mode mode, const std::vector<UserCredentials>& rows,
               std::size_t* bad_index) override {
    std::lock_guard lock(db_mu_);
    // IMMEDIATE: take the write lock now, so no other writer can slip in between our rows.
    if (Status s = sqlite::exec(db_.get(), "BEGIN IMMEDIATE"); !s) return s;
    sqlite::Statement& st = mode == Mode::kAdd       ? insert_
                            : mode == Mode::kUpsert  ? upsert_
                            : mode == Mode::kReplace ? update_
                                                     : delete_;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const UserCredentials& u = rows[i];
      st.bind(1, u.user);
      st.bind(2, u.domain);
      if (mode != Mode::kRemove) {
        st.bind(3, u.ha1_md5);
        st.bind(4, u.ha1_sha256);
      }
      int rc = st.step();
      st.reset();
      Status error;
      bool row_caused = true;  // else a storage error: *bad_index untouched
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT) {
        error = {StatusCode::kAlreadyExists,
                 fmt::format("user {}@{} already exists", u.user, u.domain)};
      } else if (rc != SQLITE_DONE) {
        error = sqlite::sqliteError(db_.get(), "write users");
        row_caused = false;
      } else if ((mode == Mode::kReplace || mode == Mode::kRemove) &&
                 sqlite3_changes(db_.get()) == 0) {
        error = notFound(fmt::format("no user {}@{}", u.user, u.domain));
      } else {
        continue;
      }
      if (row_caused && bad_index != nullptr) *bad_index = i;
      (void)sqlite::exec(db_.get(), "ROLLBACK");
      return error;
    }
    if (Status s = sqlite::exec(db_.get(), "COMMIT"); !s) {
      (void)sqlite::exec(db_.get(), "ROLLBACK");
      return s;
    }
    return Status::ok();
  }

  Result<Read> readAll() override {
    std::lock_guard lock(db_mu_);
    Read read;
    read.sequence = ++sequence_;
    int rc;
    while ((rc = select_all_.step()) == SQLITE_ROW) {
      read.users.push_back(
          {std::string(select_all_.columnText(0)), std::string(select_all_.columnText(1)),
           std::string(select_all_.columnText(2)), std::string(select_all_.columnText(3))});
    }
    select_all_.reset();
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "load users");
    return read;
  }

 private:
  const std::string path_;
  std::mutex db_mu_;  // serialises the connection and its statements
  sqlite::DbHandle db_;
  sqlite::Statement insert_, delete_, update_, select_all_, upsert_;
  std::uint64_t sequence_ = 0;
};

}  // namespace

class UserStore::Impl {
 public:
  using Map = std::unordered_map<std::string, UserCredentials>;

  explicit Impl(std::unique_ptr<UserBackend> backend) : backend_(std::move(backend)) {
    backend_->setChangeListener([this](UserBackend::Read read) { install(std::move(read)); });
  }
  // The backend first: its thread may be delivering a read to install().
  ~Impl() { backend_.reset(); }

  Status add(std::string_view user, std::string_view domain, std::string_view password) {
    if (Status s = validateName("user", user); !s) return s;
    if (Status s = validateName("domain", domain); !s) return s;
    if (Status s = validatePassword(password); !s) return s;
    return writeOne(UserBackend::Mode::kAdd, credentials(user, domain, password));
  }

  Status remove(std::string_view user, std::string_view domain) {
    return writeOne(UserBackend::Mode::kRemove,
                    UserCredentials{std::string(user), std::string(domain), {}, {}});
  }

  Status setPassword(std::string_view user, std::string_view domain, std::string_view password) {
    if (Status s = validatePassword(password); !s) return s;
    return writeOne(UserBackend::Mode::kReplace, credentials(user, domain, password));
  }

  Status importUsers(const std::vector<NewUser>& users, bool replace, std::size_t* bad_index) {
    // Every entry is checked before anything is written: a bad one writes nothing.
    std::vector<UserCredentials> rows;
    rows.reserve(users.size());
    for (std::size_t i = 0; i < users.size(); ++i) {
      const NewUser& u = users[i];
      Status s = validateName("user", u.user);
      if (s) s = validateName("domain", u.domain);
      if (s) s = validatePassword(u.password);
      if (!s) {
        if (bad_index != nullptr) *bad_index = i;
        return s;
      }
      rows.push_back(credentials(u.user, u.domain, u.password));
    }
    return importCredentials(rows, replace, bad_index);
  }

  Status importCredentials(const std::vector<UserCredentials>& rows, bool replace,
                           std::size_t* bad_index) {
    std::unordered_map<std::string, std::size_t> seen;
    seen.reserve(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const UserCredentials& u = rows[i];
      Status s = validateName("user", u.user);
      if (s) s = validateName("domain", u.domain);
      if (s && !seen.emplace(mapKey(u.user, u.domain), i).second) {
        s = invalidArgument(fmt::format("user {}@{} is listed twice", u.user, u.domain));
      }
      if (!s) {
        if (bad_index != nullptr) *bad_index = i;
        return s;
      }
    }
    std::lock_guard lock(write_mu_);
    Status s = backend_->write(replace ? UserBackend::Mode::kUpsert : UserBackend::Mode::kAdd,
                               rows, bad_index);
    if (!s) return s;
    return reloadLocked();
  }

  Result<std::vector<UserEntry>> list() {
    auto all = credentialsFromBackend();
    if (!all) return all.status();
    std::vector<UserEntry> out;
    out.reserve(all->size());
    for (UserCredentials& c : *all) out.push_back({std::move(c.user), std::move(c.domain)});
    return out;
  }

  Result<std::vector<UserCredentials>> credentialsFromBackend() {
    auto read = backend_->readAll();
    if (!read) return read.status();
    return std::move(read->users);
  }

  std::optional<UserCredentials> lookup(std::string_view user, std::string_view domain) const {
    std::shared_ptr<const Map> map = snapshot();
    auto it = map->find(mapKey(user, domain));
    if (it == map->end()) return std::nullopt;
    return it->second;
  }

  std::size_t size() const { return snapshot()->size(); }
  std::size_t reads() const {
    std::lock_guard lock(map_mu_);
    return reads_;
  }

  Status reload() {
    std::lock_guard lock(write_mu_);
    return reloadLocked();
  }

 private:
  static UserCredentials credentials(std::string_view user, std::string_view domain,
                                     std::string_view password) {
    return {std::string(user), std::string(domain),
            computeHa1(DigestAlgorithm::kMd5, user, domain, password),
            computeHa1(DigestAlgorithm::kSha256, user, domain, password)};
  }

  Status writeOne(UserBackend::Mode mode, const UserCredentials& row) {
    std::lock_guard lock(write_mu_);
    if (Status s = backend_->write(mode, {row}, nullptr); !s) return s;
    return reloadLocked();
  }

  std::shared_ptr<const Map> snapshot() const {
    std::lock_guard lock(map_mu_);
    return map_;
  }

  // REQUIRES: write_mu_ held (a write is followed by its own read).
  Status reloadLocked() {
    auto read = backend_->readAll();
    if (!read) return read.status();
    install(std::move(*read));
    return Status::ok();
  }

  // Replaces the copy unless a newer read is installed already. Thread: any.
  void install(UserBackend::Read read) {
    auto map = std::make_shared<Map>();
    map->reserve(read.users.size());
    for (UserCredentials& c : read.users) {
      std::string key = mapKey(c.user, c.domain);
      map->emplace(std::move(key), std::move(c));
    }
    std::lock_guard lock(map_mu_);
    if (read.sequence <= installed_sequence_) return;
    installed_sequence_ = read.sequence;
    map_ = std::move(map);
    ++reads_;
  }

  std::unique_ptr<UserBackend> backend_;
  std::mutex write_mu_;        // one write (and the read after it) at a time
  mutable std::mutex map_mu_;  // guards the pointer and counters; the map is immutable
  std::shared_ptr<const Map> map_ = std::make_shared<const Map>();
  std::uint64_t installed_sequence_ = 0;
  std::size_t reads_ = 0;
};

Result<std::unique_ptr<UserStore>> UserStore::open(const std::string& path, int busy_timeout_ms) {
  auto backend = std::make_unique<SqliteUserBackend>(path);
  if (Status s = backend->init(busy_timeout_ms); !s) return s;
  auto impl = std::make_unique<Impl>(std::move(backend));
  if (Status s = impl->reload(); !s) return s;
  return std::unique_ptr<UserStore>(new UserStore(std::move(impl)));
}

Result<std::unique_ptr<UserStore>> UserStore::openRedis(const RedisUserOptions& options) {
  auto backend = openRedisUserBackend(options);
  if (!backend) return backend.status();
  auto impl = std::make_unique<Impl>(std::move(*backend));
  if (Status s = impl->reload(); !s) return s;
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
Status UserStore::importCredentials(const std::vector<UserCredentials>& users, bool replace,
                                    std::size_t* bad_index) {
  return impl_->importCredentials(users, replace, bad_index);
}
Result<std::vector<UserEntry>> UserStore::list() const { return impl_->list(); }
Result<std::vector<UserCredentials>> UserStore::credentials() const {
  return impl_->credentialsFromBackend();
}
std::optional<UserCredentials> UserStore::lookup(std::string_view user,
                                                 std::string_view domain) const {
  return impl_->lookup(user, domain);
}
std::size_t UserStore::size() const { return impl_->size(); }
Status UserStore::reload() { return impl_->reload(); }
std::size_t UserStore::reads() const { return impl_->reads(); }

}  // namespace sipwake::location
