// The names of the registered recipes (the config key `recipe`'s choices), without the recipes' heavy
// headers (see recipes.h), so the config can check the key against them.
#pragma once
#include <string>
#include <vector>

namespace sbtrec::train {

std::vector<std::string> recipe_names();

}  // namespace sbtrec::train
