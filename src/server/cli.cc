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
      "Manage SIP users (digest credentials, stored as HA1 only) in Redis when --config names\n"
      "a [store] url (every node sees a change at once), else in the SQLite store named by\n"
      "--store, or by --config's [store] path, or sipwake.db (a running server picks changes up\n"
      "within [auth] user_reload_interval seconds, or at once on SIGHUP)");
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
  bool copy_replace = false;
  CLI::App* user_copy = user->add_subcommand(
      "copy-to-redis",
      "Copy every user (their HA1s) from the SQLite store (--store, or [store] path) to the\n"
      "Redis of --config's [store] url, in one script (all or none)");
  user_copy->add_flag("--replace", copy_replace,
                      "Overwrite users that exist in Redis already (default: an error)");
  for (CLI::App* sub :
       {user, user_add, user_del, user_passwd, user_list, user_import, user_copy}) {
    sub->fallthrough();
  }

  // The admin commands: they talk to the running server's admin listener.
  std::string admin_url;
  std::string token_file;
  std::string admin_ca;
  bool admin_json = false;
  std::string admin_aor;
  std::string call_id;
  unsigned limit = 10;
  bool voip = false;
  std::string device;
  std::string contact;
  bool drop_all = false;
  std::vector<CLI::App*> admin_apps;
  auto admin_command = [&](CLI::App* parent, const char* name, const char* what) {
    CLI::App* sub = parent->add_subcommand(name, what);
    admin_apps.push_back(sub);
    return sub;
  };
  CLI::App* status = admin_command(
      &app, "status", "Ask the running server for its state (bindings, parked calls, pushes)");
  CLI::App* timeline = admin_command(
      &app, "timeline",
      "What happened to the last calls to USER@DOMAIN (or to one call: --call-id ID): each\n"
      "step of the wake-up with its millisecond offset and the push provider's answer");
  timeline->add_option("USER@DOMAIN", admin_aor);
  timeline->add_option("--call-id", call_id, "The Call-ID of one call")->type_name("ID");
  timeline->add_option("-n,--limit", limit, "At most this many calls (1..200, default 10)")
      ->check(CLI::Range(1u, 200u));
  CLI::App* push = app.add_subcommand("push", "Push notifications");
  push->require_subcommand(1);
  CLI::App* push_test = admin_command(
      push, "test",
      "Push each device of USER@DOMAIN once through the configured apps and print each\n"
      "provider's answer (an alert/background push; --voip sends a VoIP call push)");
  push_test->add_option("USER@DOMAIN", admin_aor)->required();
  push_test->add_flag("--voip", voip, "Send a VoIP (call) push: the app must report a call");
  CLI::App* binding = app.add_subcommand("binding", "Registrations of a user");
  binding->require_subcommand(1);
  CLI::App* binding_list =
      admin_command(binding, "list", "List the SIP bindings and push bindings of USER@DOMAIN");
  binding_list->add_option("USER@DOMAIN", admin_aor)->required();
  CLI::App* binding_drop = admin_command(
      binding, "drop",
      "Remove bindings of USER@DOMAIN (and their push bindings): one device (--device KEY),\n"
      "one contact (--contact URI) or all of them (--all)");
  binding_drop->add_option("USER@DOMAIN", admin_aor)->required();
  auto* by_device = binding_drop->add_option("--device", device, "The device key")->type_name("KEY");
  auto* by_contact = binding_drop->add_option("--contact", contact, "The contact URI")->type_name("URI");
  auto* all = binding_drop->add_flag("--all", drop_all, "Every binding of the user");
  by_device->excludes(by_contact)->excludes(all);
  by_contact->excludes(all);
  admin_command(
      &app, "reload",
      "Make the running server re-read its configuration (as SIGHUP does) and print what\n"
      "changed; a bad configuration is refused and the running one kept");
  for (CLI::App* sub : admin_apps) {
    sub->add_option("--admin", admin_url,
                    "The admin listener, http://IP:PORT or https://HOST:PORT (default: --config's\n"
                    "[admin] listen)")
        ->type_name("URL");
    sub->add_option("--token-file", token_file, "The bearer token (default: [admin] token_file)")
        ->type_name("FILE");
    sub->add_option("--admin-ca", admin_ca,
                    "CA certificates for an https listener (default: [admin] tls_certificate)")
        ->type_name("FILE");
    sub->add_flag("--json", admin_json, "Print the admin API's JSON answer as it is");
    sub->fallthrough();
  }
  push->fallthrough();
  binding->fallthrough();

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
  for (CLI::App* sub : admin_apps) {
    if (!sub->parsed()) continue;
    cl.action = CommandLine::Action::kAdmin;
    cl.admin_command = sub == status          ? CommandLine::AdminCommand::kStatus
                       : sub == timeline      ? CommandLine::AdminCommand::kTimeline
                       : sub == push_test     ? CommandLine::AdminCommand::kPushTest
                       : sub == binding_list  ? CommandLine::AdminCommand::kBindingList
                       : sub == binding_drop  ? CommandLine::AdminCommand::kBindingDrop
                                              : CommandLine::AdminCommand::kReload;
    cl.admin_url = admin_url;
    cl.admin_token_file = token_file;
    cl.admin_ca_file = admin_ca;
    cl.admin_json = admin_json;
    cl.admin_aor = admin_aor;
    cl.admin_call_id = call_id;
    cl.admin_limit = limit;
    cl.admin_voip = voip;
    cl.admin_device = device;
    cl.admin_contact = contact;
    cl.admin_all = drop_all;
    auto usage = [&](std::string what) {
      cl.action = CommandLine::Action::kExit;
      cl.exit_code = 2;
      cl.output = "sipwake: " + what + "\n";
      cl.output_is_error = true;
      return cl;
    };
    if (sub == timeline && admin_aor.empty() == call_id.empty()) {
      return usage("timeline needs USER@DOMAIN or --call-id ID (one of them)");
    }
    if (sub == binding_drop && device.empty() && contact.empty() && !drop_all) {
      return usage("binding drop needs --device KEY, --contact URI or --all");
    }
    if (!admin_aor.empty()) {
      std::string_view aor = admin_aor;
      if (aor.starts_with("sip:")) aor.remove_prefix(4);
      std::string u;
      std::string d;
      if (!splitAor(aor, u, d)) return usage("expected USER@DOMAIN, got \"" + admin_aor + "\"");
      cl.admin_aor = u + "@" + d;
    }
    return cl;
  }
  if (user->parsed()) {
    cl.action = CommandLine::Action::kUser;
    if (user_list->parsed()) {
      cl.user_command = CommandLine::UserCommand::kList;
      cl.user_domain = lowerCase(list_domain);
      return cl;
    }
    if (user_copy->parsed()) {
      cl.user_command = CommandLine::UserCommand::kCopyToRedis;
      cl.import_replace = copy_replace;
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
