#include "sip/stream_framer.h"

#include "sip/chars.h"
#include "sip/parse_internal.h"

namespace sipwake::sip {

void StreamFramer::append(std::string_view data) {
  // Drop consumed bytes once they are at least half the buffer: amortised O(1) per byte.
  if (pos_ > 0 && pos_ >= buf_.size() - pos_) {
    buf_.erase(0, pos_);
    scanned_ -= std::min(scanned_, pos_);
    pos_ = 0;
  }
  buf_.append(data);
}

bool StreamFramer::readContentLength(std::size_t header_end, std::size_t* length,
                                     std::string* error) const {
  const std::string_view headers(buf_.data() + pos_, header_end - pos_);
  bool found = false;
  std::size_t line = headers.find("\r\n");  // skip the start line
  while (line != std::string_view::npos && line + 2 < headers.size()) {
    const std::size_t b = line + 2;
    std::size_t e = headers.find("\r\n", b);
    if (e == std::string_view::npos) e = headers.size();
    // A field's value continues on lines that start with SP/HT.
    std::size_t field_end = e;
    while (field_end + 2 < headers.size() &&
           (headers[field_end + 2] == ' ' || headers[field_end + 2] == '\t')) {
      const std::size_t n = headers.find("\r\n", field_end + 2);
      field_end = n == std::string_view::npos ? headers.size() : n;
    }
    const std::string_view field = headers.substr(b, field_end - b);
    std::size_t colon = field.find(':');
    if (colon != std::string_view::npos) {
      std::string_view name = field.substr(0, colon);
      while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
      if (detail::iequals(name, "content-length") || detail::iequals(name, "l")) {
        std::size_t n = 0;
        bool negative = false;
        if (!detail::parseContentLengthValue(field.substr(colon + 1), &n, &negative)) {
          *error = negative ? "negative Content-Length" : "malformed Content-Length";
          return false;
        }
        if (found && n != *length) {
          *error = "conflicting Content-Length values";
          return false;
        }
        found = true;
        *length = n;
      }
    }
    line = field_end;
  }
  if (!found) *error = "missing Content-Length on a stream transport";
  return found;
}

StreamFramer::Next StreamFramer::next(std::string* out, std::string* error) {
  if (failed_) {
    *error = error_;
    return Next::kError;
  }
  auto fail = [&](std::string why) {
    failed_ = true;
    error_ = std::move(why);
    *error = error_;
    return Next::kError;
  };
  if (!have_header_) {
    // Between messages: CRLFCRLF is a keep-alive ping, a lone CRLF is skipped (RFC 5626 §4.4.1,
    // RFC 3261 §7.5).
    while (buf_.size() - pos_ >= 2 && buf_[pos_] == '\r' && buf_[pos_ + 1] == '\n') {
      if (buf_.size() - pos_ >= 4 && buf_[pos_ + 2] == '\r' && buf_[pos_ + 3] == '\n') {
        pos_ += 4;
        scanned_ = std::max(scanned_, pos_);
        return Next::kPing;
      }
      if (buf_.size() - pos_ < 4 && (buf_.size() - pos_ == 2 || buf_[pos_ + 2] == '\r')) {
        return Next::kNeedMore;  // could still become a ping
      }
      pos_ += 2;
    }
    scanned_ = std::max(scanned_, pos_);
    // Resume the search for the empty line 3 bytes back, in case CRLFCRLF straddles appends.
    const std::size_t from = std::max(pos_, scanned_ >= 3 ? scanned_ - 3 : 0);
    const std::size_t end = buf_.find("\r\n\r\n", from);
    if (end == std::string::npos) {
      scanned_ = buf_.size();
      if (buf_.size() - pos_ > limits_.max_message_bytes) {
        return fail("header section larger than " + std::to_string(limits_.max_message_bytes) +
                    " bytes");
      }
      return Next::kNeedMore;
    }
    const std::size_t header_end = end + 4;
    std::size_t length = 0;
    std::string why;
    if (!readContentLength(header_end, &length, &why)) return fail(std::move(why));
    message_size_ = header_end - pos_ + length;
    if (message_size_ > limits_.max_message_bytes) {
      return fail("message of " + std::to_string(message_size_) + " bytes exceeds the limit of " +
                  std::to_string(limits_.max_message_bytes));
    }
    have_header_ = true;
    scanned_ = header_end;
  }
  if (buf_.size() - pos_ < message_size_) return Next::kNeedMore;
  out->assign(buf_, pos_, message_size_);
  pos_ += message_size_;
  scanned_ = pos_;
  have_header_ = false;
  message_size_ = 0;
  return Next::kMessage;
}

}  // namespace sipwake::sip
