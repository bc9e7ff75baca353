// Which candidate a generated answer names, by LLaRA's rule (GUIDE section 2): the output is stripped
// and cut at its first newline; output and titles are lower-cased and stripped as Python's
// str.lower() / str.strip() do; a candidate is named when its title is a substring of the output.
// Written once here for every trainer and program that scores generated text.
#pragma once
#include <string>
#include <vector>

namespace sbtrec::eval {

// Invalid UTF-8 (a generation cut inside a multi-byte character, stray bytes) never throws: each
// ill-formed sequence becomes U+FFFD, as Python's bytes.decode("utf-8", "replace") does, so a broken
// output simply names nothing it does not contain.

// Python's str.lower() on the UTF-8 text: full Unicode case mapping without language rules
// ("İ" -> "i̇", "Ǆ" -> "ǆ"), final sigma by context ("ΟΔΟΣ ΣΑ" -> "οδος σα"); "ß" stays "ß".
std::string unicode_lower(const std::string& utf8);

// Python's str.strip(): removes leading and trailing code points for which str.isspace() is true
// (category Zs or bidirectional class WS, B, S: ASCII blanks, U+001C-001F, U+0085, NBSP, U+3000, ...).
std::string unicode_strip(const std::string& utf8);
bool is_python_space(char32_t c);

// The comparable forms: a title -> strip, lower, strip; a generated output -> strip, first line
// (up to the first "\n"), lower, strip (LLaRA's order of operations).
std::string normalize_title(const std::string& title);
std::string normalize_generation(const std::string& output);

struct MatchResult {
  int named = 0;         // candidates whose normalised title occurs in the normalised output
  bool valid = false;    // exactly one named (ValidRatio counts these)
  bool hit = false;      // valid and the named one is the target (HR@1 counts these)
  int named_index = -1;  // the single named candidate when valid, else -1
  std::vector<int> named_indices;  // every named candidate, in candidate order
};

// candidate_titles in candidate order; target_index into them. Two candidates with the same title
// are both named (the case is invalid, as in LLaRA); an empty title is a substring of every output,
// so it is always named. Throws DataError when target_index is out of range.
MatchResult match_generation(const std::string& output, const std::vector<std::string>& candidate_titles,
                             int target_index);

}  // namespace sbtrec::eval
