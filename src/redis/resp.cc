#include "redis/resp.h"

#include <hiredis/hiredis.h>

namespace sipwake::redis {
namespace {

Reply convert(const redisReply& r) {
  Reply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = r.type == REDIS_REPLY_STRING   ? Reply::Type::kString
                 : r.type == REDIS_REPLY_STATUS ? Reply::Type::kStatus
                                                : Reply::Type::kError;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(convert(*r.element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

}  // namespace

void appendCommand(std::string& out, const std::vector<std::string>& args) {
  SIPWAKE_CHECK(!args.empty());
  std::vector<const char*> argv;
  std::vector<std::size_t> argvlen;
  argv.reserve(args.size());
  argvlen.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    argvlen.push_back(a.size());
  }
  char* cmd = nullptr;
  int len =
      redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), argvlen.data());
  SIPWAKE_CHECK(len >= 0 && cmd != nullptr);  // fails only on allocation failure
  out.append(cmd, static_cast<std::size_t>(len));
  redisFreeCommand(cmd);
}

ReplyParser::ReplyParser() : reader_(redisReaderCreate()) { SIPWAKE_CHECK(reader_ != nullptr); }
ReplyParser::~ReplyParser() { redisReaderFree(reader_); }

void ReplyParser::feed(const char* data, std::size_t len) { redisReaderFeed(reader_, data, len); }

Result<std::optional<Reply>> ReplyParser::next() {
  void* raw = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
    return Status(StatusCode::kInternal, std::string("RESP protocol error: ") + reader_->errstr);
  }
  if (raw == nullptr) return std::optional<Reply>();
  auto* r = static_cast<redisReply*>(raw);
  Reply out = convert(*r);
  freeReplyObject(r);
  return std::optional<Reply>(std::move(out));
}

}  // namespace sipwake::redis
