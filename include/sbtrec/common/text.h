// Small string helpers shared by the stages that read text (chat formats, prompt templates).
#pragma once
#include <string>

namespace sbtrec {

// Python's str.strip() (and Jinja's strip()) on the ASCII whitespace prompts and template files contain.
inline std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\v\f";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace sbtrec
