#!/usr/bin/env bash
# The GPU check of the Candle Llama, in one script with two halves (the device tool runs
# commands on the GPU machine; nothing here can reach it by itself):
#
#   scripts/gpu-check.sh build             # here: CUDA build of llama_bench (../shared/cuda/build.sh,
#                                          # about 12 min from a fresh cache), stripped into .gpu/
#   scripts/gpu-check.sh run               # on the GPU machine: everything below, on CUDA
#   scripts/gpu-check.sh run --device cpu  # the same end to end on this machine's CPU, small sizes
#
# `run` does, with the one binary llama_bench (subcommands; the device carries at most 64 MiB):
#   (a) grad-check: gradients of the `micro` preset in f32 on the device against f64 on the
#       CPU at the same point, max relative difference;
#   (b) throughput: `base` (~110M) in bf16 (f32 master weights and optimizer state) at sequence
#       length 1024, the largest micro-batch that fits (16, 8, 4, 2, 1 tried in turn), 4
#       micro-batches per step, the paper's hyperparameters, AdamW and Nexus interleaved:
#       tokens/s, MFU against the GPU's bf16 dense peak, peak GPU memory, Nexus/AdamW time;
#   (c) the PyTorch eager peer of the same model (peers/torch_llama.py) at the same geometry,
#       when the machine has PyTorch with CUDA, and the Candle/PyTorch ratio.
# Results: JSON and Markdown under --out (default: $OUT when set, else figures/gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
build)
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/nexus-lab-cuda-target}
  ../shared/cuda/build.sh --release --features cuda --bin llama_bench
  mkdir -p .gpu
  cp "$CARGO_TARGET_DIR/release/llama_bench" .gpu/llama_bench
  strip .gpu/llama_bench
  ls -l .gpu/llama_bench
  echo "gpu-check: built; carry .gpu on the device and run: scripts/gpu-check.sh run"
  ;;
run)
  device=cuda
  out=${OUT:-figures/gpu}
  bin=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --device) device=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      --bin) bin=$2; shift 2 ;;
      *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
    esac
  done
  mkdir -p "$out"
  if [ "$device" = cuda ]; then
    bin=${bin:-.gpu/llama_bench}
    # The CUDA libraries live in the GPU machine's Python environment (../shared/CUDA.md).
    if libs=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null); then
      LD_LIBRARY_PATH=$(find "$libs/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:):${LD_LIBRARY_PATH:-}
      export LD_LIBRARY_PATH
    fi
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    case "$gpu" in  # bf16 dense peak, TFLOP/s (NVIDIA data sheets)
      *H100*PCIe*) peak=756 ;;
      *H100*|*H200*) peak=989.4 ;;
      *A100*) peak=312 ;;
      *) peak="" ;;
    esac
    preset=base; seq=1024; steps=10; batches="16 8 4 2 1"; dtype=bf16
  else
    [ "$device" = cpu ] || { echo "gpu-check: --device cpu or cuda" >&2; exit 2; }
    if [ -z "$bin" ]; then cargo build --release --bin llama_bench; bin=target/release/llama_bench; fi
    gpu="CPU ($(nproc) cores)"; peak=""
    preset=tiny; seq=128; steps=3; batches="4 2"; dtype=bf16
  fi
  echo "gpu-check: $gpu, binary $bin, results in $out"
  "$bin" grad-check --preset micro --device "$device" | tee "$out/grad_check.json"
  geometry=""
  for mb in $batches; do
    if "$bin" throughput --preset "$preset" --seq-len "$seq" --micro-batch "$mb" --accum 4 \
         --dtype "$dtype" --steps "$steps" --repeats 2 --device "$device" \
         ${peak:+--peak-tflops "$peak"} --out "$out" 2> "$out/throughput.log"; then
      geometry="--seq-len $seq --micro-batch $mb --accum 4"; break
    fi
    echo "gpu-check: micro-batch $mb did not run ($(tail -1 "$out/throughput.log")); trying a smaller one"
  done
  [ -n "$geometry" ] || { echo "gpu-check: no micro-batch size ran" >&2; exit 1; }
  torch_line="PyTorch peer: not run (no PyTorch with $device on this machine)"
  if python3 -c "import sys, torch; sys.exit(0 if '$device' == 'cpu' or torch.cuda.is_available() else 1)" 2>/dev/null; then
    for v in adamw nexus; do
      python3 peers/torch_llama.py --preset "$preset" --variant "$v" $geometry --dtype "$dtype" \
        --steps "$steps" --device "$device" | tee "$out/torch_$v.json"
    done
    torch_line=$(python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
candle = json.load(open(f"{out}/throughput.json"))
med = lambda runs: sorted(r["ms_per_step"] for r in runs)[len(runs) // 2]
rows = []
for v in ["adamw", "nexus"]:
    t = json.load(open(f"{out}/torch_{v}.json"))
    rows.append(f"{v}: Candle {med(candle[v]):.1f} ms/step, PyTorch eager {t['ms_per_step']:.1f} ms/step "
                f"(peak allocated {t['peak_memory_mib']:.0f} MiB), Candle/PyTorch {med(candle[v]) / t['ms_per_step']:.2f}")
print("PyTorch peer (torch " + json.load(open(f"{out}/torch_adamw.json"))["torch"] + "): " + "; ".join(rows))
PY
)
  fi
  {
    echo "# GPU check: $gpu"
    echo
    echo "Command: \`scripts/gpu-check.sh run --device $device\` (crate $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2))."
    echo
    echo "Gradient check (micro preset, f32 on $device against f64 on the CPU):"
    python3 -c "import json,sys; d=json.load(open('$out/grad_check.json')); print(f\"max relative difference {d['max_relative_difference']:.2e} per tensor, {d['relative_difference_of_whole_gradient']:.2e} for the whole gradient ({d['kernels']} kernels)\")"
    echo
    sed '1,2d' "$out/throughput.md"
    echo
    echo "$torch_line"
  } > "$out/README.md"
  cat "$out/README.md"
  ;;
*)
  echo "usage: scripts/gpu-check.sh build | run [--device cuda|cpu] [--out DIR] [--bin PATH]" >&2
  exit 2
  ;;
esac
