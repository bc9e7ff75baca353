// Host allocator settings (see host_memory.h).
#include "sbtrec/common/host_memory.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sbtrec {

void retain_freed_host_memory() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest value glibc accepts; also stops its dynamic adjustment
  mallopt(M_TRIM_THRESHOLD, 1 << 30);   // return memory to the OS only when more than 1 GiB is free at the top
#endif
}

}  // namespace sbtrec
