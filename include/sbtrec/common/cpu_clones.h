// SBTREC_CPU_CLONES before a hot loop's function compiles it for AVX-512, AVX2 and baseline x86-64;
// the loader picks the best for the running CPU (GCC function multi-versioning). The library itself
// is built for baseline x86-64 so one binary runs everywhere. Elsewhere it expands to nothing.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SBTREC_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SBTREC_CPU_CLONES
#endif
