// Title normalisation (see titles.h).
#include "sbtrec/data/titles.h"

#include <cctype>
#include <regex>

namespace sbtrec::data {

std::string latin1_to_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (unsigned char c : s) {
    if (c < 0x80) {
      out.push_back((char)c);
    } else {
      out.push_back((char)(0xC0 | (c >> 6)));
      out.push_back((char)(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

std::string to_lower_ascii(std::string s) {
  for (auto& c : s) c = (char)std::tolower((unsigned char)c);
  return s;
}

std::string normalize_movielens_title(const std::string& raw) {
  static const std::regex year(R"(\s*\(\d{4}\)\s*$)");
  static const std::regex article(R"(^(.*), (The|A|An)(\s+\([^()]*\))?$)");
  std::string t = std::regex_replace(raw, year, "");
  while (!t.empty() && std::isspace((unsigned char)t.back())) t.pop_back();
  std::smatch m;
  if (std::regex_match(t, m, article)) t = m[2].str() + " " + m[1].str() + m[3].str();
  return t;
}

}  // namespace sbtrec::data
