// A tiny GroupLens-format dataset whose LLaRA-protocol split is computed by hand in split_test.cpp.
#pragma once
#include <string>

#include "../test_util.h"

namespace sbtrec::test {

// 11 users; user 11 has only low ratings (not a user after the filter), so N = 10:
// order by first kept timestamp (ties by id): 3, 5, 2, 1, 4, 6, 7, 8 | 9 | 10 -> cut points 8 and 9.
inline std::string tiny_u_data() {
  return
      // user item rating ts -- rows deliberately out of order
      "10\t7\t4\t900\n"
      "3\t13\t5\t102\n"
      "9\t5\t4\t804\n"
      "1\t20\t2\t50\n"  // dropped (rating 2), so user 1 starts at 300
      "5\t16\t3\t100\n"
      "3\t11\t4\t100\n"
      "10\t6\t4\t900\n"  // same time as item 7: file order keeps 7 first
      "3\t12\t4\t101\n"
      "9\t1\t4\t800\n"
      "9\t2\t4\t801\n"
      "9\t3\t4\t802\n"
      "9\t4\t4\t803\n"
      "10\t8\t4\t901\n"
      "10\t9\t4\t902\n"
      "3\t14\t4\t103\n"
      "3\t15\t4\t104\n"
      "5\t17\t4\t110\n"
      "5\t18\t4\t120\n"
      "5\t19\t4\t130\n"
      "2\t1\t4\t200\n"
      "1\t1\t4\t300\n"
      "1\t2\t4\t301\n"
      "4\t1\t4\t400\n"
      "6\t1\t4\t500\n"
      "7\t1\t4\t600\n"
      "8\t1\t4\t700\n"
      "11\t3\t1\t10\n";
}

inline std::string tiny_u_item(int n = 20) {
  std::string out;
  for (int i = 1; i <= n; ++i)
    out += std::to_string(i) + "|Movie " + std::to_string(i) + ", The (199" + std::to_string(i % 10) +
           ")|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n";
  return out;
}

inline void write_tiny_grouplens(const std::string& dir) {
  write_text(dir + "/u.data", tiny_u_data());
  write_text(dir + "/u.item", tiny_u_item());
}

}  // namespace sbtrec::test
