#include "server/admin_command.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "server/admin_client.h"
#include "server/config.h"

namespace sipwake::server {
namespace {

// Where a packaged sipwake keeps its configuration (packaging/): used when --config is absent.
constexpr const char* kInstalledConfig = "/etc/sipwake/sipwake.toml";

int fail(int code, const std::string& message) {
  std::fputs(("sipwake: " + message + "\n").c_str(), stderr);
  return code;
}

Result<std::string> readToken(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return unavailable(
        fmt::format("cannot read the admin token file {}: {}", path, std::strerror(errno)));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = ss.str();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) return unavailable("the admin token file " + path + " is empty");
  return token;
}

struct Request {
  const char* method;
  std::string path;
  Result<std::string> (*render)(std::string_view);
};

Request requestFor(const CommandLine& cli) {
  using C = CommandLine::AdminCommand;
  const std::string aor = queryEscape(cli.admin_aor);
  switch (cli.admin_command) {
    case C::kStatus:
      return {"GET", "/api/status", renderStatus};
    case C::kTimeline:
      return {"GET",
              cli.admin_call_id.empty()
                  ? fmt::format("/api/timelines?aor={}&limit={}", aor, cli.admin_limit)
                  : fmt::format("/api/timelines?call_id={}&limit={}",
                                queryEscape(cli.admin_call_id), cli.admin_limit),
              renderTimelines};
    case C::kPushTest:
      return {"POST",
              fmt::format("/api/push-test?aor={}{}", aor, cli.admin_voip ? "&kind=voip" : ""),
              renderPushTest};
    case C::kBindingList:
      return {"GET", "/api/bindings?aor=" + aor, renderBindings};
    case C::kBindingDrop: {
      std::string path = "/api/bindings?aor=" + aor;
      if (!cli.admin_device.empty()) path += "&device_key=" + queryEscape(cli.admin_device);
      if (!cli.admin_contact.empty()) path += "&contact=" + queryEscape(cli.admin_contact);
      return {"DELETE", path, renderDropped};
    }
    case C::kReload:
      return {"POST", "/api/reload", renderReload};
  }
  return {"GET", "/api/status", renderStatus};
}

}  // namespace

int adminCommand(const CommandLine& cli) {
  std::optional<Config> config;
  std::string config_name;
  if (cli.config_path) {
    config_name = *cli.config_path;
  } else if (cli.admin_url.empty() || cli.admin_token_file.empty()) {
    if (std::FILE* f = std::fopen(kInstalledConfig, "r")) {
      std::fclose(f);
      config_name = kInstalledConfig;
    }
  }
  if (!config_name.empty()) {
    Result<Config> loaded = loadConfigFile(config_name);
    if (!loaded.isOk()) {
      if (cli.admin_command == CommandLine::AdminCommand::kReload) {
        // The file the server would re-read is bad: that is the answer, found without asking.
        return fail(1, loaded.status().message() +
                           "\nsipwake: not reloaded: the running server keeps its configuration");
      }
      return fail(2, loaded.status().message());
    }
    config = std::move(*loaded);
  }

  AdminEndpoint endpoint;
  if (!cli.admin_url.empty()) {
    Result<AdminEndpoint> parsed = parseAdminUrl(cli.admin_url);
    if (!parsed.isOk()) return fail(2, parsed.status().message());
    endpoint = *parsed;
  } else if (config && config->admin.enabled) {
    endpoint.host = config->admin.address;
    endpoint.port = config->admin.port;
    endpoint.tls = !config->admin.tls_certificate.empty();
  } else {
    return fail(2, config ? fmt::format("{} has no [admin] listen: set it (and restart sipwake) "
                                        "or give --admin URL",
                                        config_name)
                          : "no admin listener known: give --config FILE (with [admin] listen) "
                            "or --admin URL");
  }

  AdminClientOptions options;
  if (!cli.admin_token_file.empty()) {
    Result<std::string> token = readToken(cli.admin_token_file);
    if (!token.isOk()) return fail(2, token.status().message());
    options.token = std::move(*token);
  } else if (config && !config->admin.token.empty()) {
    options.token = config->admin.token;  // loadConfigFile read [admin] token_file
  } else {
    return fail(2,
                "no admin token: set [admin] token_file in the configuration or give "
                "--token-file FILE");
  }
  options.ca_file = cli.admin_ca_file;
  if (options.ca_file.empty() && config) options.ca_file = config->admin.tls_certificate;

  Request req = requestFor(cli);
  Result<http2::Response> answer = adminRequest(endpoint, req.method, req.path, options);
  if (!answer.isOk()) return fail(2, answer.status().message());
  if (answer->status == 401) return fail(2, describeAdminError(*answer));
  if (answer->status < 200 || answer->status > 299) return fail(1, describeAdminError(*answer));
  if (cli.admin_json) {
    std::string body = answer->body;
    if (body.empty() || body.back() != '\n') body += '\n';
    std::fputs(body.c_str(), stdout);
    return 0;
  }
  Result<std::string> shown = req.render(answer->body);
  if (!shown.isOk()) return fail(1, shown.status().message());
  std::fputs(shown->c_str(), stdout);
  return 0;
}

}  // namespace sipwake::server
