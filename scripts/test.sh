#!/usr/bin/env bash
# The whole test suite on the local Vulkan adapter (lavapipe when there is no GPU):
# - the habits of a well-kept crate: formatting, lints with warnings as errors (missing docs
#   included), documentation without warnings;
# - unit, integration and doc tests of both packages (the library and attn-bench), a build of the
#   criterion benches (built, not run: `cargo bench` runs them), and every example of examples/;
# - the library as published: `cargo package`, then its doctests built from the packaged files;
# - the golden files through the CLI, and the conformance suite;
# - the Dawn replay suite (tests/dawn/, scripts/dawn.sh: the cases replayed on Chrome's WebGPU);
# - the subgroup-size sweep (scripts/subgroup-sweep.sh: the subgroup tests and the conformance
#   suite at lavapipe's widths 64 to 1024, each width's subgroup size named in its report).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# Each step's start with the seconds since the suite began, so CI's log shows where its time goes.
step() { echo "== [${SECONDS}s] $*"; }
step "fmt, dependency check, clippy, doc"
cargo fmt --all --check
# The library stays lean: none of the tool's crates among its normal dependencies.
if cargo tree -p wgpu-attention -e normal --prefix none | grep -E '^(clap|indicatif|plotters|rand) '; then
  echo "wgpu-attention depends on a tool-only crate (above); it belongs in attn-bench/" >&2
  exit 1
fi
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet
step "tests"
cargo test --release
step "benches built, examples"
cargo bench --no-run --quiet
for example in examples/*.rs; do
  name="$(basename "$example" .rs)"
  echo "== example $name"
  cargo run --release --quiet -p wgpu-attention --example "$name"
done
# The package as crates.io would get it: the files it holds (shaders included) build and pass
# their doctests on their own, outside this workspace.
step "the package's doctests"
cargo package -p wgpu-attention --no-verify --allow-dirty --quiet
pkg="${TMPDIR:-/tmp}/wgpu-attention-package-$$"
rm -rf "$pkg" && mkdir -p "$pkg"
tar -xzf target/package/wgpu-attention-0.1.0.crate -C "$pkg"
CARGO_TARGET_DIR="$PWD/target" cargo test --release --quiet --doc \
  --manifest-path "$pkg/wgpu-attention-0.1.0/Cargo.toml"
rm -rf "$pkg"
cargo build --release --quiet --bin attn-bench
# The conformance suite: the quick matrix in f32 plus every golden file (f32, f16 and bf16 ones, in
# their own dtype), every configuration; then the matrix's 32 named problems (every rule of the
# contract) in f16 and bf16. Its Markdown reports are the summary CI prints; exit 1 when anything
# unexpected fails. (The whole matrix in all three dtypes, 1,530 cases, compiles about 16 minutes
# of kernels on a cold lavapipe cache: docs/CONFORMANCE.md has its report; run it with
# `attn-bench conformance tests/golden/*.json`.) The golden files also go through `attn-bench
# check` in attn-bench/tests/cli.rs.
step "conformance, f32 matrix and golden files"
./target/release/attn-bench conformance tests/golden/*.json --dtype f32 \
  --json target/conformance.json
step "conformance, 16-bit"
./target/release/attn-bench conformance --dtype f16,bf16 --only "$(seq -s, 0 31)" \
  --json target/conformance-16bit.json
# The Dawn replay suite (docs/CONFORMANCE.md, "Dawn"): every case's GPU work recorded as a trace
# and replayed on Dawn, Chrome's WebGPU (npm package `webgpu`, tests/dawn/), whose WGSL compiler
# is Tint; every kernel specialization compiled under Tint; the replayed outputs compared with the
# f64 reference. scripts/dawn.sh installs Node.js, the locked npm package, EGL and the Vulkan shim.
# On GLES: the whole quick matrix in f32 and every golden file in its own dtype (f32, f16, bf16;
# 357 cases, about 3 min on a cold Mesa cache). The whole matrix in all three dtypes (789 cases,
# 12 min) is `attn-bench conformance --dawn opengles tests/golden/*.json`; its report is in
# docs/CONFORMANCE.md. No Dawn adapter is a failure, not a skip.
step "Dawn setup, GLES"
eval "$(bash scripts/dawn.sh)"
./target/release/attn-bench conformance --dawn opengles tests/golden/*.json --dtype f32 \
  --json target/dawn-opengles.json
# Vulkan through the shim: the subgroup forms at Dawn's subgroup size, shader-f16 present. llvmpipe
# compiles Tint's SPIR-V of the generated subgroup kernels several times slower than naga's (up to
# 35 s a kernel at d128), so CI replays four problems (in f32, f16 and bf16: the 16-bit subgroup
# kernels under Tint) and the golden files with head dims up to 16 here; the whole runs
# (docs/CONFORMANCE.md) are `attn-bench conformance --dawn vulkan tests/golden/*.json` and the
# same with `--dtype f16,bf16`.
DAWN_GOLDEN="$(for f in tests/golden/*.json; do
  python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(sys.argv[1] if max(c["head_dim"], c["value_dim"]) <= 16 else "")' "$f"
done | xargs)"
step "Dawn Vulkan"
# shellcheck disable=SC2086
./target/release/attn-bench conformance --dawn vulkan $DAWN_GOLDEN --only 0,7,8,24 \
  --dtype f32,f16,bf16 --json target/dawn-vulkan.json
# Every other subgroup size lavapipe reports (the run above covers the default width, 256 bits);
# at widths 128 and 1024 the golden files on every configuration, without the matrix (time:
# width 1024's matrix took 241 s of a 27-minute run; its full run is by hand). Width 2048
# (subgroups of 64, which lavapipe runs in the emulated form) is left to tests/subgroups.rs,
# whose emulated tests cover 64 lanes at the default width, and to the by-hand sweep
# (`bash scripts/subgroup-sweep.sh`; docs/CONFORMANCE.md has its report).
step "subgroup sweep"
SWEEP_SKIP="256 2048" SWEEP_GOLDEN_ONLY="128 1024" bash scripts/subgroup-sweep.sh
step "done"
