// LLaRA's generated-text matcher with Python's Unicode semantics (see matcher.h). ICU provides the
// case mapping and character properties, so the tables are Unicode's, not hand-written.
#include "sbtrec/eval/matcher.h"

#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>

#include "sbtrec/common/error.h"

namespace sbtrec::eval {
namespace {

// fromUTF8 substitutes U+FFFD for each maximal ill-formed subsequence, which is also what Python's
// "replace" error handler does.
icu::UnicodeString decode(const std::string& utf8) { return icu::UnicodeString::fromUTF8(icu::StringPiece(utf8)); }

std::string encode(const icu::UnicodeString& s) {
  std::string out;
  s.toUTF8String(out);
  return out;
}

icu::UnicodeString strip(const icu::UnicodeString& s) {
  int32_t begin = 0, end = s.length();
  while (begin < end && is_python_space((char32_t)s.char32At(begin))) begin = s.moveIndex32(begin, 1);
  while (end > begin) {
    const int32_t prev = s.moveIndex32(end, -1);
    if (!is_python_space((char32_t)s.char32At(prev))) break;
    end = prev;
  }
  return icu::UnicodeString(s, begin, end - begin);
}

// The root locale: Python applies no language-specific (Turkish, Lithuanian) rules either.
icu::UnicodeString lower(icu::UnicodeString s) { return s.toLower(icu::Locale::getRoot()); }

}  // namespace

bool is_python_space(char32_t c) {
  // CPython's definition of str.isspace (Tools/unicode/makeunicodedata.py), on ICU's tables.
  const auto dir = u_charDirection((UChar32)c);
  return u_charType((UChar32)c) == U_SPACE_SEPARATOR || dir == U_WHITE_SPACE_NEUTRAL || dir == U_BLOCK_SEPARATOR ||
         dir == U_SEGMENT_SEPARATOR;
}

std::string unicode_lower(const std::string& utf8) { return encode(lower(decode(utf8))); }

std::string unicode_strip(const std::string& utf8) { return encode(strip(decode(utf8))); }

std::string normalize_title(const std::string& title) { return encode(strip(lower(strip(decode(title))))); }

std::string normalize_generation(const std::string& output) {
  icu::UnicodeString s = strip(decode(output));
  const int32_t newline = s.indexOf((char16_t)u'\n');
  if (newline >= 0) s.truncate(newline);
  return encode(strip(lower(s)));
}

MatchResult match_generation(const std::string& output, const std::vector<std::string>& candidate_titles,
                             int target_index) {
  if (target_index < 0 || target_index >= (int)candidate_titles.size())
    throw DataError("match_generation: target index " + std::to_string(target_index) + " is outside the " +
                    std::to_string(candidate_titles.size()) + " candidates; pass the CandidateSet's target_index");
  // Both sides are valid UTF-8 after normalisation, so a byte substring is a code-point substring.
  const std::string text = normalize_generation(output);
  MatchResult r;
  for (int k = 0; k < (int)candidate_titles.size(); ++k) {
    if (text.find(normalize_title(candidate_titles[k])) == std::string::npos) continue;
    ++r.named;
    r.named_index = k;
    r.named_indices.push_back(k);
  }
  r.valid = r.named == 1;
  if (!r.valid) r.named_index = -1;
  r.hit = r.valid && r.named_index == target_index;
  return r;
}

}  // namespace sbtrec::eval
