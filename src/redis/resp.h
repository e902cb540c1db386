// RESP2 (the Redis protocol) with hiredis doing the byte work: redisFormatCommandArgv builds
// requests, a redisReader parses replies. No I/O here (Connection owns the sockets).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct redisReader;

namespace sipwake::redis {

// One reply, owned and typed (copied out of hiredis' redisReply once per reply).
struct Reply {
  enum class Type : unsigned char { kString, kStatus, kError, kInteger, kNil, kArray };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  long long integer = 0;
  std::vector<Reply> elements;  // kArray

  bool isError() const { return type == Type::kError; }
  bool isNil() const { return type == Type::kNil; }
  bool isArray() const { return type == Type::kArray; }
  // kString or kStatus equal to `s`.
  bool is(std::string_view s) const {
    return (type == Type::kString || type == Type::kStatus) && str == s;
  }
  static Reply error(std::string message) {
    Reply r;
    r.type = Type::kError;
    r.str = std::move(message);
    return r;
  }
};

// Appends the RESP encoding of one command (an array of bulk strings) to `out`.
// REQUIRES: !args.empty().
void appendCommand(std::string& out, const std::vector<std::string>& args);

// Incremental reply parser. Thread: one owner.
class ReplyParser {
 public:
  ReplyParser();
  ~ReplyParser();
  ReplyParser(const ReplyParser&) = delete;
  ReplyParser& operator=(const ReplyParser&) = delete;

  void feed(const char* data, std::size_t len);
  // The next complete reply, nullopt when more bytes are needed, or a protocol error (the stream
  // is then unusable).
  Result<std::optional<Reply>> next();

 private:
  redisReader* reader_;
};

}  // namespace sipwake::redis
