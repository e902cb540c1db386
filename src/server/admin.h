// The admin listener's requests ([admin] listen, docs/operations.md): GET /metrics answers the
// Prometheus text exposition of every counter of Stats::global(); other paths are 404, other
// methods on /metrics 405.
#pragma once

#include "http2/message.h"

namespace sipwake::server {

// The answer to one admin request. Thread: any (reads Stats::global()).
http2::Response adminResponse(const http2::Request& request);

}  // namespace sipwake::server
