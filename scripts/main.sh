#!/usr/bin/env bash
# The main job: attn-bench with no arguments (adapter info, self-check of every kernel against the
# f64 CPU reference, short timing). Extra arguments go to attn-bench (e.g. `info`, `check FILE...`).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cargo build --release --quiet --bin attn-bench
exec ./target/release/attn-bench "$@"
