//! Sweeps: every configuration is checked against the f64 CPU reference before it is timed, then
//! timed after warm-up (the first dispatch of a pipeline compiles it), with GPU timestamps where
//! the adapter has them. The configurations of one shape are timed in interleaved rounds
//! ([`prepare`], then [`Prepared::sample`] for each in turn, then [`finish`]), so that ratios
//! between variants, dtypes and forms hold on a noisy machine; [`run`] times one alone.
//! Figures: median/min/max ms, GFLOP/s over the kept query–key pairs, effective GB/s over
//! compulsory bytes (Q, K, V, O once, at the dtype's element size), % of the measured ceilings,
//! the CPU baseline (f32) and the burn peer (f32).

use std::time::Instant;

use serde::Serialize;

use super::peak::Peak;
use super::timer::{stats, Timer};
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Got, Tolerance};
use wgpu_attention::reference;
use wgpu_attention::Context;
use wgpu_attention::Result;
use wgpu_attention::Tensor;
use wgpu_attention::{AttentionOptions, AttentionOutput, Shape};
use wgpu_attention::{Causal, DType, Variant};

/// One configuration of a sweep.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub shape: Shape,
    pub causal: Causal,
    pub variant: Variant,
    /// Subgroup forms (`None`: the library's default, see `AttentionOptions::subgroups`).
    pub subgroups: Option<bool>,
    /// The dtype of Q, K, V and O.
    pub dtype: DType,
}

/// Which kernel forms a sweep row asks for (`--form`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Form {
    /// The library's choice.
    Auto,
    /// The subgroup forms, where the adapter has subgroups.
    Subgroup,
    /// The workgroup-memory forms.
    Workgroup,
}

impl Form {
    /// `AttentionOptions::subgroups` for this form.
    pub fn subgroups(self) -> Option<bool> {
        match self {
            Form::Auto => None,
            Form::Subgroup => Some(true),
            Form::Workgroup => Some(false),
        }
    }

    /// The suffix the variant column gets (none for the library's choice).
    pub fn suffix(subgroups: Option<bool>) -> &'static str {
        match subgroups {
            None => "",
            Some(true) => "/sg",
            Some(false) => "/wg",
        }
    }
}

/// One measured row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The variant asked for, with `/sg` or `/wg` when a form was forced (`--form`).
    pub variant: String,
    /// The variant `auto` resolved to (equal to `variant` otherwise).
    pub ran: String,
    pub batch: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub head_dim: usize,
    pub causal: String,
    /// The dtype of Q, K, V and O (bytes and GB/s count its element size).
    pub dtype: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// "gpu" (timestamps) or "wall" (submit and wait).
    pub timing: String,
    /// Wall time of submit-and-wait, the basis of the CPU and burn columns.
    pub wall_median_ms: f64,
    /// Calls recorded back to back in each timed sample (times are per call).
    pub runs_per_sample: usize,
    pub gflops: f64,
    pub gbps: f64,
    pub pct_fma_peak: Option<f64>,
    pub pct_copy_peak: Option<f64>,
    pub max_abs_err: f64,
    pub rel_l2: f64,
    pub rows_checked: usize,
    pub check_passed: bool,
    pub cpu_ms: Option<f64>,
    /// CPU wall time ÷ our wall time.
    pub cpu_speedup: Option<f64>,
    pub burn_ms: Option<f64>,
    /// Our wall time ÷ burn's wall time (below 1: we are faster).
    pub burn_ratio: Option<f64>,
}

/// Options of a sweep run.
pub struct Settings<'a> {
    pub warmup: usize,
    pub reps: usize,
    /// Query rows checked against the f64 reference per configuration.
    pub sample_rows: usize,
    /// Shortest timed sample: calls shorter than this (by the last warm-up run) are recorded
    /// several times per sample, at most 64.
    pub min_sample_ms: f64,
    pub cpu: bool,
    pub peak: Option<&'a Peak>,
    #[cfg(feature = "burn")]
    pub burn: Option<&'a super::burn_peer::BurnPeer>,
}

/// Compulsory bytes of one call: Q, K, V read once and O written once, at `dtype`'s element
/// size.
pub fn compulsory_bytes(s: &Shape, dtype: DType) -> f64 {
    dtype.size() as f64
        * (s.q().iter().product::<usize>()
            + s.k().iter().product::<usize>()
            + s.v().iter().product::<usize>()
            + s.out().iter().product::<usize>()) as f64
}

/// A configuration uploaded, checked and warmed up, collecting timed samples.
pub struct Prepared {
    cfg: Config,
    case: Case,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    opts: AttentionOptions,
    outputs: AttentionOutput,
    ran: Variant,
    report: check::Report,
    /// Calls recorded back to back in each sample.
    runs: usize,
    /// Per-call time of each sample (timestamps where the adapter has them), seconds.
    best: Vec<f64>,
    /// Per-call wall time of each sample, seconds.
    wall: Vec<f64>,
}

/// Uploads one configuration, checks it against the f64 reference and warms it up; its samples
/// are then taken with [`Prepared::sample`] (interleaved with other configurations' or not)
/// and summed up by [`finish`].
pub fn prepare(ctx: &Context, timer: &Timer, cfg: Config, set: &Settings) -> Result<Prepared> {
    let s = cfg.shape;
    let seed = (s.q_len * 31 + s.kv_len * 7 + s.head_dim) as u64;
    let case = Case::random("sweep", s, seed)
        .with_dtype(cfg.dtype)
        .with_causal(cfg.causal);
    let (q, k, v, mut opts) = case.upload(ctx)?;
    opts.variant = cfg.variant;
    opts.subgroups = cfg.subgroups;
    opts.return_lse = true;
    let outputs = AttentionOutput {
        out: Tensor::filled_as(ctx, &s.out(), f32::NAN, cfg.dtype)?,
        lse: Some(Tensor::filled(ctx, &s.lse(), f32::NAN)?),
        probs: None,
        variant: cfg.variant,
    };

    // Check first: one run into poisoned outputs, compared on sampled rows. It is also the first
    // warm-up run (it compiles the pipelines).
    let ran = pollster::block_on(ctx.attention_into(&q, &k, &v, &opts, &outputs))?;
    let out = outputs.out.read_blocking(ctx)?;
    let lse = outputs
        .lse
        .as_ref()
        .map(|l| l.read_blocking(ctx))
        .transpose()?;
    let rows = check::sample_rows(s.batch * s.q_heads * s.q_len, set.sample_rows);
    let expected = reference::attention_rows(&case, &rows, false);
    let report = check::compare(
        "sweep",
        ran,
        &s,
        &Got {
            out: &out,
            lse: lse.as_deref(),
            probs: None,
        },
        &expected,
        Tolerance::CONTRACT,
        cfg.dtype,
    );
    let mut p = Prepared {
        cfg,
        case,
        q,
        k,
        v,
        opts,
        outputs,
        ran,
        report,
        runs: 1,
        best: Vec::with_capacity(set.reps),
        wall: Vec::with_capacity(set.reps),
    };
    // The fastest warm-up run: a run that met a GPU still at idle clocks would overstate it.
    let mut estimate: Option<f64> = None;
    for _ in 1..set.warmup {
        let t = p.timed(ctx, timer, 1)?.best();
        estimate = Some(estimate.map_or(t, |e| e.min(t)));
    }
    // Short calls run several times per sample, so that a sample lasts `min_sample_ms` and the
    // device stays busy between timestamps (a GPU that idles between short submissions drops
    // its clocks, and its samples then scatter over several times the true cost).
    p.runs = match estimate {
        Some(t) if t > 0.0 => ((set.min_sample_ms * 1e-3 / t).ceil() as usize).clamp(1, 64),
        _ => 1,
    };
    Ok(p)
}

impl Prepared {
    /// `runs` calls recorded back to back between one pair of timestamps.
    fn timed(&self, ctx: &Context, timer: &Timer, runs: usize) -> Result<super::timer::Sample> {
        timer.time_runs(ctx, runs, |enc| {
            ctx.record_attention_into(enc, &self.q, &self.k, &self.v, &self.opts, &self.outputs)
                .map(|_| ())
        })
    }

    /// Takes one timed sample (per-call times, the sample divided by its runs).
    pub fn sample(&mut self, ctx: &Context, timer: &Timer) -> Result<()> {
        let smp = self.timed(ctx, timer, self.runs)?;
        self.best.push(smp.best());
        self.wall.push(smp.wall);
        Ok(())
    }
}

/// The row of a prepared configuration from its samples (and the CPU and burn columns, timed
/// here).
pub fn finish(p: Prepared, timer: &Timer, set: &Settings) -> Row {
    let (cfg, s) = (p.cfg, p.cfg.shape);
    let (med, min, max) = stats(&p.best);
    let (wall_med, _, _) = stats(&p.wall);

    let flops = s.flops(cfg.causal);
    let gflops = flops / med / 1e9;
    let gbps = compulsory_bytes(&s, cfg.dtype) / med / 1e9;

    let case = &p.case;
    let cpu_ms = if set.cpu {
        // One run when a run takes over a second, else up to `reps` runs.
        let mut ts = Vec::new();
        loop {
            let t = Instant::now();
            std::hint::black_box(super::cpu::attention(
                &s, cfg.causal, &case.q, &case.k, &case.v,
            ));
            ts.push(t.elapsed().as_secs_f64());
            if ts.len() >= set.reps.max(1) || ts.iter().sum::<f64>() > 1.0 {
                break;
            }
        }
        Some(stats(&ts).0 * 1e3)
    } else {
        None
    };

    #[cfg(feature = "burn")]
    let burn_ms = set.burn.and_then(|b| {
        b.time(
            &s,
            cfg.causal,
            &case.q,
            &case.k,
            &case.v,
            set.warmup.max(1),
            set.reps.max(1),
        )
        .map(|ts| stats(&ts).0 * 1e3)
    });
    #[cfg(not(feature = "burn"))]
    let burn_ms: Option<f64> = None;

    Row {
        variant: format!("{}{}", cfg.variant, Form::suffix(cfg.subgroups)),
        ran: p.ran.to_string(),
        batch: s.batch,
        q_heads: s.q_heads,
        kv_heads: s.kv_heads,
        q_len: s.q_len,
        kv_len: s.kv_len,
        head_dim: s.head_dim,
        causal: cfg.causal.to_string(),
        dtype: cfg.dtype.to_string(),
        median_ms: med * 1e3,
        min_ms: min * 1e3,
        max_ms: max * 1e3,
        timing: timer.source().as_str().into(),
        wall_median_ms: wall_med * 1e3,
        runs_per_sample: p.runs,
        gflops,
        gbps,
        pct_fma_peak: set.peak.map(|p| 100.0 * gflops / p.fma_f32_gflops),
        pct_copy_peak: set.peak.map(|p| 100.0 * gbps / p.copy_gbps),
        max_abs_err: p.report.max_abs_err,
        rel_l2: p.report.rel_l2,
        rows_checked: p.report.rows_checked,
        check_passed: p.report.passed,
        cpu_ms,
        cpu_speedup: cpu_ms.map(|c| c / (wall_med * 1e3)),
        burn_ms,
        burn_ratio: burn_ms.map(|b| wall_med * 1e3 / b),
    }
}

/// Checks one configuration, then times it alone (`reps` samples in a row).
pub fn run(ctx: &Context, timer: &Timer, cfg: Config, set: &Settings) -> Result<Row> {
    let mut p = prepare(ctx, timer, cfg, set)?;
    for _ in 0..set.reps.max(1) {
        p.sample(ctx, timer)?;
    }
    Ok(finish(p, timer, set))
}

fn opt(x: Option<f64>, prec: usize) -> String {
    x.map(|v| format!("{v:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

/// Header of the stdout table.
pub fn table_header() -> String {
    format!(
        "{:<7} {:>2} {:>3} {:>3} {:>6} {:>6} {:>4} {:<12} {:<5} {:>9} {:>9} {:>9} {:>4} {:>4} {:>8} {:>7} {:>6} {:>6} {:>8} {:>5} {:>8} {:>6}",
        "variant", "B", "Hq", "Hkv", "Lq", "Lk", "D", "causal", "dtype", "median_ms", "min_ms", "max_ms", "time", "runs",
        "GFLOP/s", "GB/s", "%fma", "%copy", "max_err", "check", "cpu_x", "burn÷"
    )
}

/// One line of the stdout table.
pub fn table_line(r: &Row) -> String {
    format!(
        "{:<7} {:>2} {:>3} {:>3} {:>6} {:>6} {:>4} {:<12} {:<5} {:>9.2} {:>9.2} {:>9.2} {:>4} {:>4} {:>8.2} {:>7.2} {:>6} {:>6} {:>8.1e} {:>5} {:>8} {:>6}",
        if r.variant.split('/').next() == Some(r.ran.as_str()) { r.variant.clone() } else { format!("{}>{}", r.variant, r.ran) },
        r.batch, r.q_heads, r.kv_heads, r.q_len, r.kv_len, r.head_dim, r.causal, r.dtype,
        r.median_ms, r.min_ms, r.max_ms, r.timing, r.runs_per_sample, r.gflops, r.gbps,
        opt(r.pct_fma_peak, 1), opt(r.pct_copy_peak, 1), r.max_abs_err,
        if r.check_passed { "ok" } else { "FAIL" },
        opt(r.cpu_speedup, 2), opt(r.burn_ratio, 2),
    )
}

/// CSV with a header line; the same fields as the JSON rows.
pub fn to_csv(rows: &[Row]) -> String {
    let mut s = String::from("variant,ran,batch,q_heads,kv_heads,q_len,kv_len,head_dim,causal,dtype,median_ms,min_ms,max_ms,timing,wall_median_ms,runs_per_sample,gflops,gbps,pct_fma_peak,pct_copy_peak,max_abs_err,rel_l2,rows_checked,check_passed,cpu_ms,cpu_speedup,burn_ms,burn_ratio\n");
    let o = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.variant,
            r.ran,
            r.batch,
            r.q_heads,
            r.kv_heads,
            r.q_len,
            r.kv_len,
            r.head_dim,
            r.causal,
            r.dtype,
            r.median_ms,
            r.min_ms,
            r.max_ms,
            r.timing,
            r.wall_median_ms,
            r.runs_per_sample,
            r.gflops,
            r.gbps,
            o(r.pct_fma_peak),
            o(r.pct_copy_peak),
            r.max_abs_err,
            r.rel_l2,
            r.rows_checked,
            r.check_passed,
            o(r.cpu_ms),
            o(r.cpu_speedup),
            o(r.burn_ms),
            o(r.burn_ratio)
        ));
    }
    s
}
