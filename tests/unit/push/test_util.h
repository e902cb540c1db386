// Helpers for the push unit tests.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "push/push_params.h"

namespace sipwake::push::testing {

// Splits ";a=1;b;c=2" (the text after a Contact URI or inside it) into RawParams. The returned
// object owns the text the views point into.
struct ParamList {
  std::unique_ptr<std::string> text;
  std::vector<RawParam> params;
};

inline ParamList splitParams(std::string_view s) {
  ParamList out;
  out.text = std::make_unique<std::string>(s);
  std::string_view rest = *out.text;
  while (!rest.empty()) {
    if (rest.front() == ';') {
      rest.remove_prefix(1);
      continue;
    }
    std::size_t semi = rest.find(';');
    std::string_view item = rest.substr(0, semi);
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      out.params.push_back(RawParam{item, {}, false});
    } else {
      out.params.push_back(RawParam{item.substr(0, eq), item.substr(eq + 1), true});
    }
  }
  return out;
}

inline PushParamsResult parse(std::string_view s, const ServesFn& serves = {}) {
  ParamList l = splitParams(s);
  return parsePushParams(l.params, serves);
}

// 64 hex digits, distinct per seed character.
inline std::string hexToken(char c = 'a') { return std::string(64, c); }

}  // namespace sipwake::push::testing
