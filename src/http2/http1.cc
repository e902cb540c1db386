#include "http2/http1.h"

#include <algorithm>
#include <cctype>

namespace sipwake::http2::http1 {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool isTchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Whether the comma-separated list `value` contains `token` (case-insensitive).
bool listHas(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    std::size_t comma = value.find(',');
    if (lower(trimOws(value.substr(0, comma))) == token) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 410:
      return "Gone";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

void appendHeaders(std::string& out, const std::vector<Header>& headers) {
  for (const auto& h : headers) {
    if (h.name == "content-length" || h.name == "host" || h.name == "connection" ||
        h.name == "transfer-encoding") {
      continue;  // framing is ours
    }
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
}

}  // namespace

std::string serializeRequest(const Request& r, std::string_view authority) {
  std::string out;
  out.reserve(256 + r.body.size());
  out += r.method;
  out += ' ';
  out += r.path.empty() ? "/" : r.path;
  out += " HTTP/1.1\r\nhost: ";
  out += authority;
  out += "\r\n";
  appendHeaders(out, r.headers);
  out += "content-length: " + std::to_string(r.body.size()) + "\r\n\r\n";
  out += r.body;
  return out;
}

std::string serializeResponse(const Response& r, bool keep_alive) {
  std::string out;
  out.reserve(256 + r.body.size());
  out +=
      "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reasonPhrase(r.status)) + "\r\n";
  appendHeaders(out, r.headers);
  out += "content-length: " + std::to_string(r.body.size()) + "\r\n";
  if (!keep_alive) out += "connection: close\r\n";
  out += "\r\n";
  out += r.body;
  return out;
}

Parser::Parser(Kind kind, std::size_t max_body) : kind_(kind), max_body_(max_body) {}

Parser::State Parser::fail(std::string why) {
  state_ = State::kError;
  error_ = std::move(why);
  return state_;
}

void Parser::reset() {
  state_ = State::kIncomplete;
  error_.clear();
  head_done_ = false;
  body_ = Body::kNone;
  remaining_ = 0;
  chunk_ = Chunk::kSize;
  keep_alive_ = true;
  headers_.clear();
  request_ = Request{};
  response_ = Response{};
}

Parser::State Parser::feed(std::string_view data) {
  if (state_ != State::kIncomplete) return state_;
  buf_.append(data);
  return parse();
}

Parser::State Parser::next() {
  if (state_ == State::kError) return state_;
  reset();
  return parse();
}

Parser::State Parser::finish() {
  if (state_ != State::kIncomplete) return state_;
  if (head_done_ && body_ == Body::kUntilClose) {
    response_.body += buf_;
    buf_.clear();
    keep_alive_ = false;
    state_ = State::kComplete;
    return state_;
  }
  if (idle()) return state_;
  return fail("connection closed in the middle of a message");
}

bool Parser::parseStartLine(std::string_view line) {
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return false;
  if (kind_ == Kind::kRequest) {
    auto sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return false;
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (method.empty() || !std::all_of(method.begin(), method.end(), isTchar)) return false;
    if (target.empty() || target.find(' ') != std::string_view::npos) return false;
    if (version == "HTTP/1.0") {
      keep_alive_ = false;
    } else if (version != "HTTP/1.1") {
      return false;
    }
    request_.method = std::string(method);
    request_.path = std::string(target);
    return true;
  }
  std::string_view version = line.substr(0, sp1);
  std::string_view code = line.substr(sp1 + 1, 3);
  if (version == "HTTP/1.0") {
    keep_alive_ = false;
  } else if (version != "HTTP/1.1") {
    return false;
  }
  if (code.size() != 3 ||
      !std::all_of(code.begin(), code.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return false;
  }
  if (line.size() > sp1 + 4 && line[sp1 + 4] != ' ') return false;
  response_.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  return response_.status >= 100;
}

bool Parser::parseHead(std::string_view head) {
  std::size_t eol = head.find("\r\n");
  if (!parseStartLine(head.substr(0, eol))) return fail("bad start line"), false;
  head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
  std::string_view content_length, transfer_encoding;
  bool conn_close = false, conn_keep_alive = false;
  while (!head.empty()) {
    eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
    if (line.empty()) continue;
    if (line.front() == ' ' || line.front() == '\t') return fail("obsolete line folding"), false;
    std::size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return fail("bad header line"), false;
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), isTchar)) return fail("bad header name"), false;
    std::string_view value = trimOws(line.substr(colon + 1));
    if (value.find('\r') != std::string_view::npos || value.find('\0') != std::string_view::npos)
      return fail("bad header value"), false;
    std::string lname = lower(name);
    if (lname == "content-length") {
      if (!content_length.empty() && content_length != value)
        return fail("conflicting content-length"), false;
      content_length = value;
    } else if (lname == "transfer-encoding") {
      if (!transfer_encoding.empty()) return fail("repeated transfer-encoding"), false;
      transfer_encoding = value;
    } else if (lname == "connection") {
      conn_close = conn_close || listHas(value, "close");
      conn_keep_alive = conn_keep_alive || listHas(value, "keep-alive");
    }
    headers_.push_back(Header{std::move(lname), std::string(value)});
  }
  if (conn_close) keep_alive_ = false;
  if (conn_keep_alive && !conn_close) keep_alive_ = true;

  const bool no_body_status =
      kind_ == Kind::kResponse &&
      (response_.status < 200 || response_.status == 204 || response_.status == 304);
  if (!transfer_encoding.empty()) {
    if (lower(transfer_encoding) != "chunked") return fail("unsupported transfer-encoding"), false;
    if (!content_length.empty()) return fail("both content-length and chunked"), false;
    body_ = no_body_status ? Body::kNone : Body::kChunked;
  } else if (!content_length.empty()) {
    std::size_t n = 0;
    if (content_length.size() > 12 ||
        !std::all_of(content_length.begin(), content_length.end(),
                     [](unsigned char c) { return std::isdigit(c); })) {
      return fail("bad content-length"), false;
    }
    for (char c : content_length) n = n * 10 + static_cast<std::size_t>(c - '0');
    if (n > max_body_) return fail("body too large"), false;
    body_ = no_body_status || n == 0 ? Body::kNone : Body::kLength;
    remaining_ = n;
  } else if (kind_ == Kind::kResponse && !no_body_status) {
    body_ = Body::kUntilClose;
    keep_alive_ = false;
  } else {
    body_ = Body::kNone;
  }
  return true;
}

bool Parser::takeBody(std::string& body) {
  std::size_t take = std::min(remaining_, buf_.size());
  body.append(buf_, 0, take);
  buf_.erase(0, take);
  remaining_ -= take;
  return remaining_ == 0;
}

Parser::State Parser::parseChunked() {
  std::string& body = kind_ == Kind::kRequest ? request_.body : response_.body;
  for (;;) {
    switch (chunk_) {
      case Chunk::kSize: {
        std::size_t eol = buf_.find("\r\n");
        if (eol == std::string::npos) {
          if (buf_.size() > 1024) return fail("chunk size line too long");
          return state_;
        }
        std::string_view line(buf_.data(), eol);
        line = line.substr(0, line.find(';'));  // chunk extensions are ignored
        line = trimOws(line);
        if (line.empty() || line.size() > 8) return fail("bad chunk size");
        std::size_t n = 0;
        for (char c : line) {
          if (!std::isxdigit(static_cast<unsigned char>(c))) return fail("bad chunk size");
          n = n * 16 + static_cast<std::size_t>(std::isdigit(static_cast<unsigned char>(c))
                                                    ? c - '0'
                                                    : std::tolower(c) - 'a' + 10);
        }
        buf_.erase(0, eol + 2);
        if (n == 0) {
          chunk_ = Chunk::kTrailer;
        } else {
          if (body.size() + n > max_body_) return fail("body too large");
          remaining_ = n;
          chunk_ = Chunk::kData;
        }
        break;
      }
      case Chunk::kData:
        if (!takeBody(body)) return state_;
        chunk_ = Chunk::kDataEnd;
        break;
      case Chunk::kDataEnd:
        if (buf_.size() < 2) return state_;
        if (buf_.compare(0, 2, "\r\n") != 0) return fail("chunk not followed by CRLF");
        buf_.erase(0, 2);
        chunk_ = Chunk::kSize;
        break;
      case Chunk::kTrailer: {
        std::size_t eol = buf_.find("\r\n");
        if (eol == std::string::npos) {
          if (buf_.size() > kMaxHead) return fail("trailer too long");
          return state_;
        }
        buf_.erase(0, eol + 2);
        if (eol == 0) {
          state_ = State::kComplete;
          return state_;
        }
        break;
      }
    }
  }
}

Parser::State Parser::parse() {
  while (state_ == State::kIncomplete) {
    if (!head_done_) {
      // Tolerate empty lines before a message (RFC 9112 section 2.2).
      while (buf_.size() >= 2 && buf_.compare(0, 2, "\r\n") == 0) buf_.erase(0, 2);
      std::size_t end = buf_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (buf_.size() > kMaxHead) return fail("message head too large");
        return state_;
      }
      if (end + 4 > kMaxHead) return fail("message head too large");
      std::string head = buf_.substr(0, end + 2);
      buf_.erase(0, end + 4);
      if (!parseHead(head)) return state_;
      head_done_ = true;
      if (kind_ == Kind::kResponse && response_.status < 200 && response_.status != 101) {
        reset();  // interim response (100 Continue...): wait for the final one
        continue;
      }
      if (kind_ == Kind::kRequest) {
        request_.headers = std::move(headers_);
      } else {
        response_.headers = std::move(headers_);
      }
      headers_.clear();
    }
    switch (body_) {
      case Body::kNone:
        state_ = State::kComplete;
        break;
      case Body::kLength:
        if (!takeBody(kind_ == Kind::kRequest ? request_.body : response_.body)) return state_;
        state_ = State::kComplete;
        break;
      case Body::kChunked:
        return parseChunked();
      case Body::kUntilClose:
        if (response_.body.size() + buf_.size() > max_body_) return fail("body too large");
        response_.body += buf_;
        buf_.clear();
        return state_;
    }
  }
  return state_;
}

}  // namespace sipwake::http2::http1
