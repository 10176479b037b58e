#!/usr/bin/env bash
# The subgroup-size sweep: lavapipe's SIMD width (LP_NATIVE_VECTOR_WIDTH) sets the subgroup size
# it reports (width / 32: 64 -> 2, ..., 256 -> 8, the default, ..., 2048 -> 64). At each width
# below it runs the subgroup tests of tests/subgroups.rs (`sg_`) and the conformance suite (quick
# matrix plus the golden files, every configuration: the fused and decode subgroup forms at the
# size the subgroup probe confirmed, and emulated at a reported size it did not confirm), whose
# report names the sizes. Lavapipe runs at most 16 lanes, so 32 and 64 are checked in the
# emulated form (docs/CONFORMANCE.md). At width 64 the golden files replace the quick matrix
# (below). The default width's full run is scripts/test.sh's.
#
# One width:  LP_NATIVE_VECTOR_WIDTH=1024 bash scripts/subgroup-sweep.sh
# Run by scripts/test.sh after the main suite (which covers the default width); on a machine whose
# Vulkan adapter is not lavapipe the width has no effect and the sweep says so and stops.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Widths swept (tests/subgroups.rs reads this line to hold the automatic choice to them).
WIDTHS="64 128 256 512 1024 2048"
if [ -n "${LP_NATIVE_VECTOR_WIDTH:-}" ]; then
  WIDTHS_RUN="$LP_NATIVE_VECTOR_WIDTH"
else
  # SWEEP_SKIP: widths already run (scripts/test.sh runs everything at the default, 256).
  WIDTHS_RUN=""
  for w in $WIDTHS; do
    case " ${SWEEP_SKIP:-} " in *" $w "*) ;; *) WIDTHS_RUN="$WIDTHS_RUN $w" ;; esac
  done
fi

cargo build --release --quiet --bin attn-bench
cargo test --release --quiet --no-run --test subgroups 2>/dev/null
# (Read into a variable first: `info | grep -q` can fail under pipefail when grep stops early.)
info="$(./target/release/attn-bench info)"
if ! grep '^adapter: llvmpipe' >/dev/null <<<"$info"; then
  echo "subgroup sweep: the adapter is not lavapipe, whose width sets the subgroup size; skipped"
  exit 0
fi
mkdir -p target/subgroup-sweep

# One width, its output into target/subgroup-sweep/width-W.log.
one_width() {
  local w=$1
  export LP_NATIVE_VECTOR_WIDTH=$w
  echo "== subgroup sweep: LP_NATIVE_VECTOR_WIDTH=$w [${SECONDS}s into the sweep]"
  ./target/release/attn-bench info | grep -E '^(adapter|subgroup)'
  # The width-dependent subgroup tests (the emulated ones use no subgroup operation and run in
  # the main suite).
  cargo test --release --quiet --test subgroups -- sg_
  if [ "$w" = 64 ]; then
    # Subgroups of 2: lavapipe runs 2 lanes at a time here and the quick matrix took 260 s for
    # the subgroup configurations alone, so the golden files stand in for it (every variant in
    # its automatic form, which is the subgroup form at 2 lanes).
    ./target/release/attn-bench check tests/golden/*.json | tail -n 1
    return
  fi
  # The matrix in f32 (the 16-bit forms share the subgroup code; the golden files run them in
  # f16 and bf16 at this width too). Widths in SWEEP_GOLDEN_ONLY run the golden files alone, on
  # every configuration (scripts/test.sh lists 128 and 1024 there and skips 2048 to keep CI within its time:
  # width 128 alone took 244 s of matrix; their full runs are in docs/CONFORMANCE.md).
  local matrix=""
  case " ${SWEEP_GOLDEN_ONLY:-} " in *" $w "*) matrix="--no-matrix" ;; esac
  ./target/release/attn-bench conformance tests/golden/*.json --dtype f32 $matrix \
    --json "target/subgroup-sweep/conformance-$w.json"
}

# Two widths at a time (most of a width's time is compiling its kernels, one core each), the
# slowest first: width 128 (subgroups of 4) takes about as long as the others together.
order=""
for w in 128 $WIDTHS_RUN; do
  case " $WIDTHS_RUN " in *" $w "*) ;; *) continue ;; esac
  case " $order " in *" $w "*) ;; *) order="$order $w" ;; esac
done
failed=""
declare -A pid_of=()
finish() { # wait for any one width, report it
  local done_pid
  wait -n -p done_pid "${!pid_of[@]}" 2>/dev/null && rc=0 || rc=$?
  local w=${pid_of[$done_pid]}
  unset "pid_of[$done_pid]"
  [ "$rc" = 0 ] || failed="$failed $w"
  cat "target/subgroup-sweep/width-$w.log"
}
for w in $order; do
  while [ ${#pid_of[@]} -ge 2 ]; do finish; done
  (set -euo pipefail; one_width "$w") >"target/subgroup-sweep/width-$w.log" 2>&1 &
  pid_of[$!]=$w
done
while [ ${#pid_of[@]} -gt 0 ]; do finish; done
if [ -n "$failed" ]; then
  echo "subgroup sweep: FAILED at width(s)$failed (logs in target/subgroup-sweep/)" >&2
  exit 1
fi
