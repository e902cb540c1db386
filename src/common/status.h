// Error model: Status and Result<T>. No exceptions on the data path.
// Bad input from the network is an expected Status; a broken invariant is SIPWAKE_CHECK (aborts).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sipwake {

enum class StatusCode : unsigned char {
  kOk = 0,
  kInvalidArgument,  // malformed input (network bytes, config values)
  kNotFound,
  kAlreadyExists,
  kOutOfRange,  // a configured limit was exceeded
  kUnavailable,  // transient: I/O error, peer unreachable, retry may help
  kTimedOut,
  kFailedPrecondition,
  kPermissionDenied,
  kInternal,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool isOk() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return isOk(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string toString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status outOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status internalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Result<T>: a value or a non-ok Status.
// REQUIRES: value() only when isOk(); status() is ok() when a value is held.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).isOk()) {
      std::fputs("Result constructed from ok Status\n", stderr);
      std::abort();
    }
  }

  bool isOk() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return isOk(); }
  const T& value() const& { return std::get<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  Status status() const { return isOk() ? Status() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

[[noreturn]] void checkFailed(const char* expr, const char* file, int line);

}  // namespace sipwake

// A broken invariant ("cannot happen"): crash loudly.
#define SIPWAKE_CHECK(cond) \
  do { \
    if (!(cond)) ::sipwake::checkFailed(#cond, __FILE__, __LINE__); \
  } while (0)
