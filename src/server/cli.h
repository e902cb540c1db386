// The command line: `sipwake [--config FILE] [--listen SPEC]... [--domain NAME]... [--store PATH]
// [--log-level L]`, `sipwake check-config FILE`, `sipwake user add|del|passwd USER@DOMAIN`,
// `sipwake user list [DOMAIN]`, `sipwake user import [--replace] FILE|-`,
// `sipwake user copy-to-redis [--replace]`, the admin commands
// `sipwake status|timeline|push test|binding list|binding drop|reload` (admin_client.h),
// `--help`, `--version`. Parsing only (also of the import file); run.h acts on the result.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "server/config.h"

namespace sipwake::server {

// Version string printed by --version and logged at start-up.
std::string_view versionString();

struct CommandLine {
  enum class Action {
    kRun,          // start the server
    kCheckConfig,  // validate `check_config_path` and exit
    kUser,         // manage users in the store (`user_command`), then exit
    kAdmin,        // ask the running server through its admin API (`admin_command`), then exit
    kExit,         // print `output` (help, version, or a usage error) and exit with `exit_code`
  };
  Action action = Action::kRun;

  // kRun
  std::optional<std::string> config_path;  // --config
  std::vector<ListenerConfig> listen;      // --listen, in order; non-empty replaces [[listen]]
  std::optional<std::string> log_level;    // --log-level, overrides [server] log_level
  std::vector<std::string> domains;        // --domain, in order; non-empty replaces domains
  std::optional<std::string> store_path;   // --store, overrides [store] path

  // kUser (also uses config_path and store_path to find the store)
  enum class UserCommand { kAdd, kDel, kList, kPasswd, kImport, kCopyToRedis };
  UserCommand user_command = UserCommand::kList;
  std::string user;         // kAdd, kDel, kPasswd: the user part (as typed)
  std::string user_domain;  // kAdd, kDel, kPasswd: the domain (lower-cased); kList: filter or ""
  std::string import_path;  // kImport: the file, "-" for stdin
  bool import_replace = false;  // kImport, kCopyToRedis: --replace (overwrite existing users)

  // kAdmin (also uses config_path to find the admin listener and its token)
  enum class AdminCommand { kStatus, kTimeline, kPushTest, kBindingList, kBindingDrop, kReload };
  AdminCommand admin_command = AdminCommand::kStatus;
  std::string admin_url;         // --admin; "" = from the configuration's [admin]
  std::string admin_token_file;  // --token-file; "" = [admin] token_file
  std::string admin_ca_file;     // --admin-ca; "" = [admin] tls_certificate, else the system's
  bool admin_json = false;       // --json: print the API's JSON as it came
  std::string admin_aor;         // timeline (unless by Call-ID), push test, binding list|drop
  std::string admin_call_id;     // timeline --call-id
  unsigned admin_limit = 10;     // timeline --limit
  bool admin_voip = false;       // push test --voip
  std::string admin_device;      // binding drop --device
  std::string admin_contact;     // binding drop --contact
  bool admin_all = false;        // binding drop --all

  // kCheckConfig
  std::string check_config_path;

  // kExit
  int exit_code = 0;
  std::string output;
  bool output_is_error = false;  // print to stderr rather than stdout
};

// Never throws; every CLI11 exception becomes Action::kExit with a message.
CommandLine parseCommandLine(int argc, const char* const* argv);

// One user line of a `user import` file.
struct ImportLine {
  std::size_t line = 0;  // 1-based
  std::string user;
  std::string domain;  // lower-cased, as `user add` stores it
  std::string password;
};

// Parses a `user import` file: one "USER@DOMAIN PASSWORD" per line (separated by spaces or
// tabs; so a password cannot contain either), blank lines and lines starting with '#' ignored.
// The first bad line fails the whole file: kInvalidArgument "NAME:LINE: what is wrong" (the
// password itself is never quoted). `name` is the file name used in messages.
Result<std::vector<ImportLine>> parseUserImport(std::string_view text, std::string_view name);

// Applies the command-line overrides to a loaded configuration.
void applyOverrides(const CommandLine& cli, Config& config);

}  // namespace sipwake::server
