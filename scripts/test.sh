#!/usr/bin/env bash
# The whole test suite on the local Vulkan adapter (lavapipe when there is no GPU): unit,
# integration and doc tests, the golden files through the CLI, and a build of the benches.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cargo test --release --all-targets
cargo test --release --doc
cargo build --release --quiet --bin attn-bench
./target/release/attn-bench check tests/golden/*.json
