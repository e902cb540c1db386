#include "server/admin.h"

#include <string>
#include <string_view>

#include "common/prometheus.h"
#include "common/stats.h"

namespace sipwake::server {
namespace {

http2::Response plain(int status, std::string body) {
  http2::Response r;
  r.status = status;
  r.headers.push_back({"content-type", "text/plain; charset=utf-8"});
  r.body = std::move(body);
  return r;
}

}  // namespace

http2::Response adminResponse(const http2::Request& request) {
  std::string_view path = request.path;
  path = path.substr(0, path.find('?'));
  if (path != "/metrics") return plain(404, "not found; the admin listener serves GET /metrics\n");
  if (request.method != "GET") {
    http2::Response r = plain(405, "method not allowed; /metrics answers GET\n");
    r.headers.push_back({"allow", "GET"});
    return r;
  }
  http2::Response r;
  r.status = 200;
  r.headers.push_back({"content-type", std::string(prometheus::kContentType)});
  r.body = prometheus::render(Stats::global().full());
  return r;
}

}  // namespace sipwake::server
