#include "common/status.h"

namespace sipwake {

std::string Status::toString() const {
  if (isOk()) return "OK";
  static constexpr const char* kNames[] = {"OK",          "InvalidArgument", "NotFound",
                                           "AlreadyExists", "OutOfRange",    "Unavailable",
                                           "TimedOut",    "FailedPrecondition", "PermissionDenied",
                                           "Internal"};
  return std::string(kNames[static_cast<int>(code_)]) + ": " + message_;
}

void checkFailed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "sipwake: invariant failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace sipwake
