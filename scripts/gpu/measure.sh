#!/usr/bin/env bash
# The measurement run on a lent NVIDIA GPU (DEVELOPERS.md, ../shared/gpu/README.md), in one device
# call from the repository root with `.device/` carried: `.device/attn-bench` (a release build from
# this machine) and `.device/gl/*.deb` (libvulkan1 and the glvnd libraries: libglvnd0, libegl1,
# libgl1, libglx0, libgles2, libopengl0 -- without glvnd NVIDIA's ICD fails `vkCreateInstance`
# and wgpu sees no adapter). Each step has its own time limit; results are re-packed into
# $OUT/results.tgz after every step, so a run cut short still returns what it finished.
# Results of 2026-11-22 (H100): docs/h100/, docs/PERFORMANCE.md, docs/CONFORMANCE.md.
for f in .device/gl/*.deb; do dpkg -x $f /; done; ldconfig
j=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $j ] && export VK_DRIVER_FILES=$j
export WGPU_BACKEND=vulkan XDG_RUNTIME_DIR=/tmp WGPU_ADAPTER_NAME=nvidia
B=.device/attn-bench
R=/tmp/r; mkdir -p $R
step() { local t=$1 name=$2; shift 2; local s=$(date +%s); echo "== $name (limit ${t}s)"; timeout -k 5 $t "$@"; local rc=$?; echo "== $name rc=$rc $(( $(date +%s) - s ))s" | tee -a $R/steps.txt; tar czf $OUT/results.tgz -C /tmp r; }
finish() { tar czf $OUT/results.tgz -C /tmp r; ls -la $OUT; }
step 30 info $B info > $R/info.txt 2>&1; head -12 $R/info.txt
step 60 tune $B tune --json $R/tune.json > $R/tune.txt 2>&1; grep -A14 "row for" $R/tune.txt
step 90 conformance $B conformance --threads 12 --json $R/conformance.json tests/golden/*.json > $R/conformance.md 2> $R/conformance.err; grep -E "verdict|matrix:|tuning" $R/conformance.md
S="$B sweep --no-cpu --dtype f32,f16,bf16 --reps 10 --warmup 3"
for sg in 1 0; do
  export WGPU_ATTENTION_SUBGROUPS=$sg
  step 60 "prefill2048 sg$sg" $S --batch 1 --heads 8 --q-len 2048 --head-dim 64 --causal none,top_left --json $R/sweep-prefill2048-sg$sg.json > $R/sweep-prefill2048-sg$sg.txt 2>&1
  step 80 "prefill4096 sg$sg" $S --no-peak --batch 1 --heads 8 --q-len 4096 --head-dim 128 --causal none,top_left --json $R/sweep-prefill4096-sg$sg.json > $R/sweep-prefill4096-sg$sg.txt 2>&1
  step 50 "decode32k sg$sg" $S --no-peak --batch 1 --heads 32 --kv-heads 8 --q-len 1 --kv-len 32768 --head-dim 128 --json $R/sweep-decode32k-sg$sg.json > $R/sweep-decode32k-sg$sg.txt 2>&1
  step 50 "decode8x8k sg$sg" $S --no-peak --batch 8 --heads 32 --kv-heads 8 --q-len 1 --kv-len 8192 --head-dim 128 --json $R/sweep-decode8x8k-sg$sg.json > $R/sweep-decode8x8k-sg$sg.txt 2>&1
  step 70 "prefill16k sg$sg" $B sweep --no-cpu --dtype f32,f16,bf16 --reps 5 --warmup 2 --no-peak --variant fused --batch 1 --heads 16 --q-len 16384 --head-dim 64 --causal top_left --json $R/sweep-prefill16k-sg$sg.json > $R/sweep-prefill16k-sg$sg.txt 2>&1
done
# Decode with head dims across lanes (PERFORMANCE.md, log 20), off in this GPU's tuning row until
# measured: the same decode shapes with the layout forced, to compare with the rows above.
export WGPU_ATTENTION_SUBGROUPS=1 WGPU_ATTENTION_DECODE_LANES=dims
step 50 "decode32k lanes" $S --no-peak --batch 1 --heads 32 --kv-heads 8 --q-len 1 --kv-len 32768 --head-dim 128 --json $R/sweep-decode32k-lanes.json > $R/sweep-decode32k-lanes.txt 2>&1
step 50 "decode8x8k lanes" $S --no-peak --batch 8 --heads 32 --kv-heads 8 --q-len 1 --kv-len 8192 --head-dim 128 --json $R/sweep-decode8x8k-lanes.json > $R/sweep-decode8x8k-lanes.txt 2>&1
unset WGPU_ATTENTION_DECODE_LANES
for f in $R/sweep-*.txt; do echo "# $f"; grep -E "^(staged|fused|decode)|ERROR" $f; done
step 150 torch python3 .device/torch_sdpa.py > $R/torch_sdpa.jsonl 2> $R/torch.err
finish
