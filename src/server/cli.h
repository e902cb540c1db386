// The command line: `sipwake [--config FILE] [--listen SPEC]... [--domain NAME]... [--store PATH]
// [--log-level L]`, `sipwake check-config FILE`, `sipwake user add|del|passwd USER@DOMAIN`,
// `sipwake user list [DOMAIN]`, `--help`, `--version`. Parsing only; run.h acts on the result.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "server/config.h"

namespace sipwake::server {

// Version string printed by --version and logged at start-up.
std::string_view versionString();

struct CommandLine {
  enum class Action {
    kRun,          // start the server
    kCheckConfig,  // validate `check_config_path` and exit
    kUser,         // manage users in the store (`user_command`), then exit
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
  enum class UserCommand { kAdd, kDel, kList, kPasswd };
  UserCommand user_command = UserCommand::kList;
  std::string user;         // kAdd, kDel, kPasswd: the user part (as typed)
  std::string user_domain;  // kAdd, kDel, kPasswd: the domain (lower-cased); kList: filter or ""

  // kCheckConfig
  std::string check_config_path;

  // kExit
  int exit_code = 0;
  std::string output;
  bool output_is_error = false;  // print to stderr rather than stdout
};

// Never throws; every CLI11 exception becomes Action::kExit with a message.
CommandLine parseCommandLine(int argc, const char* const* argv);

// Applies the command-line overrides to a loaded configuration.
void applyOverrides(const CommandLine& cli, Config& config);

}  // namespace sipwake::server
