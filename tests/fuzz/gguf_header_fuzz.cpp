// libFuzzer target: the GGUF header and metadata parser must turn any byte string into either a valid
// Header or a CheckpointError; never a crash, hang, leak or undefined behaviour (built with ASan and
// UBSan). When parsing succeeds, the invariants the loaders rely on are checked.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "sbtrec/common/error.h"
#include "sbtrec/common/gguf_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto h = sbtrec::gguf::parse_header(data, size, size, "fuzz");
    if (h.data_start % h.alignment != 0 || (!h.tensors.empty() && h.data_start > size)) std::abort();
    for (const auto& t : h.tensors) {
      const auto* tt = sbtrec::gguf::tensor_type_traits((uint32_t)t.type);
      if (!tt || t.ne.empty() || t.ne.size() != t.shape.size() || t.ne[0] % tt->block_elements != 0) std::abort();
      if ((uint64_t)t.numel() / tt->block_elements * tt->block_bytes != t.bytes) std::abort();
      if (h.data_start + t.offset + t.bytes > size) std::abort();  // the loaders would read past the file
      if (h.find_tensor(t.name) != &t) std::abort();
    }
    // Typed accessors on whatever keys came in: a value or a CheckpointError, nothing else.
    for (const auto& [key, v] : h.metadata) {
      try {
        (void)h.get_int(key);
      } catch (const sbtrec::CheckpointError&) {
      }
      try {
        (void)h.get_strings(key);
      } catch (const sbtrec::CheckpointError&) {
      }
      (void)v.describe();
    }
  } catch (const sbtrec::CheckpointError&) {
  }
  return 0;
}
