// The whole life of the `sipwake` process: command line, configuration, logging, signals,
// server start and clean shutdown. main() only calls runMain().
#pragma once

namespace sipwake::server {

// Returns the process exit code: 0 after a clean shutdown (SIGINT/SIGTERM) or for --help,
// --version and a good check-config; 1 for a bad configuration or a start-up failure; 2 for a
// command-line usage error.
int runMain(int argc, char** argv);

}  // namespace sipwake::server
