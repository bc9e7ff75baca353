// Line-oriented reading of data files with file:line error messages. Accepts LF and CRLF endings.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sbtrec::data {

class TextFile {
 public:
  // `hint` is appended to a missing-file error (e.g. where to download the dataset).
  TextFile(const std::string& path, const std::string& hint);
  // Next line without its line ending; false at end of file. Empty lines are returned too.
  bool next(std::string_view& line);
  int64_t line_number() const { return line_no_; }
  const std::string& path() const { return path_; }
  // Throws DataError "path:line: what".
  [[noreturn]] void fail(const std::string& what) const;
  // Splits on `sep`; fails unless exactly `expected` fields (or at least, when at_least is true).
  std::vector<std::string_view> fields(std::string_view line, char sep, size_t expected, bool at_least,
                                       const char* layout) const;
  // Parses a decimal integer field; fails naming `what`.
  int64_t to_int(std::string_view field, const char* what) const;
  double to_double(std::string_view field, const char* what) const;

 private:
  std::string path_, content_;
  size_t pos_ = 0;
  int64_t line_no_ = 0;
};

}  // namespace sbtrec::data
