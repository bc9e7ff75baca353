// Data-file line reader (see text_file.h).
#include "sbtrec/data/text_file.h"

#include <charconv>
#include <cstdlib>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

namespace sbtrec::data {

TextFile::TextFile(const std::string& path, const std::string& hint) : path_(path) {
  try {
    content_ = read_file(path, hint);
  } catch (const IoError& e) {
    throw DataError(e.what());
  }
}

bool TextFile::next(std::string_view& line) {
  if (pos_ >= content_.size()) return false;
  size_t end = content_.find('\n', pos_);
  if (end == std::string::npos) end = content_.size();
  size_t stop = end;
  if (stop > pos_ && content_[stop - 1] == '\r') --stop;  // CRLF
  line = std::string_view(content_).substr(pos_, stop - pos_);
  pos_ = end + 1;
  ++line_no_;
  return true;
}

void TextFile::fail(const std::string& what) const {
  throw DataError(path_ + ":" + std::to_string(line_no_) + ": " + what);
}

std::vector<std::string_view> TextFile::fields(std::string_view line, char sep, size_t expected, bool at_least,
                                               const char* layout) const {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t p = line.find(sep, start);
    out.push_back(line.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  if (at_least ? out.size() < expected : out.size() != expected)
    fail("expected " + std::string(at_least ? "at least " : "") + std::to_string(expected) + " fields (" + layout +
         "), found " + std::to_string(out.size()));
  return out;
}

int64_t TextFile::to_int(std::string_view f, const char* what) const {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
  if (f.empty() || ec != std::errc() || p != f.data() + f.size())
    fail(std::string("expected an integer ") + what + ", found '" + std::string(f) + "'");
  return v;
}

double TextFile::to_double(std::string_view f, const char* what) const {
  std::string s(f);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) fail(std::string("expected a number ") + what + ", found '" + s + "'");
  return v;
}

}  // namespace sbtrec::data
