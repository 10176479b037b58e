#!/usr/bin/env bash
# The subgroup-size sweep: lavapipe's SIMD width (LP_NATIVE_VECTOR_WIDTH) sets the subgroup size
# it reports (width / 32: 64 -> 2, ..., 256 -> 8, the default, ..., 2048 -> 64). At each width
# below it runs the subgroup tests (tests/subgroups.rs) and the conformance suite (quick matrix
# plus the golden files, every configuration: the fused and decode subgroup forms at the size the
# subgroup probe confirmed, and emulated at a reported size it did not confirm). Lavapipe runs at most 16 lanes, so 32 and 64 are checked in
# the emulated form (docs/CONFORMANCE.md). The default width's full run is scripts/test.sh's.
#
# One width:  LP_NATIVE_VECTOR_WIDTH=1024 bash scripts/subgroup-sweep.sh
# Run by scripts/test.sh after the main suite (which covers the default width); on a machine whose Vulkan adapter is not
# lavapipe the width has no effect and the sweep says so and stops.
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
if ! ./target/release/attn-bench info | grep -q '^adapter: llvmpipe'; then
  echo "subgroup sweep: the adapter is not lavapipe, whose width sets the subgroup size; skipped"
  exit 0
fi
mkdir -p target/subgroup-sweep
for w in $WIDTHS_RUN; do
  echo "== subgroup sweep: LP_NATIVE_VECTOR_WIDTH=$w"
  export LP_NATIVE_VECTOR_WIDTH=$w
  ./target/release/attn-bench info | grep -E '^(adapter|subgroup)'
  # The width-dependent subgroup tests (the emulated ones use no subgroup operation and run in
  # the main suite).
  cargo test --release --quiet --test subgroups -- sg_
  # Every configuration, but at width 64 only the subgroup ones: lavapipe runs 4 times slower
  # there (2 lanes), and the workgroup-memory configurations use no subgroup at all.
  configs=()
  if [ "$w" = 64 ]; then configs=(--config staged+sg,fused+sg2,decode+sg2); fi
  ./target/release/attn-bench conformance tests/golden/*.json "${configs[@]}" \
    --json "target/subgroup-sweep/conformance-$w.json"
done
unset LP_NATIVE_VECTOR_WIDTH
