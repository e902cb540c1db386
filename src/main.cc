// argv → server; nothing else.
#include "server/run.h"

int main(int argc, char** argv) { return sipwake::server::runMain(argc, argv); }
