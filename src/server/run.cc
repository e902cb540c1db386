#include "server/run.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <optional>

#include "common/log.h"
#include "server/cli.h"
#include "server/config.h"
#include "server/server.h"

namespace sipwake::server {
namespace {

void print(std::FILE* f, const std::string& text) {
  std::fputs(text.c_str(), f);
  std::fflush(f);
}

int checkConfig(const std::string& path) {
  auto config = loadConfigFile(path);
  if (!config.isOk()) {
    print(stderr, config.status().message() + "\n");
    return 1;
  }
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

  Server server(std::move(config));
  if (Status s = server.start(); !s) {
    SW_LOG_ERROR("start-up failed: {}", s.message());
    return 1;
  }
  SW_LOG_INFO("ready");

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  SW_LOG_INFO("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
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
    case CommandLine::Action::kRun:
      return run(cli);
  }
  return 1;
}

}  // namespace sipwake::server
