#include "common/log.h"

#include <gtest/gtest.h>

#include <string>

namespace sipwake {
namespace {

std::string escaped(std::string_view text, bool json) {
  spdlog::memory_buf_t out;
  appendEscapedForLog(text, json, out);
  return std::string(out.data(), out.size());
}

TEST(LogEscapeTest, ControlBytesAreEscapedInText) {
  using namespace std::string_literals;
  EXPECT_EQ(escaped("INVITE\r\nFrom: \x1b[31mred\x07\0end"s, false),
            "INVITE\\r\\nFrom: \\x1b[31mred\\x07\\x00end");
  EXPECT_EQ(escaped("tab\there \x7f", false), "tab\\there \\x7f");
  EXPECT_EQ(escaped("quote \" and \\ stay", false), "quote \" and \\ stay");
}

TEST(LogEscapeTest, Utf8PassesInvalidBytesAreEscaped) {
  EXPECT_EQ(escaped("caf\xc3\xa9 \xe2\x82\xac", false), "caf\xc3\xa9 \xe2\x82\xac");
  EXPECT_EQ(escaped("bad \xc3 \xff \xc0\xaf", false), "bad \\xc3 \\xff \\xc0\\xaf");
  // Overlong / surrogate forms are not UTF-8.
  EXPECT_EQ(escaped("\xe0\x80\xaf\xed\xa0\x80", false), "\\xe0\\x80\\xaf\\xed\\xa0\\x80");
}

TEST(LogEscapeTest, JsonStaysJson) {
  EXPECT_EQ(escaped("say \"hi\" \\ \x01\n", true), "say \\\"hi\\\" \\\\ \\u0001\\n");
  EXPECT_EQ(escaped("\xff", true), "\\u00ff");
}

}  // namespace
}  // namespace sipwake
