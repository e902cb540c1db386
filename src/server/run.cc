#include "server/run.h"

#include <pthread.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>

#include "common/log.h"
#include "location/user_store.h"
#include "server/admin_command.h"
#include "server/cli.h"
#include "server/config.h"
#include "server/server.h"

namespace sipwake::server {
namespace {

void print(std::FILE* f, const std::string& text) {
  std::fputs(text.c_str(), f);
  std::fflush(f);
}

// Reads one line from `in` without its line ending; nullopt at EOF with nothing read.
std::optional<std::string> readLine(std::FILE* in) {
  std::string line;
  int c;
  bool any = false;
  while ((c = std::fgetc(in)) != EOF) {
    any = true;
    if (c == '\n') break;
    line.push_back(static_cast<char>(c));
  }
  if (!any) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// A password typed on the terminal, without echo.
std::optional<std::string> promptPassword(const char* prompt) {
  std::FILE* tty = std::fopen("/dev/tty", "r+");
  if (tty == nullptr) return std::nullopt;
  std::fputs(prompt, tty);
  std::fflush(tty);
  termios old{};
  bool restore = ::tcgetattr(::fileno(tty), &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(::fileno(tty), TCSAFLUSH, &quiet);
  }
  std::optional<std::string> line = readLine(tty);
  if (restore) ::tcsetattr(::fileno(tty), TCSAFLUSH, &old);
  std::fputs("\n", tty);
  std::fclose(tty);
  return line;
}

// stdin when it is not a terminal (scripts: `echo secret | sipwake user add ...`), else prompted
// twice without echo.
Result<std::string> readNewPassword() {
  if (!::isatty(STDIN_FILENO)) {
    std::optional<std::string> line = readLine(stdin);
    if (!line || line->empty()) return invalidArgument("no password on stdin");
    return *line;
  }
  std::optional<std::string> a = promptPassword("Password: ");
  std::optional<std::string> b = promptPassword("Repeat password: ");
  if (!a || !b) return invalidArgument("cannot read the password from the terminal");
  if (*a != *b) return invalidArgument("the passwords do not match");
  if (a->empty()) return invalidArgument("password must not be empty");
  return *a;
}

void warnUnknownDomain(const std::string& domain) {
  print(stderr, "sipwake: warning: " + domain +
                    " is not one of the configured domains; its users cannot register until it "
                    "is (see [server] domains or --domain)\n");
}

// `user import FILE|-`: every line or none (one transaction).
int importUsers(const CommandLine& cli, location::UserStore& users,
                const std::vector<std::string>& domains) {
  const bool from_stdin = cli.import_path == "-";
  const std::string name = from_stdin ? "stdin" : cli.import_path;
  std::FILE* in = from_stdin ? stdin : std::fopen(cli.import_path.c_str(), "rb");
  if (in == nullptr) {
    print(stderr, "sipwake: cannot open " + name + ": " + std::strerror(errno) + "\n");
    return 1;
  }
  std::string text;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) text.append(buf, n);
  const bool read_failed = std::ferror(in) != 0;
  if (!from_stdin) std::fclose(in);
  if (read_failed) {
    print(stderr, "sipwake: cannot read " + name + "\n");
    return 1;
  }
  auto lines = parseUserImport(text, name);
  std::fill(text.begin(), text.end(), '\0');  // it held passwords
  if (!lines.isOk()) {
    print(stderr, "sipwake: " + lines.status().message() + "; nothing imported\n");
    return 1;
  }
  std::vector<location::NewUser> entries;
  entries.reserve(lines->size());
  std::vector<std::string> unknown_domains;
  for (ImportLine& l : *lines) {
    if (std::find(domains.begin(), domains.end(), l.domain) == domains.end() &&
        std::find(unknown_domains.begin(), unknown_domains.end(), l.domain) ==
            unknown_domains.end()) {
      unknown_domains.push_back(l.domain);
    }
    entries.push_back({std::move(l.user), std::move(l.domain), std::move(l.password)});
  }
  std::size_t bad = entries.size();
  Status s = users.importUsers(entries, cli.import_replace, &bad);
  for (auto& e : entries) std::fill(e.password.begin(), e.password.end(), '\0');
  if (!s) {
    std::string where;
    if (bad < lines->size()) where = name + ":" + std::to_string((*lines)[bad].line) + ": ";
    std::string hint = s.code() == StatusCode::kAlreadyExists && !cli.import_replace
                           ? " (--replace sets the password of existing users)"
                           : "";
    print(stderr, "sipwake: " + where + s.message() + hint + "; nothing imported\n");
    return 1;
  }
  for (const std::string& d : unknown_domains) warnUnknownDomain(d);
  print(stdout, std::to_string(entries.size()) + " user(s) imported from " + name + "\n");
  return 0;
}

// `user copy-to-redis`: every user of the SQLite store (HA1s as they are) into Redis, all or
// none.
int copyUsersToRedis(const CommandLine& cli, const Config& config, location::UserStore& to) {
  auto from = location::UserStore::open(config.store.path);
  if (!from.isOk()) {
    print(stderr, "sipwake: " + config.store.path + ": " + from.status().message() + "\n");
    return 1;
  }
  auto rows = (*from)->credentials();
  if (!rows.isOk()) {
    print(stderr, "sipwake: " + rows.status().message() + "\n");
    return 1;
  }
  if (Status s = to.importCredentials(*rows, cli.import_replace); !s) {
    std::string hint = s.code() == StatusCode::kAlreadyExists && !cli.import_replace
                           ? " (--replace overwrites users that exist in Redis)"
                           : "";
    print(stderr, "sipwake: " + s.message() + hint + "; nothing copied\n");
    return 1;
  }
  print(stdout, std::to_string(rows->size()) + " user(s) copied from " + config.store.path +
                    " to Redis\n");
  return 0;
}

int userCommand(const CommandLine& cli) {
  // The store: Redis when the configuration names a [store] url; else SQLite at --store, else
  // at the configuration's [store] path, else the default.
  Config config;
  if (cli.config_path) {
    auto loaded = loadConfigFile(*cli.config_path);
    if (!loaded.isOk()) {
      print(stderr, "sipwake: " + loaded.status().message() + "\n");
      return 1;
    }
    config = std::move(*loaded);
  }
  if (cli.store_path) config.store.path = *cli.store_path;
  const std::vector<std::string>& domains = config.domains;
  if (cli.user_command == CommandLine::UserCommand::kCopyToRedis && config.store.url.empty()) {
    print(stderr, "sipwake: user copy-to-redis needs --config with a [store] url\n");
    return 1;
  }
  auto store = openUserStore(config, /*follow_changes=*/false);
  if (!store.isOk()) {
    print(stderr, "sipwake: " + store.status().message() + "\n");
    return 1;
  }
  location::UserStore& users = **store;
  const std::string who = cli.user + "@" + cli.user_domain;
  Status result;
  switch (cli.user_command) {
    case CommandLine::UserCommand::kList: {
      auto list = users.list();
      if (!list.isOk()) {
        print(stderr, "sipwake: " + list.status().message() + "\n");
        return 1;
      }
      std::string out;
      for (const auto& u : *list) {
        if (!cli.user_domain.empty() && u.domain != cli.user_domain) continue;
        out += u.user + "@" + u.domain + "\n";
      }
      print(stdout, out);
      return 0;
    }
    case CommandLine::UserCommand::kImport:
      return importUsers(cli, users, domains);
    case CommandLine::UserCommand::kCopyToRedis:
      return copyUsersToRedis(cli, config, users);
    case CommandLine::UserCommand::kDel:
      result = users.remove(cli.user, cli.user_domain);
      break;
    case CommandLine::UserCommand::kAdd:
    case CommandLine::UserCommand::kPasswd: {
      if (cli.user_command == CommandLine::UserCommand::kPasswd &&
          !users.lookup(cli.user, cli.user_domain)) {
        print(stderr, "sipwake: no such user " + who + "\n");
        return 1;
      }
      Result<std::string> password = readNewPassword();
      if (!password.isOk()) {
        print(stderr, "sipwake: " + password.status().message() + "\n");
        return 1;
      }
      result = cli.user_command == CommandLine::UserCommand::kAdd
                   ? users.add(cli.user, cli.user_domain, *password)
                   : users.setPassword(cli.user, cli.user_domain, *password);
      std::fill(password->begin(), password->end(), '\0');
      break;
    }
  }
  if (!result) {
    std::string msg =
        result.code() == StatusCode::kNotFound ? "no such user " + who : result.message();
    print(stderr, "sipwake: " + msg + "\n");
    return 1;
  }
  if (cli.user_command == CommandLine::UserCommand::kAdd &&
      std::find(domains.begin(), domains.end(), cli.user_domain) == domains.end()) {
    warnUnknownDomain(cli.user_domain);
  }
  const char* done = cli.user_command == CommandLine::UserCommand::kAdd   ? "added"
                     : cli.user_command == CommandLine::UserCommand::kDel ? "deleted"
                                                                          : "password changed";
  print(stdout, who + ": " + done + "\n");
  return 0;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

// SIGHUP: the --config file again (without one, the users only); the outcome in one line.
void logReload(Server& server) {
  ReloadReport report;
  if (Status s = server.reload(&report); !s) {
    SW_LOG_ERROR("reload refused: {} (the running configuration stays)", s.message());
    return;
  }
  if (report.restart_needed.empty()) {
    SW_LOG_INFO("reload: applied {}", joined(report.reloaded));
  } else {
    SW_LOG_INFO("reload: applied {}; restart needed for {}", joined(report.reloaded),
                joined(report.restart_needed));
  }
}

// SIGTERM / SIGINT: stop taking new work, let transactions in progress finish within
// [server] drain_timeout; a second SIGTERM / SIGINT ends the wait at once.
void drain(Server& server, const sigset_t& signals, const char* name) {
  const auto bound = std::chrono::seconds(server.drainTimeoutSeconds());
  DrainProgress at_start = server.drainProgress();
  SW_LOG_INFO(
      "received {}, shutting down: draining (at most {} s): {} transaction(s) in progress, {} "
      "parked "
      "request(s), {} connection(s)",
      name, bound.count(), at_start.unanswered, at_start.parked, at_start.connections);
  const auto start = std::chrono::steady_clock::now();
  if (bound.count() == 0) return;
  server.startDraining();
  DrainProgress left = at_start;
  const char* ended = "done";
  for (;;) {
    left = server.drainProgress();
    if (left.unanswered == 0) break;  // a parked request has its transaction unanswered too
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (elapsed >= bound) {
      ended = "timed out";
      break;
    }
    timespec wait{0, 50 * 1000 * 1000};  // polls the loops 20 times a second
    int got = sigtimedwait(&signals, nullptr, &wait);
    if (got == SIGINT || got == SIGTERM) {
      SW_LOG_WARN("received {} while draining: stopping now", got == SIGINT ? "SIGINT" : "SIGTERM");
      ended = "cut short";
      break;
    }
    if (got == SIGHUP) SW_LOG_INFO("draining: SIGHUP ignored");
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  SW_LOG_INFO("drain {} after {} ms: {} transaction(s) unanswered, {} parked, {} connection(s)",
              ended, ms, left.unanswered, left.parked, left.connections);
}

int checkConfig(const std::string& path) {
  auto config = loadConfigFile(path);
  if (!config.isOk()) {
    print(stderr, config.status().message() + "\n");
    return 1;
  }
  for (const std::string& w : config->warnings) print(stderr, "warning: " + w + "\n");
  print(stdout, path + ": OK\n");
  return 0;
}

int run(const CommandLine& cli) {
  // Signals are taken synchronously by this thread (sigwait below). They are blocked before any
  // loop thread exists so that every thread inherits the mask and none is interrupted.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);  // reload
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A peer closing a connection must not kill the process: write errors are handled as Status.
  signal(SIGPIPE, SIG_IGN);

  std::optional<Result<Config>> loaded;
  if (cli.config_path) {
    loaded.emplace(loadConfigFile(*cli.config_path));
  } else {
    loaded.emplace(defaultConfig());
  }
  if (!loaded->isOk()) {
    print(stderr, "sipwake: " + loaded->status().message() + "\n");
    return 1;
  }
  Config config = std::move(**loaded);
  applyOverrides(cli, config);
  if (Status s = validateConfig(config); !s) {
    print(stderr, "sipwake: " + s.message() + "\n");
    return 1;
  }
  if (!configureLogging(config.log_level, config.log_format)) {
    print(stderr, "sipwake: bad log level \"" + config.log_level + "\"\n");
    return 1;
  }
  if (cli.config_path) {
    SW_LOG_INFO("configuration: {}", *cli.config_path);
  } else {
    SW_LOG_INFO("configuration: built-in defaults (no --config)");
  }
  for (const std::string& w : config.warnings) SW_LOG_WARN("configuration: {}", w);

  Server server(std::move(config));
  if (Status s = server.start(); !s) {
    SW_LOG_ERROR("start-up failed: {}", s.message());
    return 1;
  }
  if (cli.config_path) {
    // SIGHUP and POST /api/reload re-read the file, with the same command-line overrides.
    server.setConfigLoader([&cli]() -> Result<Config> {
      auto next = loadConfigFile(*cli.config_path);
      if (!next) return next.status();
      applyOverrides(cli, *next);
      return std::move(*next);
    });
  }
  SW_LOG_INFO("ready");

  int sig = 0;
  for (;;) {
    if (sigwait(&stop_signals, &sig) != 0) continue;
    if (sig != SIGHUP) break;
    logReload(server);
  }
  const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
  drain(server, stop_signals, name);
  server.stop();
  SW_LOG_INFO("stopped");
  spdlog::shutdown();
  return 0;
}

}  // namespace

int runMain(int argc, char** argv) {
  CommandLine cli = parseCommandLine(argc, argv);
  switch (cli.action) {
    case CommandLine::Action::kExit:
      print(cli.output_is_error ? stderr : stdout, cli.output);
      return cli.exit_code;
    case CommandLine::Action::kCheckConfig:
      return checkConfig(cli.check_config_path);
    case CommandLine::Action::kUser:
      return userCommand(cli);
    case CommandLine::Action::kAdmin:
      return adminCommand(cli);
    case CommandLine::Action::kRun:
      return run(cli);
  }
  return 1;
}

}  // namespace sipwake::server
