// The one table of tensor element types: torch::ScalarType enumerator, safetensors code, the name
// Hugging Face configs and PyTorch use (config.json's torch_dtype), other accepted names, bytes per
// element. Kept free of LibTorch so the safetensors header parser (and its fuzzer) reads sizes from it;
// common/dtype.h gives the lookups in torch::ScalarType terms.
#pragma once

// X(scalar_type, safetensors, name, other_names (space-separated), bytes)
#define SBTREC_DTYPES(X)                        \
  X(Double, "F64", "float64", "fp64 double", 8) \
  X(Float, "F32", "float32", "fp32 float", 4)   \
  X(Half, "F16", "float16", "fp16 half", 2)     \
  X(BFloat16, "BF16", "bfloat16", "bf16", 2)    \
  X(Long, "I64", "int64", "long", 8)            \
  X(Int, "I32", "int32", "int", 4)              \
  X(Short, "I16", "int16", "short", 2)          \
  X(Char, "I8", "int8", "", 1)                  \
  X(Byte, "U8", "uint8", "", 1)                 \
  X(Bool, "BOOL", "bool", "", 1)                \
  X(UInt16, "U16", "uint16", "", 2)             \
  X(UInt32, "U32", "uint32", "", 4)             \
  X(UInt64, "U64", "uint64", "", 8)
