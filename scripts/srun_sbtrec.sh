#!/usr/bin/env bash
# Multi-machine data-parallel SBT-Rec under SLURM: one task per process (GPU), started by srun, e.g.
#   #SBATCH --nodes=2 --ntasks-per-node=8 --gpus-per-node=8
#   srun scripts/srun_sbtrec.sh --config configs/movielens/sbtrec.yaml --set llm.model=/data/Llama-2-7b-hf
# Translates SLURM's variables into the ones sbtrec-train (like torchrun) reads: RANK, WORLD_SIZE,
# LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR (the first host of the job) and MASTER_PORT (29500 unless
# set), then runs sbtrec-train with the arguments given. output_dir must be on a filesystem every node
# sees when the run is to be resumed (--resume reads state/ on every rank); rank 0 alone writes it.
set -euo pipefail
: "${SLURM_PROCID:?run this under srun (SLURM_PROCID is not set)}"
export RANK=$SLURM_PROCID
export WORLD_SIZE=${SLURM_NTASKS:?SLURM_NTASKS is not set}
export LOCAL_RANK=${SLURM_LOCALID:-0}
export LOCAL_WORLD_SIZE=${SLURM_NTASKS_PER_NODE:-${SLURM_TASKS_PER_NODE%%(*}}
if [ -z "${MASTER_ADDR:-}" ]; then
  MASTER_ADDR=$(scontrol show hostnames "${SLURM_JOB_NODELIST:?SLURM_JOB_NODELIST is not set}" | head -n 1)
  export MASTER_ADDR
fi
export MASTER_PORT=${MASTER_PORT:-29500}
# One rank per GPU: LOCAL_RANK picks cuda:LOCAL_RANK (llm.device: cuda); CPU ranks share the cores.
if [ -z "${OMP_NUM_THREADS:-}" ]; then
  export OMP_NUM_THREADS=$(( $(nproc) / (LOCAL_WORLD_SIZE > 0 ? LOCAL_WORLD_SIZE : 1) > 0 ? $(nproc) / (LOCAL_WORLD_SIZE > 0 ? LOCAL_WORLD_SIZE : 1) : 1 ))
fi
BIN=${SBTREC_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/release/bin}
exec "$BIN/sbtrec-train" "$@"
