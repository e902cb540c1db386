#include <gtest/gtest.h>

#include "sip/stream_framer.h"
#include "test_util.h"

namespace sipwake::sip {
namespace {

using Next = StreamFramer::Next;

struct Drained {
  std::vector<std::string> messages;
  int pings = 0;
  std::string error;
};

// Calls next() until it needs more input or fails.
void drain(StreamFramer& f, Drained& d) {
  std::string out;
  std::string error;
  while (true) {
    const Next n = f.next(&out, &error);
    if (n == Next::kMessage) {
      d.messages.push_back(out);
    } else if (n == Next::kPing) {
      ++d.pings;
    } else if (n == Next::kError) {
      d.error = error;
      return;
    } else {
      return;
    }
  }
}

std::string withBody(std::string_view body, std::string_view length_header = "Content-Length") {
  return testing::crlf(
      {"MESSAGE sip:bob@example.com SIP/2.0", "Via: SIP/2.0/TCP h;branch=z9hG4bK1",
       "From: <sip:a@b>;tag=1", "To: <sip:bob@example.com>", "Call-ID: c", "CSeq: 1 MESSAGE",
       std::string(length_header) + ": " + std::to_string(body.size())},
      body);
}

TEST(StreamFramerTest, SeveralMessagesInOneAppend) {
  const std::string a = testing::typicalRegister();
  const std::string b = testing::typicalInvite();
  const std::string c = withBody("hello\r\n\r\nworld", "l");  // compact form, CRLFCRLF in body
  StreamFramer f{ParseLimits{}};
  f.append(a + b + c);
  Drained d;
  drain(f, d);
  ASSERT_EQ(d.messages.size(), 3u) << d.error;
  EXPECT_EQ(d.messages[0], a);
  EXPECT_EQ(d.messages[1], b);
  EXPECT_EQ(d.messages[2], c);
  EXPECT_EQ(f.buffered(), 0u);
  EXPECT_TRUE(d.error.empty());
  EXPECT_EQ(parseMessage(d.messages[1], ParseLimits{}).kind, ParseOutcome::Kind::kOk);
}

TEST(StreamFramerTest, ByteByByteFeeding) {
  const std::string stream = "\r\n\r\n" + testing::typicalInvite() + "\r\n" + withBody("x") +
                             "\r\n\r\n" + testing::typicalRegister();
  StreamFramer f{ParseLimits{}};
  Drained d;
  for (char ch : stream) {
    f.append(std::string_view(&ch, 1));
    drain(f, d);
  }
  ASSERT_TRUE(d.error.empty()) << d.error;
  ASSERT_EQ(d.messages.size(), 3u);
  EXPECT_EQ(d.messages[0], testing::typicalInvite());
  EXPECT_EQ(d.messages[1], withBody("x"));
  EXPECT_EQ(d.messages[2], testing::typicalRegister());
  EXPECT_EQ(d.pings, 2) << "a ping before the first message and one between messages";
}

TEST(StreamFramerTest, EverySplitPointOfTwoMessages) {
  const std::string stream = withBody("0123456789") + testing::typicalRegister();
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    StreamFramer f{ParseLimits{}};
    Drained d;
    f.append(std::string_view(stream).substr(0, cut));
    drain(f, d);
    f.append(std::string_view(stream).substr(cut));
    drain(f, d);
    ASSERT_EQ(d.messages.size(), 2u) << "cut at " << cut;
    EXPECT_EQ(d.messages[0] + d.messages[1], stream);
  }
}

TEST(StreamFramerTest, PingsPongsAndStrayCrlf) {
  StreamFramer f{ParseLimits{}};
  std::string out, error;
  f.append("\r\n");
  EXPECT_EQ(f.next(&out, &error), Next::kNeedMore) << "may still become a ping";
  f.append("\r\n");
  EXPECT_EQ(f.next(&out, &error), Next::kPing);
  EXPECT_EQ(f.next(&out, &error), Next::kNeedMore);
  f.append("\r\n");  // a pong from the peer
  f.append(testing::typicalRegister());
  EXPECT_EQ(f.next(&out, &error), Next::kMessage);
  EXPECT_EQ(out, testing::typicalRegister());
  f.append("\r\n\r\n\r\n\r\n");
  EXPECT_EQ(f.next(&out, &error), Next::kPing);
  EXPECT_EQ(f.next(&out, &error), Next::kPing);
  EXPECT_EQ(f.next(&out, &error), Next::kNeedMore);
}

TEST(StreamFramerTest, FramingErrorsCloseTheConnection) {
  struct Case {
    std::string bytes;
    std::string error;
  };
  const std::vector<Case> cases = {
      {testing::crlf({"OPTIONS sip:a@b SIP/2.0", "Via: SIP/2.0/TCP h;branch=z9hG4bK1"}),
       "missing Content-Length on a stream transport"},
      {testing::crlf({"OPTIONS sip:a@b SIP/2.0", "Content-Length: -999"}),
       "negative Content-Length"},
      {testing::crlf({"OPTIONS sip:a@b SIP/2.0", "Content-Length: 12x"}),
       "malformed Content-Length"},
      {testing::crlf({"OPTIONS sip:a@b SIP/2.0", "Content-Length: 13", "l: 5"}),
       "conflicting Content-Length values"},
  };
  for (const Case& c : cases) {
    StreamFramer f{ParseLimits{}};
    std::string out, error;
    f.append(c.bytes);
    EXPECT_EQ(f.next(&out, &error), Next::kError) << c.bytes;
    EXPECT_EQ(error, c.error);
    f.append(testing::typicalRegister());
    EXPECT_EQ(f.next(&out, &error), Next::kError) << "the error is final";
  }
  // Equal duplicates and a folded value are fine.
  StreamFramer ok{ParseLimits{}};
  std::string out, error;
  ok.append(testing::crlf({"OPTIONS sip:a@b SIP/2.0", "Content-Length:\r\n  2", "l: 2"}, "ab"));
  EXPECT_EQ(ok.next(&out, &error), Next::kMessage) << error;
}

TEST(StreamFramerTest, LimitsAreEnforced) {
  ParseLimits limits;
  limits.max_message_bytes = 1000;
  {
    StreamFramer f{limits};
    std::string out, error;
    f.append("OPTIONS sip:a@b SIP/2.0\r\nX-Pad: " + std::string(1200, 'a'));
    EXPECT_EQ(f.next(&out, &error), Next::kError);
    EXPECT_EQ(error, "header section larger than 1000 bytes");
  }
  {
    StreamFramer f{limits};
    std::string out, error;
    f.append(withBody(std::string(2000, 'b')).substr(0, 300));  // the header section only
    EXPECT_EQ(f.next(&out, &error), Next::kError);
    EXPECT_NE(error.find("exceeds the limit of 1000"), std::string::npos) << error;
  }
  {
    // A huge header section fed byte by byte: rejected as soon as it passes the limit, and the
    // search for the empty line does not start over on every append.
    StreamFramer f{limits};
    std::string out, error;
    const std::string head = "OPTIONS sip:a@b SIP/2.0\r\nX-Pad: ";
    f.append(head);
    Next n = Next::kNeedMore;
    std::size_t fed = head.size();
    while (n == Next::kNeedMore && fed < 5000) {
      f.append("a");
      ++fed;
      n = f.next(&out, &error);
    }
    EXPECT_EQ(n, Next::kError);
    EXPECT_EQ(fed, 1001u);
  }
}

TEST(StreamFramerTest, LargeBodyInSmallChunksKeepsBufferBounded) {
  const std::string body(60000, 'z');
  const std::string msg = withBody(body);
  StreamFramer f{ParseLimits{}};
  Drained d;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < msg.size(); i += 7) {
      f.append(std::string_view(msg).substr(i, 7));
      drain(f, d);
      ASSERT_LE(f.buffered(), msg.size());
    }
  }
  ASSERT_EQ(d.messages.size(), 3u) << d.error;
  EXPECT_EQ(d.messages[2], msg);
}

}  // namespace
}  // namespace sipwake::sip
