#!/usr/bin/env bash
# The whole test suite on the local Vulkan adapter (lavapipe when there is no GPU): unit,
# integration and doc tests, the golden files through the CLI, a short sweep, and a build of the
# criterion benches (built, not run: `cargo bench` runs them), the conformance suite, and the
# subgroup-size sweep (scripts/subgroup-sweep.sh: the subgroup tests and the conformance suite at
# every lavapipe width, each width's subgroup size named in its report).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cargo test --release
cargo bench --no-run --quiet
cargo build --release --quiet --bin attn-bench
./target/release/attn-bench check tests/golden/*.json
# The conformance suite (quick matrix plus the golden files, every configuration): its Markdown
# report is the summary CI prints; exit 1 when anything unexpected fails.
./target/release/attn-bench conformance tests/golden/*.json --json target/conformance.json
# Every other subgroup size lavapipe reports (the run above covers the default width, 256 bits).
SWEEP_SKIP=256 bash scripts/subgroup-sweep.sh
