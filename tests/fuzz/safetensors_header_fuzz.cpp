// libFuzzer target: the safetensors header parser must turn any byte string into either a valid
// Header or a CheckpointError; never a crash, hang, leak or undefined behaviour (built with ASan and
// UBSan). When parsing succeeds, the invariants the loaders rely on are checked.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "sbtrec/common/error.h"
#include "sbtrec/common/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto h = sbtrec::safetensors::parse_header(data, size, size, "fuzz");
    for (const auto& [name, info] : h.tensors) {
      uint64_t numel = 1;
      for (int64_t d : info.shape) numel *= (uint64_t)d;
      const size_t elem = sbtrec::safetensors::dtype_size(info.dtype);
      if (elem == 0 || info.begin > info.end || info.end - info.begin != numel * elem ||
          h.data_start + info.end > size)
        std::abort();  // the parser accepted a header the loaders would misread
    }
  } catch (const sbtrec::CheckpointError&) {
  }
  return 0;
}
