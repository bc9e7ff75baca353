// Element-type lookups (see dtype.h) over the table of dtype_table.h.
#include "sbtrec/common/dtype.h"

#include <sstream>

#include "sbtrec/common/dtype_table.h"
#include "sbtrec/common/error.h"

namespace sbtrec {
namespace {

struct Row {
  torch::ScalarType type;
  const char *safetensors, *name, *other_names;
};
#define SBTREC_DTYPE_ROW(st, code, name, others, bytes) {torch::ScalarType::st, code, name, others},
const Row kRows[] = {SBTREC_DTYPES(SBTREC_DTYPE_ROW)};
#undef SBTREC_DTYPE_ROW

const Row* find_type(torch::ScalarType t) {
  for (const auto& r : kRows)
    if (r.type == t) return &r;
  return nullptr;
}

}  // namespace

std::optional<torch::ScalarType> dtype_from_name(const std::string& name) {
  for (const auto& r : kRows) {
    if (name == r.name) return r.type;
    std::istringstream others(r.other_names);
    for (std::string o; others >> o;)
      if (name == o) return r.type;
  }
  return std::nullopt;
}

std::string dtype_name(torch::ScalarType t) {
  if (const Row* r = find_type(t)) return r->name;
  throw Error(std::string("no dtype name for tensors of type ") + c10::toString(t));
}

std::optional<torch::ScalarType> dtype_from_safetensors(const std::string& code) {
  for (const auto& r : kRows)
    if (code == r.safetensors) return r.type;
  return std::nullopt;
}

std::string safetensors_dtype(torch::ScalarType t) {
  if (const Row* r = find_type(t)) return r->safetensors;
  throw CheckpointError(std::string("safetensors: cannot store tensors of type ") + c10::toString(t));
}

}  // namespace sbtrec
