#include "server/cli.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <sstream>

#ifndef SIPWAKE_VERSION
#define SIPWAKE_VERSION "0.0.0"
#endif

namespace sipwake::server {

namespace {

std::string lowerCase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "user@domain" → (user, lower-cased domain); the last '@' splits, so the user may hold one.
bool splitAor(std::string_view aor, std::string& user, std::string& domain) {
  auto at = aor.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == aor.size()) return false;
  user = std::string(aor.substr(0, at));
  domain = lowerCase(aor.substr(at + 1));
  return true;
}

}  // namespace

std::string_view versionString() { return SIPWAKE_VERSION; }

Result<std::vector<ImportLine>> parseUserImport(std::string_view text, std::string_view name) {
  std::vector<ImportLine> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::vector<std::string_view> fields;
    for (std::size_t i = 0; i < line.size();) {
      if (line[i] == ' ' || line[i] == '\t') {
        ++i;
        continue;
      }
      std::size_t end = line.find_first_of(" \t", i);
      if (end == std::string_view::npos) end = line.size();
      fields.push_back(line.substr(i, end - i));
      i = end;
    }
    if (fields.empty() || fields.front().front() == '#') continue;
    auto bad = [&](std::string_view what) {
      return invalidArgument(fmt::format("{}:{}: {}", name, line_no, what));
    };
    if (fields.size() != 2) {
      return bad(fmt::format("expected \"USER@DOMAIN PASSWORD\", got {} field{}", fields.size(),
                             fields.size() == 1 ? "" : "s"));
    }
    ImportLine entry;
    entry.line = line_no;
    if (!splitAor(fields[0], entry.user, entry.domain)) {
      return bad(fmt::format("expected USER@DOMAIN, got \"{}\"", fields[0]));
    }
    entry.password = std::string(fields[1]);
    out.push_back(std::move(entry));
  }
  return out;
}

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
  std::string import_path;
  bool import_replace = false;
  CLI::App* user_import = user->add_subcommand(
      "import",
      "Add many users in one transaction (all or none) from FILE, or stdin if FILE is -: one\n"
      "\"USER@DOMAIN PASSWORD\" per line; blank lines and # comments are ignored");
  user_import->add_option("FILE", import_path)->required();
  user_import->add_flag("--replace", import_replace,
                        "Set the password of users that exist already (default: an error)");
  for (CLI::App* sub : {user, user_add, user_del, user_passwd, user_list, user_import}) {
    sub->fallthrough();
  }

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
      cl.user_domain = lowerCase(list_domain);
      return cl;
    }
    if (user_import->parsed()) {
      cl.user_command = CommandLine::UserCommand::kImport;
      cl.import_path = import_path;
      cl.import_replace = import_replace;
      return cl;
    }
    cl.user_command = user_add->parsed()   ? CommandLine::UserCommand::kAdd
                      : user_del->parsed() ? CommandLine::UserCommand::kDel
                                           : CommandLine::UserCommand::kPasswd;
    if (!splitAor(user_aor, cl.user, cl.user_domain)) {
      cl.action = CommandLine::Action::kExit;
      cl.exit_code = 2;
      cl.output = "sipwake: expected USER@DOMAIN, got \"" + user_aor + "\"\n";
      cl.output_is_error = true;
      return cl;
    }
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
    cl.domains.push_back(lowerCase(d));
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
