// Item titles: MovieLens-style normalisation and encoding helpers.
#pragma once
#include <string>

namespace sbtrec::data {

// "Usual Suspects, The (1995)" -> "The Usual Suspects". Drops a trailing " (YYYY)", then moves a
// trailing ", The" / ", A" / ", An" to the front; when an alternative title in parentheses follows
// the article ("City of Lost Children, The (Cité des enfants perdus, La)") the article still moves.
std::string normalize_movielens_title(const std::string& raw);

// ISO-8859-1 bytes -> UTF-8.
std::string latin1_to_utf8(const std::string& s);

std::string to_lower_ascii(std::string s);

}  // namespace sbtrec::data
