#include "server/cli.h"

#include <CLI/CLI.hpp>
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

  std::string check_path;
  CLI::App* check =
      app.add_subcommand("check-config",
                         "Validate a configuration file: prints \"FILE: OK\" and exits 0, or names "
                         "the first bad key with its line and exits 1");
  check->add_option("FILE", check_path, "Configuration file (TOML)")->required();

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
  if (!config_path.empty()) cl.config_path = config_path;
  if (!log_level.empty()) cl.log_level = log_level;
  return cl;
}

void applyOverrides(const CommandLine& cli, Config& config) {
  if (!cli.listen.empty()) config.listeners = cli.listen;
  if (cli.log_level) config.log_level = *cli.log_level;
}

}  // namespace sipwake::server
