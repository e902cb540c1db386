// `sipwake status|timeline|push test|binding list|binding drop|reload`: finds the admin
// listener and its token (command line, else the configuration's [admin]), asks the running
// server (admin_client.h) and prints the answer. Exit status: 0 done, 1 the server refused or
// failed the request (its error printed), 2 the server could not be asked (not running, token
// refused, no admin listener configured).
#pragma once

#include "server/cli.h"

namespace sipwake::server {

int adminCommand(const CommandLine& cli);

}  // namespace sipwake::server
