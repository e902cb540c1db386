// Cuts a TCP/TLS byte stream into SIP messages by Content-Length (RFC 3261 §18.3), and spots
// RFC 5626 §4.4.1 keep-alives. No I/O. One framer per connection; not thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "sip/message.h"

namespace sipwake::sip {

class StreamFramer {
 public:
  explicit StreamFramer(const ParseLimits& limits) : limits_(limits) {}

  // Appends bytes read from the connection.
  void append(std::string_view data);

  enum class Next {
    kMessage,   // *out holds exactly one message (start line .. end of body)
    kNeedMore,  // no complete message buffered yet
    kPing,      // a double-CRLF keep-alive ping was consumed: answer with a single CRLF (pong)
    kError,     // unrecoverable framing error (*error says why): close the connection
  };
  // Extracts the next item. Single CRLFs between messages (and pongs) are skipped silently.
  // A header section longer than limits.max_message_bytes, or a missing/invalid Content-Length
  // on a stream, is kError. A message larger than limits.max_message_bytes is kError too.
  // Work is linear in the bytes appended: the header-end search never rescans.
  Next next(std::string* out, std::string* error);

  std::size_t buffered() const { return buf_.size() - pos_; }

 private:
  // Reads Content-Length from the header section [pos_, header_end); false with *error set if
  // it is missing, malformed, negative or given twice with different values.
  bool readContentLength(std::size_t header_end, std::size_t* length, std::string* error) const;

  ParseLimits limits_;
  std::string buf_;
  std::size_t pos_ = 0;      // start of the unconsumed bytes
  std::size_t scanned_ = 0;  // header-end search resumes here (no quadratic rescans)
  // Set once the current message's header section is complete, until the message is taken:
  // more body bytes arriving do not re-read the header section.
  bool have_header_ = false;
  std::size_t message_size_ = 0;  // header section + body, from pos_
  bool failed_ = false;           // after kError every call returns kError
  std::string error_;
};

}  // namespace sipwake::sip
