//! Comparing GPU results with a reference: errors, the tolerance rules (float32, and
//! half precision for f16 and bf16 outputs), and one call that answers "is this GPU right?" for a
//! problem.

use crate::case::Case;
use crate::context::Context;
use crate::dtype::DType;
use crate::error::Result;
use crate::options::{AttentionOptions, Variant};
use crate::output::AttentionOutput;
use crate::reference::{self, Reference};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Acceptance limits. [`Tolerance::CONTRACT`] holds the rules of the golden cases; it is the one
/// place where a tolerance is set for the library's kernels.
///
/// - An f32 output passes when no value is NaN, `||out - ref|| / ||ref|| <= rel_l2` and every
///   element is within `abs · max(1, max|ref|)` (the float32 rule).
/// - A 16-bit output (f16, bf16) passes when no value is NaN and every element `o` is within
///   `roundings · u · |ref| + abs · max(1, max|ref|)` of its reference, where u is the output
///   dtype's unit roundoff (2⁻¹¹ for f16, 2⁻⁸ for bf16): with `roundings` = 2, at most twice the
///   error of rounding the exact answer once (the half-precision rule).
/// - The lse and P are f32 results and always meet the float32 limits `lse` and `probs`.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Tolerance {
    /// Largest `||out - ref|| / ||ref||` (absolute `||out - ref||` when `||ref|| = 0`), for f32
    /// outputs.
    pub rel_l2: f64,
    /// Largest absolute error, times `max(1, max |ref|)`.
    pub abs: f64,
    /// For 16-bit outputs: the relative part of each element's limit, in units of the output
    /// dtype's unit roundoff.
    pub roundings: f64,
    /// Largest lse error (`-inf` must match exactly).
    pub lse: f64,
    /// Largest probability error.
    pub probs: f64,
}

impl Tolerance {
    /// The rules of the contract (README, "Precision"): float32, and half precision for 16-bit
    /// outputs.
    pub const CONTRACT: Tolerance = Tolerance {
        rel_l2: 1e-5,
        abs: 1e-4,
        roundings: 2.0,
        lse: 1e-4,
        probs: 1e-5,
    };

    /// The relative part of each output element's limit for an output in `dtype` (0 for f32,
    /// whose rule is the relative L2 error).
    pub fn element_rel(&self, dtype: DType) -> f64 {
        match dtype {
            DType::F32 => 0.0,
            _ => self.roundings * dtype.unit_roundoff(),
        }
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Self::CONTRACT
    }
}

/// The outcome of one comparison. Indices are `[b, h, i, e]` (output, probs) and `[b, h, i]` (lse).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Report {
    /// The case's name.
    pub name: String,
    /// The variant that ran.
    pub variant: String,
    /// Query rows compared.
    pub rows_checked: usize,
    /// Query rows in the problem.
    pub rows_total: usize,
    /// Relative L2 error of the output over the rows compared.
    pub rel_l2: f64,
    /// Largest absolute error of the output.
    pub max_abs_err: f64,
    /// Where it is, `[b, h, i, e]`.
    pub max_abs_at: Option<[usize; 4]>,
    /// The absolute limit it was held to (for a 16-bit output, each element's limit adds
    /// `element_rel · |ref|`).
    pub abs_limit: f64,
    /// The dtype the output was written in.
    pub out_dtype: DType,
    /// For a 16-bit output: the largest ratio of an element's error to its limit (at most 1 to
    /// pass).
    pub worst_ratio: Option<f64>,
    /// Largest lse error, when lse was compared.
    pub lse_max_err: Option<f64>,
    /// Where it is, `[b, h, i]`.
    pub lse_at: Option<[usize; 3]>,
    /// Largest probability error, when P was compared.
    pub probs_max_err: Option<f64>,
    /// Where it is, `[b, h, i, j]`.
    pub probs_at: Option<[usize; 4]>,
    /// NaN values anywhere in the returned tensors (NaN is also the poison of unwritten elements).
    pub nan_count: usize,
    /// Each broken rule, in words (empty when passed).
    pub failures: Vec<String>,
    /// Whether every rule held and no value was NaN.
    pub passed: bool,
}

impl Report {
    /// One line: name, errors, verdict.
    pub fn line(&self) -> String {
        let lse = self
            .lse_max_err
            .map(|e| format!("{e:.2e}"))
            .unwrap_or_else(|| "-".into());
        let probs = self
            .probs_max_err
            .map(|e| format!(" probs_err={e:.2e}"))
            .unwrap_or_default();
        // 16-bit outputs: the dtype, and the worst element's error as a fraction of its limit.
        let half = match self.worst_ratio {
            Some(r) => format!(" {} err/limit={r:.2}", self.out_dtype),
            None => String::new(),
        };
        let mut s = format!(
            "{:<32} {:<7} max_abs_err={:.2e} rel_l2={:.2e} lse_err={}{}{} {}",
            self.name,
            self.variant,
            self.max_abs_err,
            self.rel_l2,
            lse,
            probs,
            half,
            if self.passed { "pass" } else { "FAIL" }
        );
        if !self.passed {
            s.push_str(&format!(" ({})", self.failures.join("; ")));
        }
        s
    }
}

/// What the GPU returned: full tensors as downloaded.
pub struct Got<'a> {
    /// The output, `[batch, q_heads, q_len, value_dim]`.
    pub out: &'a [f32],
    /// The lse, `[batch, q_heads, q_len]`, when returned.
    pub lse: Option<&'a [f32]>,
    /// The attention weights, when returned.
    pub probs: Option<&'a [f32]>,
}

fn unravel(shape: &Shape, row: usize) -> (usize, usize, usize) {
    let i = row % shape.q_len;
    let h = (row / shape.q_len) % shape.q_heads;
    let b = row / (shape.q_len * shape.q_heads);
    (b, h, i)
}

/// Compares full GPU tensors with reference values for `expected.rows`; the output was written in
/// `out_dtype`, which picks its rule ([`Tolerance`]).
// `!(err <= limit)` rather than `err > limit`: a NaN error must fail, and only the negated form
// does that.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub fn compare(
    name: &str,
    variant: Variant,
    shape: &Shape,
    got: &Got,
    expected: &Reference,
    tol: Tolerance,
    out_dtype: DType,
) -> Report {
    let mut failures = Vec::new();
    let dv = shape.value_dim;
    let lk = shape.kv_len;
    let nan_count = got.out.iter().filter(|x| x.is_nan()).count()
        + got
            .lse
            .map_or(0, |l| l.iter().filter(|x| x.is_nan()).count())
        + got
            .probs
            .map_or(0, |p| p.iter().filter(|x| x.is_nan()).count());
    if nan_count > 0 {
        failures.push(format!("{nan_count} NaN values (NaN never passes; NaN is also the poison of unwritten outputs)"));
    }

    let (mut diff2, mut ref2, mut max_abs, mut max_ref) = (0f64, 0f64, 0f64, 0f64);
    let mut max_abs_at = None;
    for (n, &row) in expected.rows.iter().enumerate() {
        let (b, h, i) = unravel(shape, row);
        for e in 0..dv {
            let r = expected.out[n * dv + e];
            let g = got.out[row * dv + e] as f64;
            let d = (g - r).abs();
            let d = if d.is_nan() { f64::INFINITY } else { d };
            diff2 += d * d;
            ref2 += r * r;
            max_ref = max_ref.max(r.abs());
            if d > max_abs || max_abs_at.is_none() {
                max_abs = d;
                max_abs_at = Some([b, h, i, e]);
            }
        }
    }
    let rel_l2 = if ref2 > 0.0 {
        (diff2 / ref2).sqrt()
    } else {
        diff2.sqrt()
    };
    let abs_limit = tol.abs * max_ref.max(1.0);
    let elem_rel = tol.element_rel(out_dtype);
    let mut worst_ratio = None;
    if out_dtype == DType::F32 {
        if !(rel_l2 <= tol.rel_l2) {
            failures.push(format!("rel_l2 {rel_l2:.3e} > {:.1e}", tol.rel_l2));
        }
        if !(max_abs <= abs_limit) {
            failures.push(format!(
                "max_abs_err {max_abs:.3e} > {abs_limit:.1e} at {:?}",
                max_abs_at.unwrap_or_default()
            ));
        }
    } else {
        // The half-precision rule: each element against its own limit.
        let (mut worst, mut worst_at, mut worst_err, mut worst_lim) = (0f64, None, 0f64, 0f64);
        for (n, &row) in expected.rows.iter().enumerate() {
            for e in 0..dv {
                let r = expected.out[n * dv + e];
                let d = (got.out[row * dv + e] as f64 - r).abs();
                let d = if d.is_nan() { f64::INFINITY } else { d };
                let lim = elem_rel * r.abs() + abs_limit;
                if d / lim > worst || worst_at.is_none() {
                    (worst, worst_err, worst_lim) = (d / lim, d, lim);
                    let (b, h, i) = unravel(shape, row);
                    worst_at = Some([b, h, i, e]);
                }
            }
        }
        worst_ratio = Some(worst);
        if !(worst <= 1.0) {
            failures.push(format!(
                "{out_dtype} output error {worst_err:.3e} > its limit {worst_lim:.3e} \
                 ({:.0}·u·|ref| + {abs_limit:.1e}) at {:?}",
                tol.roundings,
                worst_at.unwrap_or_default()
            ));
        }
    }

    let (mut lse_max_err, mut lse_at) = (None, None);
    if let Some(gl) = got.lse {
        let mut worst = 0f64;
        for (n, &row) in expected.rows.iter().enumerate() {
            let r = expected.lse[n];
            let g = gl[row] as f64;
            let err = if r == f64::NEG_INFINITY || g == f64::NEG_INFINITY {
                if r == g {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                let d = (g - r).abs();
                if d.is_nan() {
                    f64::INFINITY
                } else {
                    d
                }
            };
            if err > worst || lse_at.is_none() {
                worst = err;
                let (b, h, i) = unravel(shape, row);
                lse_at = Some([b, h, i]);
            }
        }
        lse_max_err = Some(worst);
        if !(worst <= tol.lse) {
            failures.push(format!(
                "lse error {worst:.3e} > {:.1e} at {:?}",
                tol.lse,
                lse_at.unwrap_or_default()
            ));
        }
    }

    let (mut probs_max_err, mut probs_at) = (None, None);
    if let (Some(gp), Some(rp)) = (got.probs, expected.probs.as_ref()) {
        let mut worst = 0f64;
        for (n, &row) in expected.rows.iter().enumerate() {
            for j in 0..lk {
                let d = (gp[row * lk + j] as f64 - rp[n * lk + j]).abs();
                let d = if d.is_nan() { f64::INFINITY } else { d };
                if d > worst || probs_at.is_none() {
                    worst = d;
                    let (b, h, i) = unravel(shape, row);
                    probs_at = Some([b, h, i, j]);
                }
            }
        }
        probs_max_err = Some(worst);
        if !(worst <= tol.probs) {
            failures.push(format!(
                "probs error {worst:.3e} > {:.1e} at {:?}",
                tol.probs,
                probs_at.unwrap_or_default()
            ));
        }
    }

    Report {
        name: name.to_string(),
        variant: variant.to_string(),
        rows_checked: expected.rows.len(),
        rows_total: shape.batch * shape.q_heads * shape.q_len,
        rel_l2,
        max_abs_err: max_abs,
        max_abs_at,
        abs_limit,
        out_dtype,
        worst_ratio,
        lse_max_err,
        lse_at,
        probs_max_err,
        probs_at,
        nan_count,
        passed: failures.is_empty(),
        failures,
    }
}

/// `n` rows spread evenly over `0..total`, first and last included (all rows when `n >= total`).
pub fn sample_rows(total: usize, n: usize) -> Vec<usize> {
    if n >= total || total <= 1 {
        return (0..total).collect();
    }
    let n = n.max(2);
    let mut v: Vec<usize> = (0..n).map(|k| k * (total - 1) / (n - 1)).collect();
    v.dedup();
    v
}

/// The expected results of a golden case, as a [`Reference`] over all rows.
fn expected_from_file(case: &Case) -> Option<Reference> {
    let out = case.out.clone()?;
    let n = case.batch * case.q_heads * case.q_len;
    let lse = case
        .lse
        .as_ref()?
        .iter()
        .map(|x| x.unwrap_or(f64::NEG_INFINITY))
        .collect();
    Some(Reference {
        rows: (0..n).collect(),
        out,
        lse,
        probs: case.probs.clone(),
    })
}

/// One case made ready to run: its inputs and NaN-poisoned outputs on the device, and what to
/// compare them with.
struct Prepared {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    opts: AttentionOptions,
    outputs: AttentionOutput,
    lse: Tensor,
    want_probs: bool,
    out_dtype: DType,
    from_file: Option<Reference>,
}

fn prepare(ctx: &Context, case: &Case, opts: &AttentionOptions) -> Result<Prepared> {
    let (q, k, v, mut o) = case.upload(ctx)?;
    o.variant = opts.variant;
    o.max_scratch_bytes = opts.max_scratch_bytes;
    o.timeout = opts.timeout;
    o.subgroups = opts.subgroups;
    o.emulate_subgroups = opts.emulate_subgroups;
    let from_file = expected_from_file(case);
    let want_probs = opts.return_probs || (from_file.is_some() && case.probs.is_some());
    o.return_lse = true;
    o.return_probs = want_probs;
    o.output_f32 = opts.output_f32;
    let out_dtype = if opts.output_f32 {
        DType::F32
    } else {
        case.dtype
    };
    let s = case.shape();
    let lse = Tensor::filled(ctx, &s.lse(), f32::NAN)?;
    let outputs = AttentionOutput {
        out: Tensor::filled_as(ctx, &s.out(), f32::NAN, out_dtype)?,
        lse: Some(lse.clone()),
        probs: if want_probs {
            Some(Tensor::filled(ctx, &s.probs(), f32::NAN)?)
        } else {
            None
        },
        variant: opts.variant,
    };
    Ok(Prepared {
        q,
        k,
        v,
        opts: o,
        outputs,
        lse,
        want_probs,
        out_dtype,
        from_file,
    })
}

impl Prepared {
    /// The expected results: the file's, or the reference on the sampled rows.
    fn expected(&mut self, case: &Case, sample: Option<usize>) -> Reference {
        match self.from_file.take() {
            Some(e) => e,
            None => {
                let s = case.shape();
                let total = s.batch * s.q_heads * s.q_len;
                let rows = sample_rows(total, sample.unwrap_or(total));
                reference::attention_rows(case, &rows, self.want_probs)
            }
        }
    }
}

/// Runs `case` on the GPU through the public API into NaN-poisoned outputs, and compares with the
/// case's own expected results when it has them, else with the f64 CPU reference (on
/// `sample_rows` evenly spread query rows when given, every row otherwise). The probabilities are
/// requested and checked when `opts.return_probs` is set or the case file carries them.
pub async fn verify(
    ctx: &Context,
    case: &Case,
    opts: &AttentionOptions,
    sample: Option<usize>,
    tol: Tolerance,
) -> Result<Report> {
    let mut p = prepare(ctx, case, opts)?;
    let variant = ctx
        .attention_into(&p.q, &p.k, &p.v, &p.opts, &p.outputs)
        .await?;
    let out = p.outputs.out.read(ctx).await?;
    let lse = p.lse.read(ctx).await?;
    let probs = match &p.outputs.probs {
        Some(t) => Some(t.read(ctx).await?),
        None => None,
    };
    let expected = p.expected(case, sample);
    let got = Got {
        out: &out,
        lse: Some(&lse),
        probs: probs.as_deref(),
    };
    Ok(compare(
        &case.name,
        variant,
        &case.shape(),
        &got,
        &expected,
        tol,
        p.out_dtype,
    ))
}

/// A case recorded for replay on another WebGPU implementation ([`record`]): the trace of its
/// attention call, whose outputs are named `out`, `lse` and (when asked for) `probs`, and what to
/// compare the replay's results with.
pub struct Recorded {
    /// The GPU work of the call, with inputs and poisoned outputs as they were before it.
    pub trace: crate::trace::Trace,
    /// The variant the call ran.
    pub variant: Variant,
    /// The expected results (the case file's, or the f64 reference on the sampled rows).
    pub expected: Reference,
    /// The dtype O was written in.
    pub out_dtype: DType,
    name: String,
    shape: Shape,
}

/// Runs `case` as [`verify`] does, recording the call's GPU work ([`crate::trace`]). The result
/// on this device is not compared here: the trace is for replaying elsewhere, and
/// [`Recorded::compare`] checks the replay's outputs.
pub fn record(
    ctx: &Context,
    case: &Case,
    opts: &AttentionOptions,
    sample: Option<usize>,
) -> Result<Recorded> {
    let mut p = prepare(ctx, case, opts)?;
    // Uploads are queued writes: settle them so that the trace reads the inputs as uploaded.
    ctx.wait_idle(None)?;
    let (variant, trace) = crate::trace::record(|| -> Result<Variant> {
        let variant = ctx.attention_into_blocking(&p.q, &p.k, &p.v, &p.opts, &p.outputs)?;
        let name = |n: &str, t: &Tensor| {
            crate::trace::output(
                ctx.device(),
                ctx.queue(),
                n,
                t.buffer(),
                t.offset(),
                t.storage_bytes(),
            )
        };
        name("out", &p.outputs.out);
        name("lse", &p.lse);
        if let Some(t) = &p.outputs.probs {
            name("probs", t);
        }
        Ok(variant)
    });
    let variant = variant?;
    if !trace.errors.is_empty() {
        return Err(crate::error::Error::Gpu {
            during: "trace recording",
            message: trace.errors.join("; "),
        });
    }
    let expected = p.expected(case, sample);
    Ok(Recorded {
        trace,
        variant,
        expected,
        out_dtype: p.out_dtype,
        name: case.name.clone(),
        shape: case.shape(),
    })
}

impl Recorded {
    /// Compares a replay's output regions (the bytes of `out`, `lse` and `probs`, in the order
    /// of [`crate::trace::Trace::outputs`]) with the expected results, under `tol`.
    pub fn compare(&self, regions: &[Vec<u8>], tol: Tolerance) -> Report {
        let s = &self.shape;
        let f32s = |b: &[u8], n: usize| -> Vec<f32> {
            b.chunks_exact(4)
                .take(n)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let n_out = s.batch * s.q_heads * s.q_len * s.value_dim;
        let empty = Vec::new();
        let region = |i: usize| regions.get(i).unwrap_or(&empty);
        let mut out: Vec<f32> = match self.out_dtype {
            DType::F32 => f32s(region(0), n_out),
            dt => region(0)
                .chunks_exact(2)
                .take(n_out)
                .map(|c| dt.from_bits16(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        };
        // A short replay is padded with NaN, which fails, and says so first.
        let returned = out.len();
        out.resize(n_out, f32::NAN);
        let mut lse = f32s(region(1), s.batch * s.q_heads * s.q_len);
        lse.resize(s.batch * s.q_heads * s.q_len, f32::NAN);
        let probs = (regions.len() > 2).then(|| {
            let n = s.batch * s.q_heads * s.q_len * s.kv_len;
            let mut p = f32s(region(2), n);
            p.resize(n, f32::NAN);
            p
        });
        let got = Got {
            out: &out,
            lse: Some(&lse),
            probs: probs.as_deref(),
        };
        let mut report = compare(
            &self.name,
            self.variant,
            s,
            &got,
            &self.expected,
            tol,
            self.out_dtype,
        );
        if returned < n_out {
            report.passed = false;
            report.failures.insert(
                0,
                format!("the replay returned {returned} of {n_out} outputs"),
            );
        }
        report.name = self.name.clone();
        report
    }
}

/// Blocking form of [`verify`].
pub fn verify_blocking(
    ctx: &Context,
    case: &Case,
    opts: &AttentionOptions,
    sample: Option<usize>,
    tol: Tolerance,
) -> Result<Report> {
    pollster::block_on(verify(ctx, case, opts, sample, tol))
}
