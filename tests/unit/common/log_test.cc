#include "common/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

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

// Every line the JSON log format writes is one JSON object whose "msg" decodes to the message,
// whatever bytes it holds; a byte that is not UTF-8 decodes as the code point of the same value.
// stderr (the log's sink) is redirected to a file for the test.
TEST(LogJsonTest, EveryLineParsesWhateverTheMessageHolds) {
  using namespace std::string_literals;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"say \"hi\" to \\server\\", "say \"hi\" to \\server\\"},
      {"INVITE sip:a@b SIP/2.0\r\nVia: x\n\nbody", "INVITE sip:a@b SIP/2.0\r\nVia: x\n\nbody"},
      {"ctl \x01 \x1f \x7f \x1b[31m end", "ctl \x01 \x1f \x7f \x1b[31m end"},
      {"bad \xc3 \xff, good caf\xc3\xa9", "bad \xc3\x83 \xc3\xbf, good caf\xc3\xa9"},
      {"nul\0inside"s, "nul\0inside"s},
      {"{\"msg\":\"forged\"}\n{\"level\":\"critical\"",
       "{\"msg\":\"forged\"}\n{\"level\":\"critical\""},
      {"", ""},
  };
  std::FILE* capture = std::tmpfile();
  ASSERT_NE(capture, nullptr);
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_GE(::dup2(::fileno(capture), STDERR_FILENO), 0);
  ASSERT_TRUE(configureLogging("info", "json"));
  for (const auto& [message, decoded] : cases) SW_LOG_WARN("{}", message);
  spdlog::default_logger()->flush();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);

  std::string text;
  std::rewind(capture);
  for (int c; (c = std::fgetc(capture)) != EOF;) text.push_back(static_cast<char>(c));
  std::fclose(capture);
  std::istringstream lines(text);
  std::size_t n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    ASSERT_LT(n, cases.size()) << "extra line: " << line;
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << "not a JSON object: " << line;
    EXPECT_EQ(j.value("level", ""), "warning") << line;
    ASSERT_TRUE(j.contains("msg") && j["msg"].is_string()) << line;
    EXPECT_EQ(j["msg"].get<std::string>(), cases[n].second) << line;
  }
  EXPECT_EQ(n, cases.size()) << text;
}

// A reload configures the logging again: the level changes, an unknown level changes nothing.
TEST(ConfigureLogging, CanBeCalledAgain) {
  ASSERT_TRUE(configureLogging("info", "text"));
  EXPECT_EQ(spdlog::get_level(), spdlog::level::info);
  ASSERT_TRUE(configureLogging("debug", "json"));
  EXPECT_EQ(spdlog::get_level(), spdlog::level::debug);
  EXPECT_FALSE(configureLogging("loud", "text"));
  EXPECT_EQ(spdlog::get_level(), spdlog::level::debug);
  ASSERT_TRUE(configureLogging("warn", "text"));
  EXPECT_EQ(spdlog::get_level(), spdlog::level::warn);
}

}  // namespace
}  // namespace sipwake
