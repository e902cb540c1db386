#include "http2/message.h"

namespace sipwake::http2 {
namespace {

std::string_view findHeader(const std::vector<Header>& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (h.name == name) return h.value;
  }
  return {};
}

}  // namespace

std::string_view Request::header(std::string_view name) const { return findHeader(headers, name); }

std::size_t Request::headerCount(std::string_view name) const {
  std::size_t n = 0;
  for (const auto& h : headers) n += h.name == name ? 1 : 0;
  return n;
}

std::string_view Response::header(std::string_view name) const { return findHeader(headers, name); }

}  // namespace sipwake::http2
