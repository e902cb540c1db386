#include "server/cli.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <sstream>

#ifndef SIPWAKE_VERSION
#define SIPWAKE_VERSION "0.0.0"
#endif

namespace sipwake::server {

std::string_view versionString() { return SIPWAKE_VERSION; }

CommandLine parseCommandLine(int argc, const char* const* argv) {
  CommandLine cl;
  CLI::App app{
      "sipwake: SIP registrar and edge proxy.\n"
      "With no options it runs on loopback (udp/tcp 127.0.0.1:5060, tls 127.0.0.1:5061) with\n"
      "built-in defaults; see docs/configuration.md for the TOML configuration file.",
      "sipwake"};
  app.set_help_flag("-h,--help", "Print this help and exit");

  bool version = false;
  std::string config_path;
  std::vector<std::string> listen_specs;
  std::string log_level;
  app.add_flag("-V,--version", version, "Print the version and exit");
  app.add_option("-c,--config", config_path, "Configuration file (TOML)")->type_name("FILE");
  app.add_option("-l,--listen", listen_specs,
                 "Listen on udp:IP:PORT, tcp:IP:PORT or tls:IP:PORT (IPv6 as tcp:[::1]:5060);\n"
                 "repeatable; replaces the configuration's [[listen]] tables")
      ->type_name("SPEC")
      ->allow_extra_args(false);
  app.add_option("--log-level", log_level,
                 "Override [server] log_level (trace, debug, info, warn, error, critical, off)")
      ->type_name("LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

  std::vector<std::string> domains;
  std::string store_path;
  app.add_option("-d,--domain", domains,
                 "A domain this server is registrar for; repeatable; replaces [server] domains")
      ->type_name("NAME")
      ->allow_extra_args(false);
  app.add_option("-s,--store", store_path,
                 "Store file (SQLite); overrides [store] path, also for `user` commands")
      ->type_name("PATH");

  std::string check_path;
  CLI::App* check =
      app.add_subcommand("check-config",
                         "Validate a configuration file: prints \"FILE: OK\" and exits 0, or names "
                         "the first bad key with its line and exits 1");
  check->add_option("FILE", check_path, "Configuration file (TOML)")->required();

  CLI::App* user = app.add_subcommand(
      "user",
      "Manage SIP users (digest credentials, stored as HA1 only) in the store named by --store,\n"
      "or by --config's [store] path, or sipwake.db. A running server picks changes up within\n"
      "[auth] user_reload_interval seconds, or at once on SIGHUP");
  user->require_subcommand(1);
  std::string user_aor;
  std::string list_domain;
  CLI::App* user_add = user->add_subcommand(
      "add", "Add USER@DOMAIN; the password is read from stdin, or prompted twice on a terminal");
  user_add->add_option("USER@DOMAIN", user_aor)->required();
  CLI::App* user_del = user->add_subcommand("del", "Delete USER@DOMAIN");
  user_del->add_option("USER@DOMAIN", user_aor)->required();
  CLI::App* user_passwd =
      user->add_subcommand("passwd", "Set the password of USER@DOMAIN (read like `add` does)");
  user_passwd->add_option("USER@DOMAIN", user_aor)->required();
  CLI::App* user_list = user->add_subcommand("list", "List users, of DOMAIN only if given");
  user_list->add_option("DOMAIN", list_domain);
  for (CLI::App* sub : {user, user_add, user_del, user_passwd, user_list}) sub->fallthrough();

  std::ostringstream out;
  std::ostringstream err;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    cl.action = CommandLine::Action::kExit;
    cl.exit_code = app.exit(e, out, err);
    cl.output = out.str();
    return cl;
  } catch (const CLI::ParseError& e) {
    cl.action = CommandLine::Action::kExit;
    cl.exit_code = app.exit(e, out, err);
    if (cl.exit_code == 0) {
      cl.output = out.str();
    } else {
      cl.exit_code = 2;
      cl.output = err.str();
      cl.output_is_error = true;
    }
    return cl;
  }

  if (version) {
    cl.action = CommandLine::Action::kExit;
    cl.output = "sipwake " + std::string(versionString()) + "\n";
    return cl;
  }
  if (check->parsed()) {
    cl.action = CommandLine::Action::kCheckConfig;
    cl.check_config_path = check_path;
    return cl;
  }
  if (!config_path.empty()) cl.config_path = config_path;
  if (!store_path.empty()) cl.store_path = store_path;
  if (user->parsed()) {
    cl.action = CommandLine::Action::kUser;
    if (user_list->parsed()) {
      cl.user_command = CommandLine::UserCommand::kList;
      for (char& c : list_domain)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      cl.user_domain = list_domain;
      return cl;
    }
    cl.user_command = user_add->parsed()   ? CommandLine::UserCommand::kAdd
                      : user_del->parsed() ? CommandLine::UserCommand::kDel
                                           : CommandLine::UserCommand::kPasswd;
    auto at = user_aor.rfind('@');
    if (at == std::string::npos || at == 0 || at + 1 == user_aor.size()) {
      cl.action = CommandLine::Action::kExit;
      cl.exit_code = 2;
      cl.output = "sipwake: expected USER@DOMAIN, got \"" + user_aor + "\"\n";
      cl.output_is_error = true;
      return cl;
    }
    cl.user = user_aor.substr(0, at);
    cl.user_domain = user_aor.substr(at + 1);
    for (char& c : cl.user_domain)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return cl;
  }
  for (const auto& d : domains) {
    if (d.empty()) {
      cl.action = CommandLine::Action::kExit;
      cl.exit_code = 2;
      cl.output = "sipwake: --domain must not be empty\n";
      cl.output_is_error = true;
      return cl;
    }
    std::string lower = d;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    cl.domains.push_back(lower);
  }
  for (const auto& spec : listen_specs) {
    auto l = parseListenSpec(spec);
    if (!l.isOk()) {
      cl.action = CommandLine::Action::kExit;
      cl.exit_code = 2;
      cl.output = "sipwake: " + l.status().message() + "\n";
      cl.output_is_error = true;
      return cl;
    }
    cl.listen.push_back(*l);
  }
  if (!log_level.empty()) cl.log_level = log_level;
  return cl;
}

void applyOverrides(const CommandLine& cli, Config& config) {
  if (!cli.listen.empty()) config.listeners = cli.listen;
  if (cli.log_level) config.log_level = *cli.log_level;
  if (!cli.domains.empty()) config.domains = cli.domains;
  if (cli.store_path) config.store.path = *cli.store_path;
}

}  // namespace sipwake::server
