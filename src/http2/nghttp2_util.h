// Internal to src/http2: small helpers over the nghttp2 C API shared by client and server.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>

namespace sipwake::http2::detail {

// A name/value pair pointing into `name` and `value`, which must outlive the submit call.
inline nghttp2_nv makeNv(const std::string& name, const std::string& value) {
  nghttp2_nv nv;
  nv.name = reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data()));
  nv.namelen = name.size();
  nv.value = reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data()));
  nv.valuelen = value.size();
  nv.flags = NGHTTP2_NV_FLAG_NONE;
  return nv;
}

}  // namespace sipwake::http2::detail
