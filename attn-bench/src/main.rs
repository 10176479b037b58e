//! attn-bench: adapter info, a self-check of every kernel against the CPU reference, golden-file
//! checks and timings.
//!
//!   attn-bench                 main job: info, self-check, short timing of each variant
//!   attn-bench info            adapter, features and limits
//!   attn-bench check FILE...   run golden-format case files; exit 0 all pass, 1 any fails,
//!                              2 a file cannot be read or breaks the contract
//!   attn-bench sweep [...]     check, then time, a grid of shapes (see --help)
//!   attn-bench peak            the adapter's measured ceilings (FMA, copy bandwidth)

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

mod bench;
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::{
    AttentionOptions, Causal, Context, ContextOptions, DType, MaskKind, Shape, Variant,
};

#[derive(Parser)]
#[command(
    name = "attn-bench",
    version,
    about = "wgpu-attention: check and time attention kernels on a GPU"
)]
struct Cli {
    /// Only adapters whose name contains this (case-insensitive); also WGPU_ADAPTER_NAME.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Kernel variant of the main job: auto (every variant the library has), staged, fused, decode.
    #[arg(long, default_value = "auto")]
    variant: Variant,
    /// Override fields of the adapter's tuning row for this run, e.g.
    /// `--tuning decode_rows=64,dispatch_work=2^36,staged_tile=64x32x16` (fields as in
    /// src/tuning.rs): compare a candidate row with the table's before adding it.
    #[arg(long, global = true)]
    tuning: Option<String>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the adapter, its enabled features and limits.
    Info,
    /// Run golden-format case files through the public API and compare with their expected results.
    Check {
        #[arg(required = true)]
        files: Vec<String>,
        /// Variant to run: auto (every variant the library has) or one variant.
        #[arg(long, default_value = "auto")]
        variant: Variant,
        /// Run the fused and decode subgroup forms emulated at this subgroup size (2, 4, ...,
        /// 128): the code generated for that size, on any adapter.
        #[arg(long)]
        emulate_subgroups: Option<u32>,
    },
    /// Check each configuration against the CPU reference, then time it.
    Sweep(SweepArgs),
    /// GPU memory of one call: inputs uploaded and the call recorded (not run), then the
    /// allocator's report of every live allocation (Vulkan and DX12 adapters report).
    Memory {
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 8)]
        heads: usize,
        #[arg(long)]
        kv_heads: Option<usize>,
        #[arg(long, default_value_t = 16384)]
        q_len: usize,
        #[arg(long)]
        kv_len: Option<usize>,
        #[arg(long, default_value_t = 64)]
        head_dim: usize,
        #[arg(long, default_value = "none")]
        causal: Causal,
        #[arg(long, default_value = "fused")]
        variant: Variant,
        /// Dtypes of Q, K, V and O (comma list); with more than one, a line per dtype compares
        /// what the call needs.
        #[arg(long, value_delimiter = ',', default_value = "f32")]
        dtype: Vec<DType>,
    },
    /// The conformance suite: a seeded case matrix (and any golden-format files) on every
    /// configuration of one adapter or of every adapter; Markdown report on stdout; exit 1 when
    /// anything unexpected fails.
    Conformance {
        /// Golden-format case files to run besides the matrix.
        files: Vec<String>,
        #[arg(long, default_value = "quick")]
        size: wgpu_attention::conformance::Size,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only these matrix cases (comma list of indices, as printed in repro lines).
        #[arg(long, value_delimiter = ',')]
        only: Vec<usize>,
        /// Only these configurations (staged, staged+sg, fused, decode, fused+sgN, decode+sgN,
        /// fused+sgNemu, decode+sgNemu, as the report labels them).
        #[arg(long, value_delimiter = ',')]
        config: Vec<String>,
        /// Also run the fused and decode subgroup forms emulated at these subgroup sizes (comma
        /// list of 2, 4, ..., 128): their generated code checked on any adapter.
        #[arg(long, value_delimiter = ',')]
        emulate_subgroups: Vec<u32>,
        /// The dtypes each matrix problem runs in (comma list of f32, f16, bf16; all three by
        /// default). Golden files run in their own dtype.
        #[arg(long, value_delimiter = ',', default_value = "f32,f16,bf16")]
        dtype: Vec<DType>,
        /// Run on every adapter wgpu can see (Vulkan, Metal, DX12, GL), not just one.
        #[arg(long)]
        all_adapters: bool,
        /// Cases run at once (default: the machine's cores, at most 4).
        #[arg(long)]
        threads: Option<usize>,
        /// Query rows compared with the reference per case.
        #[arg(long, default_value_t = 48)]
        sample_rows: usize,
        /// Write the reports as JSON.
        #[arg(long)]
        json: Option<String>,
        /// Run the files only, not the matrix.
        #[arg(long)]
        no_matrix: bool,
        /// List the matrix's problems (index, what, shape) instead of running them.
        #[arg(long)]
        list: bool,
        /// Run on Dawn instead (Chrome's WebGPU, through the npm package `webgpu` and
        /// tests/dawn/replay.mjs) on this backend: `opengles` or `vulkan` (on lavapipe, with the
        /// shim of scripts/dawn-vulkan-shim.c; scripts/dawn.sh sets it up). Every case's GPU work
        /// is recorded on a wgpu device limited to Dawn's features and limits, every kernel is
        /// compiled under Tint, and the replayed outputs are compared with the f64 reference.
        #[arg(long)]
        dawn: Option<String>,
        /// Where the Dawn run keeps its traces and results (default: target/dawn-BACKEND).
        #[arg(long)]
        dawn_work: Option<String>,
    },
    /// Short autotune of the tile sizes and the decode threshold on this adapter: prints every
    /// trial and the row to add to the tuning table (src/tuning.rs).
    Tune {
        /// Shorter sequences (about a minute on lavapipe).
        #[arg(long)]
        quick: bool,
        /// Write the trials and the row as JSON.
        #[arg(long)]
        json: Option<String>,
    },
    /// The KV cache's figures: decode over a ragged batch on a paged cache against a contiguous
    /// one (both checked), and the time of appending one position to every sequence.
    Cache {
        /// Sequence lengths of the ragged batch (comma list).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "512,1024,2048,3072,4096,5120,8192,8192"
        )]
        lengths: Vec<usize>,
        #[arg(long, default_value_t = 32)]
        heads: usize,
        #[arg(long, default_value_t = 8)]
        kv_heads: usize,
        #[arg(long, default_value_t = 128)]
        head_dim: usize,
        #[arg(long, default_value = "f16")]
        dtype: DType,
        /// Positions per block of the paged cache.
        #[arg(long, default_value_t = 16)]
        paged: usize,
        /// Variant of the decode call: auto, decode, fused or staged.
        #[arg(long, default_value = "auto")]
        variant: Variant,
        #[arg(long, default_value_t = 7)]
        reps: usize,
        /// Cache lengths at which one append to every sequence is timed.
        #[arg(long, value_delimiter = ',', default_value = "512,2048,8000")]
        append_lengths: Vec<usize>,
        /// Write the figures as JSON.
        #[arg(long)]
        json: Option<String>,
    },
    /// Record what one attention call does on the GPU (a golden-format case file, in one
    /// configuration) as a trace set: OUT.json (kernels' WGSL, buffers, dispatches, copies,
    /// outputs; the format of `TraceSet::save`) and OUT.bin (buffer contents), which
    /// tests/dawn/replay.mjs replays on Dawn.
    Trace {
        /// The case file.
        file: String,
        /// The configuration, as the conformance report labels it (staged, fused+sg8, ...).
        #[arg(long, default_value = "fused")]
        config: String,
        /// Also return (and record) the attention weights.
        #[arg(long)]
        probs: bool,
        /// Path of the trace set without extension.
        #[arg(long, default_value = "trace")]
        out: String,
    },
    /// Translate a date written in a human form to ISO form with the trained translator
    /// (translator/), its attention on this adapter: prints greedy, beam-search and sampled
    /// translations and can draw the cross-attention weights.
    Translate {
        /// The date, e.g. "the 25th of march 2017".
        text: String,
        /// Write the greedy translation's cross-attention weights as a heatmap: SVG (labelled) or,
        /// for a name ending in .png, PNG.
        #[arg(long)]
        heatmap: Option<String>,
        /// The weights file.
        #[arg(long, default_value = wgpu_attention_translator::WEIGHTS)]
        weights: String,
        /// Beam width.
        #[arg(long, default_value_t = 4)]
        beam: usize,
        /// Beam search's length penalty α.
        #[arg(long, default_value_t = 0.6)]
        length_penalty: f64,
        /// Sampling temperature (0: greedy).
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Sampling: keep the k most likely tokens (0: all).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Sampling: nucleus probability.
        #[arg(long, default_value_t = 0.9)]
        top_p: f64,
        /// Sampling seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Activations of the attention calls in f16 (default f32).
        #[arg(long)]
        f16: bool,
    },
    /// Measure the adapter's ceilings: f32 (and f16) FMA throughput, copy bandwidth.
    Peak {
        /// Write the figures as JSON.
        #[arg(long)]
        json: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
struct SweepArgs {
    /// Batch sizes (comma list).
    #[arg(long, value_delimiter = ',')]
    batch: Vec<usize>,
    /// Query heads.
    #[arg(long, value_delimiter = ',')]
    heads: Vec<usize>,
    /// Key/value heads (default: equal to heads).
    #[arg(long, value_delimiter = ',')]
    kv_heads: Vec<usize>,
    /// Query lengths.
    #[arg(long, value_delimiter = ',')]
    q_len: Vec<usize>,
    /// Key lengths (default: equal to q-len).
    #[arg(long, value_delimiter = ',')]
    kv_len: Vec<usize>,
    /// Head dims.
    #[arg(long, value_delimiter = ',')]
    head_dim: Vec<usize>,
    /// Causal modes: none, top_left, bottom_right.
    #[arg(long, value_delimiter = ',')]
    causal: Vec<Causal>,
    /// Variants: auto, staged, fused, decode (default: every variant the library has).
    #[arg(long, value_delimiter = ',')]
    variant: Vec<Variant>,
    /// Dtypes of Q, K, V and O: f32, f16, bf16 (comma list; f32 by default). Each shape and
    /// variant runs in each, timed in interleaved rounds, so they compare within one run.
    #[arg(long, value_delimiter = ',', default_value = "f32")]
    dtype: Vec<DType>,
    /// Kernel forms: auto (the library's choice), subgroup (the subgroup forms where the
    /// adapter has them), workgroup (the workgroup-memory forms). Comma list; timed in
    /// interleaved rounds with the dtypes and variants, so they compare within one run. Non-auto
    /// forms show in the variant column.
    #[arg(long, value_delimiter = ',', default_value = "auto")]
    form: Vec<bench::sweep::Form>,
    /// Timed samples per configuration. The configurations of one shape and causal mode
    /// (variants × dtypes × forms) are checked and warmed up first, then sampled in `reps`
    /// interleaved rounds, one sample each per round, so that a slow spell of the machine falls
    /// on all of them alike.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Time each configuration's samples in a row instead of in interleaved rounds (only one
    /// configuration's tensors alive at a time, for shapes whose every variant and dtype will
    /// not fit the device together).
    #[arg(long)]
    sequential: bool,
    /// Warm-up runs per configuration (the first is also the correctness check).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// A small preset that finishes in under 30 s on lavapipe.
    #[arg(long)]
    quick: bool,
    /// Query rows checked against the f64 reference per configuration.
    #[arg(long, default_value_t = 64)]
    sample_rows: usize,
    /// Shortest timed sample in ms: a call shorter than this runs several times back to back
    /// per sample (at most 64), so that a fast GPU stays busy (and at its clocks) while timed;
    /// the `runs` column says how many. 0 times every call alone.
    #[arg(long, default_value_t = 20.0)]
    min_sample_ms: f64,
    /// Skip the CPU baseline column.
    #[arg(long)]
    no_cpu: bool,
    /// Skip measuring the adapter's ceilings (no % columns).
    #[arg(long)]
    no_peak: bool,
    /// Skip the burn peer column (built with --features burn).
    #[arg(long)]
    no_burn: bool,
    /// Write rows and adapter info as JSON.
    #[arg(long)]
    json: Option<String>,
    /// Write rows as CSV.
    #[arg(long)]
    csv: Option<String>,
    /// Draw GFLOP/s against sequence length as SVG.
    #[arg(long)]
    plot: Option<String>,
}

const BLOG_EXAMPLE: &str = include_str!("../../tests/golden/blog_worked_example.json");

fn context(cli: &Cli) -> Result<Context, String> {
    let opts = ContextOptions {
        adapter_name: cli.adapter.clone(),
        ..Default::default()
    };
    let ctx = Context::new_blocking(opts.clone()).map_err(|e| e.to_string())?;
    let Some(spec) = &cli.tuning else {
        return Ok(ctx);
    };
    let mut t = *ctx.tuning().0;
    apply_tuning(&mut t, spec)?;
    Context::new_blocking(ContextOptions {
        tuning: Some(t),
        backends: Some(wgpu::Backends::from(ctx.adapter_info().backend)),
        adapter_name: Some(ctx.adapter_info().name.clone()),
        ..opts
    })
    .map_err(|e| e.to_string())
}

/// Applies `field=value,...` to a tuning row (`--tuning`).
fn apply_tuning(t: &mut wgpu_attention::tuning::Tuning, spec: &str) -> Result<(), String> {
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("--tuning: {item:?} is not field=value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("--tuning {k}: {v:?}: {e}");
        let int = |v: &str| -> Result<u64, String> {
            match v.split_once('^') {
                Some(("2", e)) => e
                    .parse::<u32>()
                    .map(|e| 1u64 << e.min(62))
                    .map_err(|e| bad(&e)),
                _ => v.parse::<u64>().map_err(|e| bad(&e)),
            }
        };
        let small = |v: &str| int(v).and_then(|x| u32::try_from(x).map_err(|e| bad(&e)));
        match k {
            "staged_tile" => {
                let p: Vec<u32> = v
                    .split('x')
                    .map(|x| x.parse().map_err(|e| bad(&e)))
                    .collect::<Result<_, _>>()?;
                let [tm, tn, tk] = p[..] else {
                    return Err(bad(&"expected TMxTNxTK"));
                };
                t.staged_tile = wgpu_attention::kernels::Tile { tm, tn, tk };
            }
            "fused_rows" => t.fused_rows = small(v)?,
            "fused_tile_bytes" => t.fused_tile_bytes = small(v)?,
            "fused_sg_rows" => t.fused_sg_rows = small(v)?,
            "fused_wide_loads" => t.fused_wide_loads = v.parse().map_err(|e| bad(&e))?,
            "decode_dims_in_lanes" => t.decode_dims_in_lanes = v.parse().map_err(|e| bad(&e))?,
            "decode_max_q_len" => t.decode_max_q_len = small(v)?,
            "decode_min_kv_len" => t.decode_min_kv_len = small(v)?,
            "decode_rows" => t.decode_rows = small(v)?,
            "dispatch_work" => t.dispatch_work = int(v)?,
            _ => return Err(format!("--tuning: unknown field {k:?}")),
        }
    }
    Ok(())
}

fn variants(v: Variant) -> Vec<Variant> {
    match v {
        Variant::Auto => Variant::CONCRETE.to_vec(),
        v => vec![v],
    }
}

fn opts_for(variant: Variant) -> AttentionOptions {
    AttentionOptions {
        variant,
        ..Default::default()
    }
}

/// The adapter summary plus what the subgroup probe decided.
fn describe(ctx: &Context) -> String {
    format!(
        "{}\nsubgroups: {}",
        ctx.describe(),
        wgpu_attention::subgroups::support(ctx).note
    )
}

fn cmd_check(ctx: &Context, variant: Variant, emulate: Option<u32>, files: &[String]) -> ExitCode {
    println!(
        "adapter: {}\nsubgroups: {}",
        ctx.adapter_info().name,
        wgpu_attention::subgroups::support(ctx).note
    );
    let mut cases = Vec::new();
    for f in files {
        match Case::load(f) {
            Ok(c) => cases.push(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let (mut passed, mut failed) = (0, 0);
    for case in &cases {
        // Every variant the case runs on (an explicit --variant is tried whatever the case).
        for v in variants(variant)
            .into_iter()
            .filter(|&v| variant != Variant::Auto || case.supports(v))
        {
            let opts = AttentionOptions {
                emulate_subgroups: emulate,
                ..opts_for(v)
            };
            match check::verify_blocking(ctx, case, &opts, None, Tolerance::CONTRACT) {
                Ok(r) => {
                    println!("{}", r.line());
                    if r.passed {
                        passed += 1
                    } else {
                        failed += 1
                    }
                }
                Err(e) => {
                    println!("{:<32} {:<7} ERROR {e}", case.name, v);
                    failed += 1;
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The shapes of the self-check: the explainer's worked example, odd sizes, GQA with masks, both
/// causal alignments, a fully masked row and a long key sequence.
fn self_check_cases() -> Vec<(Case, Option<usize>)> {
    let sh = |b, hq, hkv, lq, lk, d, dv| Shape {
        batch: b,
        q_heads: hq,
        kv_heads: hkv,
        q_len: lq,
        kv_len: lk,
        head_dim: d,
        value_dim: dv,
    };
    let mut v = vec![(
        serde_json::from_str::<Case>(BLOG_EXAMPLE).expect("embedded example parses"),
        None,
    )];
    v.push((
        Case::random("odd_113x67_d59", sh(2, 3, 3, 113, 67, 59, 59), 1),
        None,
    ));
    v.push((
        Case::random("gqa4_bool_mask_topleft", sh(1, 8, 2, 65, 65, 64, 64), 2)
            .with_causal(Causal::TopLeft)
            .with_random_mask(MaskKind::Bool, [false, true, false, false], 0.8, 2),
        None,
    ));
    v.push((
        Case::random("bottom_right_tall_keylens", sh(2, 2, 1, 40, 24, 32, 48), 3)
            .with_causal(Causal::BottomRight)
            .with_key_lengths(vec![24, 5]),
        None,
    ));
    v.push((
        Case::random("additive_mask_empty_batch", sh(2, 2, 2, 17, 33, 16, 16), 4)
            .with_random_mask(MaskKind::Additive, [true, false, false, false], 0.9, 4)
            .with_key_lengths(vec![33, 0]),
        None,
    ));
    v.push((
        Case::random("bool_mask_masked_rows", sh(1, 2, 2, 9, 70, 3, 5), 6)
            .with_random_mask(MaskKind::Bool, [false, false, false, false], 0.7, 6)
            .with_fully_masked_rows(&[(0, 1, 3), (0, 0, 8)])
            .expect("bool mask accepts masked rows"),
        None,
    ));
    v.push((
        Case::random("long_keys_4096_d64", sh(1, 2, 2, 64, 4096, 64, 64), 5),
        Some(16),
    ));
    // 16-bit data: an f16 decode shape with GQA and odd dims (rows start mid-word), and a bf16
    // causal prefill with a mask in f32.
    v.push((
        Case::random("f16_decode_gqa_d59", sh(1, 8, 2, 3, 1500, 59, 59), 7)
            .with_dtype(DType::F16)
            .with_causal(Causal::BottomRight),
        None,
    ));
    v.push((
        Case::random("bf16_causal_mask_d64", sh(2, 4, 4, 70, 70, 64, 64), 8)
            .with_dtype(DType::BF16)
            .with_causal(Causal::TopLeft)
            .with_random_mask(MaskKind::Additive, [false, true, false, false], 1.0, 8),
        None,
    ));
    v
}

/// Median wall time of submit-and-wait (no readback), after warm-up runs that compile pipelines.
fn time_call(
    ctx: &Context,
    shape: Shape,
    causal: Causal,
    variant: Variant,
    reps: usize,
) -> Result<f64, wgpu_attention::Error> {
    let case = Case::random("timing", shape, 7);
    let (q, k, v, _) = case.upload(ctx)?;
    let opts = AttentionOptions {
        causal,
        variant,
        ..Default::default()
    };
    for _ in 0..2 {
        ctx.attention_blocking(&q, &k, &v, &opts)?;
    }
    let mut ts = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        ctx.attention_blocking(&q, &k, &v, &opts)?;
        ts.push(t.elapsed().as_secs_f64());
    }
    Ok(bench::timer::stats(&ts).0)
}

fn main_job(ctx: &Context, variant: Variant) -> ExitCode {
    println!("== adapter ==\n{}\n", describe(ctx));
    println!("== self-check against the f64 CPU reference ==");
    let mut failed = 0;
    for (case, sample) in self_check_cases() {
        for v in variants(variant) {
            match check::verify_blocking(ctx, &case, &opts_for(v), sample, Tolerance::CONTRACT) {
                Ok(r) => {
                    println!("{}", r.line());
                    failed += (!r.passed) as usize;
                }
                Err(e) => {
                    println!("{:<32} {:<7} ERROR {e}", case.name, v);
                    failed += 1;
                }
            }
        }
    }
    if failed > 0 {
        println!("{failed} self-check failures: timings skipped");
        return ExitCode::from(1);
    }
    println!("\n== timing (wall time of submit-and-wait, median of 5 warm runs) ==");
    let shapes = [
        (
            Shape {
                batch: 1,
                q_heads: 8,
                kv_heads: 8,
                q_len: 512,
                kv_len: 512,
                head_dim: 64,
                value_dim: 64,
            },
            Causal::None,
        ),
        (
            Shape {
                batch: 1,
                q_heads: 8,
                kv_heads: 8,
                q_len: 1024,
                kv_len: 1024,
                head_dim: 64,
                value_dim: 64,
            },
            Causal::TopLeft,
        ),
    ];
    for (shape, causal) in shapes {
        // Decode is for short query blocks: not timed on these prefill shapes unless asked for.
        for v in variants(variant)
            .into_iter()
            .filter(|&v| v != Variant::Decode || variant == Variant::Decode)
        {
            match time_call(ctx, shape, causal, v, 5) {
                Ok(t) => println!(
                    "{v:<7} B={} H={} Lq={} Lk={} D={} causal={:<12} {:>9.2} ms {:>8.2} GFLOP/s",
                    shape.batch,
                    shape.q_heads,
                    shape.q_len,
                    shape.kv_len,
                    shape.head_dim,
                    causal.as_str(),
                    t * 1e3,
                    shape.flops(causal) / t / 1e9
                ),
                Err(e) => {
                    println!("{v:<7} timing failed: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn shape(b: usize, hq: usize, hkv: usize, lq: usize, lk: usize, d: usize) -> Shape {
    Shape::new(b, hq, hkv, lq, lk, d, d)
}

/// The default sweep: prefill (L 256 to 4096, D 64 and 128, causal and not) and decode (Lq 1,
/// Lk up to 32768, GQA 8:2), sized to finish in about two minutes on lavapipe; `--quick` is a
/// subset that finishes in under 30 s.
fn preset(quick: bool) -> Vec<(Shape, Causal)> {
    let mut v = Vec::new();
    // (head dim, sequence lengths): D = 128 stops at 1,024 to keep the default near two minutes.
    let (plan, heads): (&[(usize, &[usize])], usize) = if quick {
        (&[(64, &[256, 1024])], 2)
    } else {
        (&[(64, &[256, 1024, 4096]), (128, &[256, 1024])], 1)
    };
    for &(d, lens) in plan {
        for &l in lens {
            for c in [Causal::None, Causal::TopLeft] {
                v.push((shape(1, heads, heads, l, l, d), c));
            }
        }
    }
    let decode: &[usize] = if quick { &[4096] } else { &[4096, 32768] };
    for &lk in decode {
        v.push((shape(1, 8, 2, 1, lk, 128), Causal::BottomRight));
    }
    v
}

fn grid(a: &SweepArgs) -> Vec<(Shape, Causal)> {
    let explicit = !(a.batch.is_empty()
        && a.heads.is_empty()
        && a.kv_heads.is_empty()
        && a.q_len.is_empty()
        && a.kv_len.is_empty()
        && a.head_dim.is_empty()
        && a.causal.is_empty());
    if !explicit {
        return preset(a.quick);
    }
    let or = |v: &Vec<usize>, d: usize| if v.is_empty() { vec![d] } else { v.clone() };
    let causal = if a.causal.is_empty() {
        vec![Causal::None]
    } else {
        a.causal.clone()
    };
    let mut out = Vec::new();
    for &b in &or(&a.batch, 1) {
        for &h in &or(&a.heads, 8) {
            for &hkv in &(if a.kv_heads.is_empty() {
                vec![h]
            } else {
                a.kv_heads.clone()
            }) {
                for &lq in &or(&a.q_len, 1024) {
                    for &lk in &(if a.kv_len.is_empty() {
                        vec![lq]
                    } else {
                        a.kv_len.clone()
                    }) {
                        for &d in &or(&a.head_dim, 64) {
                            for &c in &causal {
                                out.push((shape(b, h, hkv, lq, lk, d), c));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn adapter_json(ctx: &Context) -> serde_json::Value {
    let i = ctx.adapter_info();
    serde_json::json!({
        "name": i.name,
        "backend": format!("{:?}", i.backend),
        "device_type": format!("{:?}", i.device_type),
        "driver": i.driver,
        "driver_info": i.driver_info,
        "features": format!("{:?}", ctx.features() & wgpu_attention::OPTIONAL_FEATURES),
        "max_storage_buffer_binding_size": ctx.limits().max_storage_buffer_binding_size,
    })
}

fn write_file(path: &str, text: &str) -> bool {
    match std::fs::write(path, text) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("error: cannot write {path}: {e}");
            false
        }
    }
}

fn cmd_memory(
    ctx: &Context,
    s: Shape,
    causal: Causal,
    variant: Variant,
    dtypes: &[DType],
) -> ExitCode {
    println!(
        "adapter: {} ({:?})",
        ctx.adapter_info().name,
        ctx.adapter_info().backend
    );
    println!("shape: {s:?} causal={causal} variant={variant}");
    let mut footprints = Vec::new();
    for &dtype in dtypes {
        println!("\n== {dtype}");
        match memory_one(ctx, s, causal, variant, dtype) {
            Some(bytes) => footprints.push((dtype, bytes)),
            None => return ExitCode::from(1),
        }
        // Let the call's buffers go before the next dtype is measured (wgpu frees dropped
        // buffers at a submission's completion).
        ctx.queue().submit([]);
        let _ = ctx.wait_idle(None);
    }
    if footprints.len() > 1 {
        println!("\nthe library's buffers (inputs, outputs, scratch) of the call, by dtype:");
        let base = footprints[0].1 as f64;
        for (dtype, bytes) in &footprints {
            println!(
                "  {dtype:<5} {bytes:>12} bytes ({:.1} MiB), {:.2}x {}",
                *bytes as f64 / 1048576.0,
                *bytes as f64 / base,
                footprints[0].0
            );
        }
    }
    ExitCode::SUCCESS
}

/// One dtype's memory: the allocator's report before the inputs, with them, and with the call
/// recorded; returns the bytes of the library's buffers (inputs, outputs and scratch).
fn memory_one(
    ctx: &Context,
    s: Shape,
    causal: Causal,
    variant: Variant,
    dtype: DType,
) -> Option<u64> {
    let report = |what: &str| match ctx.device().generate_allocator_report() {
        Some(r) => {
            println!(
                "{what:<28} {:>12} bytes allocated ({:.1} MiB), {} allocations",
                r.total_allocated_bytes,
                r.total_allocated_bytes as f64 / 1048576.0,
                r.allocations.len()
            );
            Some(r)
        }
        None => None,
    };
    if report("before inputs").is_none() {
        println!("this adapter's backend gives no allocator report");
        return None;
    }
    let (q, k, v) = match (|| {
        Ok::<_, wgpu_attention::Error>((
            wgpu_attention::Tensor::filled_as(ctx, &s.q(), 0.5, dtype)?,
            wgpu_attention::Tensor::filled_as(ctx, &s.k(), 0.5, dtype)?,
            wgpu_attention::Tensor::filled_as(ctx, &s.v(), 0.5, dtype)?,
        ))
    })() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    println!(
        "inputs ({dtype}): q {} + k {} + v {} bytes",
        q.storage_bytes(),
        k.storage_bytes(),
        v.storage_bytes()
    );
    report("with inputs");
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    let opts = AttentionOptions {
        causal,
        variant,
        ..Default::default()
    };
    match ctx.record_attention(&mut enc, &q, &k, &v, &opts) {
        Ok(out) => {
            println!("recorded: variant {}", out.variant);
            let r = report("call recorded (peak)")?;
            let mut by_label: std::collections::BTreeMap<String, (u64, usize)> = Default::default();
            for a in &r.allocations {
                let e = by_label.entry(a.name.clone()).or_default();
                e.0 += a.size;
                e.1 += 1;
            }
            for (label, (bytes, count)) in by_label {
                println!("  {label:<40} {bytes:>12} bytes in {count}");
            }
            // The library's own buffers (inputs, outputs, scratch, parameters), by label: the
            // totals also move with wgpu's staging buffers, which come and go.
            Some(
                r.allocations
                    .iter()
                    .filter(|a| a.name.starts_with("wgpu-attention"))
                    .map(|a| a.size)
                    .sum(),
            )
        }
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

fn cmd_peak(ctx: &Context, json: Option<&str>) -> ExitCode {
    println!(
        "adapter: {} ({:?})",
        ctx.adapter_info().name,
        ctx.adapter_info().backend
    );
    match bench::peak::measure(ctx, 1.0) {
        Ok(p) => {
            println!("f32 FMA:  {:>10.2} GFLOP/s", p.fma_f32_gflops);
            match p.fma_f16_gflops {
                Some(f) => println!("f16 FMA:  {f:>10.2} GFLOP/s"),
                None => println!("f16 FMA:  (no SHADER_F16)"),
            }
            println!(
                "copy:     {:>10.2} GB/s (bytes read + written)",
                p.copy_gbps
            );
            println!(
                "timing:   {} (median of 5 after a warm-up run)",
                p.timing.as_str()
            );
            if let Some(path) = json {
                let v = serde_json::json!({"adapter": adapter_json(ctx), "peak": p});
                if !write_file(path, &serde_json::to_string_pretty(&v).unwrap_or_default()) {
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn cmd_sweep(ctx: &Context, a: &SweepArgs) -> ExitCode {
    let configs = grid(a);
    // Without --variant: every variant, except decode on query blocks longer than it is meant for.
    let variants_for = |s: &Shape| -> Vec<Variant> {
        if !a.variant.is_empty() {
            return a.variant.clone();
        }
        Variant::CONCRETE
            .into_iter()
            .filter(|&v| v != Variant::Decode || s.q_len <= 16)
            .collect()
    };
    println!(
        "adapter: {} ({:?})",
        ctx.adapter_info().name,
        ctx.adapter_info().backend
    );
    let peak = if a.no_peak {
        None
    } else {
        match bench::peak::measure(ctx, 1.0) {
            Ok(p) => {
                println!(
                    "ceilings: f32 FMA {:.2} GFLOP/s, copy {:.2} GB/s ({} timing)",
                    p.fma_f32_gflops,
                    p.copy_gbps,
                    p.timing.as_str()
                );
                Some(p)
            }
            Err(e) => {
                eprintln!("error measuring ceilings: {e}");
                return ExitCode::from(1);
            }
        }
    };
    #[cfg(feature = "burn")]
    let burn = (!a.no_burn).then(bench::burn_peer::BurnPeer::new);
    #[cfg(feature = "burn")]
    if let Some(b) = &burn {
        println!("burn peer: burn 0.22 module::attention on {}", b.describe());
    }
    #[cfg(not(feature = "burn"))]
    if !a.no_burn {
        println!("burn peer: not built (cargo build --release --features burn)");
    }
    let timer = match bench::timer::Timer::new(ctx) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let set = bench::sweep::Settings {
        warmup: a.warmup,
        reps: a.reps,
        sample_rows: a.sample_rows,
        min_sample_ms: a.min_sample_ms,
        cpu: !a.no_cpu,
        peak: peak.as_ref(),
        #[cfg(feature = "burn")]
        burn: burn.as_ref(),
    };
    println!(
        "timing: {}; GFLOP/s = 4·B·Hq·D per kept query–key pair; GB/s = Q, K, V, O bytes once; cpu_x = CPU f32 wall ÷ our wall; burn÷ = our wall ÷ burn wall",
        timer.source().as_str()
    );
    let total: usize = configs
        .iter()
        .map(|(s, _)| variants_for(s).len())
        .sum::<usize>()
        * a.dtype.len()
        * a.form.len();
    let pb = indicatif::ProgressBar::new(total as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.suspend(|| println!("{}", bench::sweep::table_header()));
    let mut rows = Vec::new();
    let mut failures = 0;
    for (shape, causal) in &configs {
        let cfgs: Vec<bench::sweep::Config> = variants_for(shape)
            .into_iter()
            .flat_map(|variant| {
                a.dtype.iter().flat_map(move |&dtype| {
                    a.form.iter().map(move |&form| bench::sweep::Config {
                        subgroups: form.subgroups(),
                        shape: *shape,
                        causal: *causal,
                        variant,
                        dtype,
                    })
                })
            })
            .collect();
        let label = |c: &bench::sweep::Config| {
            format!(
                "{}{} L={} D={} {causal} {}",
                c.variant,
                bench::sweep::Form::suffix(c.subgroups),
                shape.kv_len,
                shape.head_dim,
                c.dtype
            )
        };
        let mut report = |r: Result<bench::sweep::Row, wgpu_attention::Error>,
                          c: &bench::sweep::Config| {
            match r {
                Ok(r) => {
                    pb.suspend(|| println!("{}", bench::sweep::table_line(&r)));
                    failures += (!r.check_passed) as usize;
                    rows.push(r);
                }
                Err(e) => {
                    pb.suspend(|| println!("{} {shape:?}: ERROR {e}", label(c)));
                    failures += 1;
                }
            }
            pb.inc(1);
        };
        if a.sequential {
            for c in &cfgs {
                pb.set_message(label(c));
                report(bench::sweep::run(ctx, &timer, *c, &set), c);
            }
            continue;
        }
        // Interleaved: every configuration of this shape checked and warmed up, then timed in
        // rounds (one sample of each per round), so that a slow spell of the machine falls on
        // all of them and their ratios hold within the run.
        let mut prepared = Vec::new();
        for c in &cfgs {
            pb.set_message(format!("{} (check, warm-up)", label(c)));
            prepared.push((c, bench::sweep::prepare(ctx, &timer, *c, &set)));
        }
        for round in 0..a.reps.max(1) {
            pb.set_message(format!(
                "L={} D={} {causal}: round {}/{}",
                shape.kv_len,
                shape.head_dim,
                round + 1,
                a.reps.max(1)
            ));
            for (_, p) in prepared.iter_mut() {
                if let Ok(prep) = p {
                    if let Err(e) = prep.sample(ctx, &timer) {
                        *p = Err(e);
                    }
                }
            }
        }
        for (c, p) in prepared {
            report(p.map(|p| bench::sweep::finish(p, &timer, &set)), c);
        }
    }
    pb.finish_and_clear();
    let mut ok = true;
    if let Some(path) = &a.json {
        let v = serde_json::json!({
            "adapter": adapter_json(ctx),
            "peak": peak,
            "timing": timer.source().as_str(),
            "rows": rows,
        });
        ok &= write_file(path, &serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    if let Some(path) = &a.csv {
        ok &= write_file(path, &bench::sweep::to_csv(&rows));
    }
    if let Some(path) = &a.plot {
        if let Err(e) = bench::plot::write_svg(path, &rows, &ctx.adapter_info().name) {
            eprintln!("error: plot {path}: {e}");
            ok = false;
        }
    }
    println!("{} rows, {failures} failed checks", rows.len());
    if failures > 0 || !ok {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn cmd_conformance(
    ctx: &Context,
    set: &wgpu_attention::conformance::Settings,
    all_adapters: bool,
    json: Option<&str>,
) -> ExitCode {
    use wgpu_attention::conformance;
    let contexts: Vec<(String, Result<Context, wgpu_attention::Error>)> = if all_adapters {
        pollster::block_on(conformance::all_adapters(wgpu::Backends::all()))
    } else {
        vec![(ctx.adapter_info().name.clone(), Ok(ctx.clone()))]
    };
    let mut reports = Vec::new();
    let mut ok = true;
    println!("## Conformance\n");
    for (name, c) in contexts {
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                println!("### {name}\n\ncould not open: {e}\n");
                ok = false;
                continue;
            }
        };
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(c.adapter_info().name.clone());
        let r = conformance::run(&c, set, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        });
        bar.finish_and_clear();
        println!("{}", r.markdown());
        ok &= r.ok();
        reports.push(r);
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&reports).unwrap_or_default();
        if !write_file(path, &text) {
            return ExitCode::from(2);
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn cmd_trace(ctx: &Context, file: &str, config: &str, probs: bool, out: &str) -> ExitCode {
    let case = match Case::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let configs = wgpu_attention::conformance::configs(ctx);
    let Some(cfg) = configs.iter().find(|c| c.label() == config) else {
        let labels: Vec<String> = configs.iter().map(|c| c.label()).collect();
        eprintln!(
            "error: no configuration {config:?} on this adapter; expected one of {}",
            labels.join(", ")
        );
        return ExitCode::from(2);
    };
    let opts = AttentionOptions {
        return_probs: probs,
        ..cfg.options()
    };
    let rec = match check::record(ctx, &case, &opts, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let mut set = wgpu_attention::trace::TraceSet::default();
    let (kernels, buffers, commands) = (
        rec.trace.kernels.len(),
        rec.trace.buffers.len(),
        rec.trace.commands.len(),
    );
    set.add(format!("{} {config}", case.name), rec.trace);
    if let Err(e) = set.save(std::path::Path::new(out)) {
        eprintln!("error: {out}: {e}");
        return ExitCode::from(2);
    }
    println!(
        "{out}.json, {out}.bin: {kernels} kernels, {buffers} buffers, {commands} commands ({} on {})",
        rec.variant,
        ctx.adapter_info().name
    );
    ExitCode::SUCCESS
}

fn cmd_dawn(
    cli: &Cli,
    ctx: &Context,
    backend: &str,
    set: &wgpu_attention::conformance::Settings,
    work: Option<&str>,
    json: Option<&str>,
) -> ExitCode {
    use bench::dawn;
    if !["opengles", "vulkan"].contains(&backend) {
        eprintln!("error: --dawn {backend:?}: expected opengles or vulkan");
        return ExitCode::from(2);
    }
    let work = std::path::PathBuf::from(
        work.map(str::to_string)
            .unwrap_or_else(|| format!("target/dawn-{backend}")),
    );
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("error: {}: {e}", work.display());
        return ExitCode::from(2);
    }
    println!(
        "## Conformance on Dawn ({backend})
"
    );
    // No adapter is a failure with its reason, never a skip.
    let adapter = match dawn::probe(backend, &work) {
        Ok(a) => a,
        Err(e) => {
            println!(
                "Dawn has no adapter on backend={backend}: {e}
"
            );
            return ExitCode::FAILURE;
        }
    };
    let base = same_adapter(cli, ctx);
    let rec = match dawn::recording_context(base, &adapter) {
        Ok(c) => c,
        Err(e) => {
            println!(
                "could not open the recording device: {e}
"
            );
            return ExitCode::FAILURE;
        }
    };
    match dawn::conformance(&rec, &adapter, backend, set, &work) {
        Ok((report, kernels, ok)) => {
            println!("{}", report.markdown());
            println!("{}", dawn::kernels_markdown(backend, &kernels));
            if let Some(path) = json {
                let v =
                    serde_json::json!({"report": report, "kernels": kernels, "adapter": adapter});
                if !write_file(path, &serde_json::to_string_pretty(&v).unwrap_or_default()) {
                    return ExitCode::from(2);
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!(
                "the Dawn replay failed: {e}
"
            );
            ExitCode::FAILURE
        }
    }
}

/// Options that open the adapter of `ctx` again (the tool's `--adapter`, else its name, on its
/// backend), for a second context with other settings.
fn same_adapter(cli: &Cli, ctx: &Context) -> ContextOptions {
    ContextOptions {
        adapter_name: Some(
            cli.adapter
                .clone()
                .unwrap_or_else(|| ctx.adapter_info().name.clone()),
        ),
        backends: Some(wgpu::Backends::from(ctx.adapter_info().backend)),
        ..Default::default()
    }
}

fn cmd_tune(cli: &Cli, ctx: &Context, quick: bool, json: Option<&str>) -> ExitCode {
    let (start, source) = ctx.tuning();
    println!("adapter: {}", ctx.adapter_info().name);
    println!("starting from: {start:?} ({source})\n");
    let base = same_adapter(cli, ctx);
    let info = ctx.adapter_info();
    let subgroup_form = wgpu_attention::subgroups::support(ctx).size.is_some();
    let r = bench::tune::run(&base, *start, &info.name, quick, subgroup_form);
    println!(
        "{:<18} {:>10} {:<22} {:<8} {:>10}  error",
        "field", "value", "shape", "variant", "median ms"
    );
    for t in &r.trials {
        println!(
            "{:<18} {:>10} {:<22} {:<8} {:>10}  {}",
            t.field,
            t.value,
            t.shape,
            t.variant,
            t.median_ms
                .map(|m| format!("{m:.2}"))
                .unwrap_or_else(|| "-".into()),
            t.error.as_deref().unwrap_or("")
        );
    }
    println!(
        "\nchosen: {:?}\nrow for src/tuning.rs:\n{}",
        r.tuning, r.row
    );
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&r).unwrap_or_default();
        if !write_file(path, &text) {
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn cmd_cache(ctx: &Context, set: &bench::cache::Settings, json: Option<&str>) -> ExitCode {
    println!(
        "adapter: {} ({:?})",
        ctx.adapter_info().name,
        ctx.adapter_info().backend
    );
    let timer = match bench::timer::Timer::new(ctx) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let f = match bench::cache::run(ctx, &timer, set) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "decode over a ragged batch: B={} Hq={} Hkv={} D={} lengths {:?} (total {}), {}, {} ran",
        f.lengths.len(),
        set.q_heads,
        set.kv_heads,
        set.head_dim,
        f.lengths,
        f.total_keys,
        f.dtype,
        f.variant
    );
    println!(
        "  paged (block {}): {:.3} ms   contiguous: {:.3} ms   paged / contiguous: {:.3}   ({} timing, median of {})",
        f.block_size, f.paged_ms, f.contiguous_ms, f.ratio, f.timing, set.reps
    );
    println!(
        "  checks: paged == contiguous bit for bit: {}; f64 reference on every row: {} (worst error / limit {:.3})",
        f.paged_equals_contiguous, f.reference_passed, f.worst_ratio
    );
    for (len, ms) in &f.append_ms {
        println!(
            "append of one position to {} sequences at cache length {len}: {ms:.3} ms",
            f.lengths.len()
        );
    }
    if let Some(path) = json {
        let v = serde_json::json!({"adapter": adapter_json(ctx), "cache": f});
        if !write_file(path, &serde_json::to_string_pretty(&v).unwrap_or_default()) {
            return ExitCode::from(2);
        }
    }
    if f.paged_equals_contiguous && f.reference_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = match context(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match &cli.cmd {
        None => main_job(&ctx, cli.variant),
        Some(Cmd::Info) => {
            println!("{}", describe(&ctx));
            ExitCode::SUCCESS
        }
        Some(Cmd::Check {
            files,
            variant,
            emulate_subgroups,
        }) => cmd_check(&ctx, *variant, *emulate_subgroups, files),
        Some(Cmd::Sweep(args)) => cmd_sweep(&ctx, args),
        Some(Cmd::Peak { json }) => cmd_peak(&ctx, json.as_deref()),
        Some(Cmd::Conformance {
            files,
            size,
            seed,
            only,
            config,
            emulate_subgroups,
            dtype,
            all_adapters,
            threads,
            sample_rows,
            json,
            no_matrix,
            list,
            dawn,
            dawn_work,
        }) => {
            if *list {
                for (n, p) in wgpu_attention::conformance::matrix(*size, *seed)
                    .iter()
                    .enumerate()
                {
                    let s = p.case.shape();
                    println!(
                        "{n}\t{}\tb{} hq{} hkv{} lq{} lk{} d{} dv{}",
                        p.what,
                        s.batch,
                        s.q_heads,
                        s.kv_heads,
                        s.q_len,
                        s.kv_len,
                        s.head_dim,
                        s.value_dim
                    );
                }
                return ExitCode::SUCCESS;
            }
            let defaults = wgpu_attention::conformance::Settings::default();
            let set = wgpu_attention::conformance::Settings {
                size: *size,
                seed: *seed,
                files: files.clone(),
                only: only.clone(),
                matrix: !*no_matrix,
                configs: config.clone(),
                dtypes: dtype.clone(),
                emulate: emulate_subgroups.clone(),
                sample_rows: *sample_rows,
                command: "attn-bench".into(),
                threads: threads.unwrap_or(defaults.threads),
                ..defaults
            };
            match dawn {
                Some(backend) => cmd_dawn(
                    &cli,
                    &ctx,
                    backend,
                    &set,
                    dawn_work.as_deref(),
                    json.as_deref(),
                ),
                None => cmd_conformance(&ctx, &set, *all_adapters, json.as_deref()),
            }
        }
        Some(Cmd::Tune { quick, json }) => cmd_tune(&cli, &ctx, *quick, json.as_deref()),
        Some(Cmd::Trace {
            file,
            config,
            probs,
            out,
        }) => cmd_trace(&ctx, file, config, *probs, out),
        Some(Cmd::Translate {
            text,
            heatmap,
            weights,
            beam,
            length_penalty,
            temperature,
            top_k,
            top_p,
            seed,
            f16,
        }) => {
            let set = bench::translate::Settings {
                text: text.clone(),
                weights: weights.clone(),
                beam: *beam,
                length_penalty: *length_penalty,
                temperature: *temperature,
                top_k: *top_k,
                top_p: *top_p,
                seed: *seed,
                heatmap: heatmap.clone(),
                f16: *f16,
            };
            match bench::translate::run(&ctx, &set) {
                Ok(lines) => {
                    println!("input:    {text}");
                    for l in lines {
                        println!("{l}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Some(Cmd::Cache {
            lengths,
            heads,
            kv_heads,
            head_dim,
            dtype,
            paged,
            variant,
            reps,
            append_lengths,
            json,
        }) => cmd_cache(
            &ctx,
            &bench::cache::Settings {
                lengths: lengths.clone(),
                q_heads: *heads,
                kv_heads: *kv_heads,
                head_dim: *head_dim,
                dtype: *dtype,
                block_size: *paged,
                variant: *variant,
                reps: *reps,
                append_lengths: append_lengths.clone(),
            },
            json.as_deref(),
        ),
        Some(Cmd::Memory {
            batch,
            heads,
            kv_heads,
            q_len,
            kv_len,
            head_dim,
            causal,
            variant,
            dtype,
        }) => {
            let s = shape(
                *batch,
                *heads,
                kv_heads.unwrap_or(*heads),
                *q_len,
                kv_len.unwrap_or(*q_len),
                *head_dim,
            );
            cmd_memory(&ctx, s, *causal, *variant, dtype)
        }
    }
}
