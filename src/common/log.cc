#include "common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <memory>

namespace sipwake {
namespace {

// Length of the valid UTF-8 sequence at s[i] (1-4), or 0 if the bytes there are not one.
std::size_t utf8SequenceLength(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
  }
  if (n == 3 && ((c == 0xe0 && b(i + 1) < 0xa0) || (c == 0xed && b(i + 1) >= 0xa0))) return 0;
  if (n == 4 && ((c == 0xf0 && b(i + 1) < 0x90) || (c == 0xf4 && b(i + 1) >= 0x90))) return 0;
  return n;
}

}  // namespace

void appendEscapedForLog(std::string_view text, bool json, spdlog::memory_buf_t& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      if (std::size_t n = utf8SequenceLength(text, i); n != 0) {
        out.append(text.data() + i, text.data() + i + n);
        i += n;
        continue;
      }
    }
    ++i;
    const char* escape = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : nullptr;
    if (escape != nullptr) {
      out.append(escape, escape + 2);
    } else if (c < 0x20 || c == 0x7f || c >= 0x80) {
      escape = json ? "\\u00" : "\\x";
      out.append(escape, escape + (json ? 4 : 2));
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else if (json && (c == '"' || c == '\\')) {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
}

namespace {

// %q: the message text with control bytes and invalid UTF-8 escaped (attackers' bytes must not
// reach a terminal or a log parser raw); in JSON also '"' and '\'.
class EscapedPayload final : public spdlog::custom_flag_formatter {
 public:
  explicit EscapedPayload(bool json) : json_(json) {}
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    appendEscapedForLog(std::string_view(msg.payload.data(), msg.payload.size()), json_, dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedPayload>(json_);
  }

 private:
  bool json_;
};

}  // namespace

bool configureLogging(std::string_view level, std::string_view format) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") return false;
  // Called again on a reload: the logger made the first time stays, its level and format change.
  auto logger = spdlog::get("sipwake");
  if (!logger) logger = spdlog::stderr_color_mt("sipwake");
  spdlog::set_default_logger(logger);
  spdlog::set_level(lvl);
  const bool json = format == "json";
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<EscapedPayload>('q', json);
  formatter->set_pattern(
      json ? R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","thread":%t,"msg":"%q"})"
           : "%Y-%m-%d %H:%M:%S.%e %^%l%$ [%t] %q");
  spdlog::set_formatter(std::move(formatter));
  return true;
}

}  // namespace sipwake
