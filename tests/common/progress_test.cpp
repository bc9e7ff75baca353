// The progress line's numbers: durations and rates as a person reads them.
#include "../test_util.h"
#include "sbtrec/common/progress.h"

using namespace sbtrec;

TEST(Progress, RatesKeepThreeFiguresAtSbtRecsSpeed) {
  // SBT-Rec on a 2-core CPU trains about one sample per second: an integer would print 0 or 1.
  EXPECT_EQ(format_rate(0.27), "0.27");
  EXPECT_EQ(format_rate(0.934), "0.93");
  EXPECT_EQ(format_rate(3.414), "3.41");
  EXPECT_EQ(format_rate(41.23), "41.2");
  EXPECT_EQ(format_rate(20013.4), "20013");
  EXPECT_EQ(format_rate(0), "0.00");
  EXPECT_EQ(format_rate(-1), "?");
  EXPECT_EQ(format_duration(75), "1m15s");
  EXPECT_EQ(format_duration(3725), "1h02m");
}
