#include "push/push_request.h"

namespace sipwake::push {

std::string_view pushActionName(PushAction a) {
  switch (a) {
    case PushAction::kOk:
      return "ok";
    case PushAction::kRemoveBinding:
      return "remove_binding";
    case PushAction::kRetry:
      return "retry";
    case PushAction::kRefreshToken:
      return "refresh_token";
    case PushAction::kFatalConfig:
      return "fatal_config";
    case PushAction::kDrop:
      return "drop";
  }
  return "?";
}

std::string_view PushRequest::header(std::string_view name) const {
  for (const HttpHeader& h : headers) {
    if (h.name == name) return h.value;
  }
  return {};
}

}  // namespace sipwake::push
