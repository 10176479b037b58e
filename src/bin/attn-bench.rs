//! attn-bench: adapter info, a self-check of every kernel against the CPU reference, golden-file
//! checks and timings.
//!
//!   attn-bench                 main job: info, self-check, short timing of each variant
//!   attn-bench info            adapter, features and limits
//!   attn-bench check FILE...   run golden-format case files; exit 0 all pass, 1 any fails,
//!                              2 a file cannot be read or breaks the contract

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::{AttentionOptions, Causal, Context, ContextOptions, MaskKind, Shape, Variant};

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
    /// Kernel variant: auto, staged.
    #[arg(long, global = true, default_value = "auto")]
    variant: Variant,
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
    },
}

const BLOG_EXAMPLE: &str = include_str!("../../tests/golden/blog_worked_example.json");

fn context(cli: &Cli) -> Result<Context, wgpu_attention::Error> {
    Context::new_blocking(ContextOptions {
        adapter_name: cli.adapter.clone(),
        ..Default::default()
    })
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

fn cmd_check(ctx: &Context, variant: Variant, files: &[String]) -> ExitCode {
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
        for v in variants(variant) {
            match check::verify_blocking(ctx, case, &opts_for(v), None, Tolerance::FLOAT32) {
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
    v
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
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
    Ok(median(&mut ts))
}

fn main_job(ctx: &Context, variant: Variant) -> ExitCode {
    println!("== adapter ==\n{}\n", ctx.describe());
    println!("== self-check against the f64 CPU reference ==");
    let mut failed = 0;
    for (case, sample) in self_check_cases() {
        for v in variants(variant) {
            match check::verify_blocking(ctx, &case, &opts_for(v), sample, Tolerance::FLOAT32) {
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
        for v in variants(variant) {
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
            println!("{}", ctx.describe());
            ExitCode::SUCCESS
        }
        Some(Cmd::Check { files }) => cmd_check(&ctx, cli.variant, files),
    }
}
