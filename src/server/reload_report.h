// What a reload did (Server::reload, SIGHUP, POST /api/reload, `sipwake reload`).
#pragma once

#include <string>
#include <vector>

namespace sipwake::server {

// The parts re-read and applied ("push", "tls", "log_level", "limits", "users") and the keys that
// changed but only take effect at a restart ("[[listen]] #1 port", "[store] path", ...), which
// keep their old values meanwhile.
struct ReloadReport {
  std::vector<std::string> reloaded;
  std::vector<std::string> restart_needed;
};

}  // namespace sipwake::server
