#include "common/status.h"

#include <gtest/gtest.h>

namespace sipwake {
namespace {

TEST(StatusTest, OkAndError) {
  EXPECT_TRUE(Status::ok().isOk());
  Status s = invalidArgument("bad CSeq");
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.toString(), "InvalidArgument: bad CSeq");
}

TEST(ResultTest, ValueOrStatus) {
  Result<int> r = 5;
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, 5);
  Result<int> e = notFound("no such user");
  EXPECT_FALSE(e.isOk());
  EXPECT_EQ(e.status().message(), "no such user");
}

}  // namespace
}  // namespace sipwake
