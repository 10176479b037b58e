//! `attn-bench cache`: the KV cache's figures in one run. Decode over a ragged batch on a paged
//! cache against the same call on a contiguous cache (one block of the longest length per
//! sequence), both checked (paged equal to contiguous bit for bit, and the f64 reference on
//! every row), then the time of appending one position to every sequence at several cache
//! lengths. GPU timestamps where the adapter has them; medians of warm runs, the two layouts
//! alternating so that a slow spell falls on both.

use serde::Serialize;

use super::timer::{stats, Timer};
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Got, Tolerance};
use wgpu_attention::reference::{self, Reference};
use wgpu_attention::rng::SeededRng;
use wgpu_attention::{
    AttentionOptions, AttentionOutput, Context, DType, KvCache, KvCacheConfig, Result, SeqId,
    Shape, Tensor, Variant,
};

/// What to measure.
pub struct Settings {
    pub lengths: Vec<usize>,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub dtype: DType,
    pub block_size: usize,
    pub variant: Variant,
    pub reps: usize,
    /// Cache lengths at which one append to every sequence is timed.
    pub append_lengths: Vec<usize>,
}

/// The measured figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub lengths: Vec<usize>,
    pub total_keys: usize,
    pub dtype: String,
    pub block_size: usize,
    pub variant: String,
    pub paged_ms: f64,
    pub contiguous_ms: f64,
    pub ratio: f64,
    pub paged_equals_contiguous: bool,
    pub reference_passed: bool,
    pub worst_ratio: f64,
    pub timing: String,
    /// (cache length, median ms of appending one position to every sequence).
    pub append_ms: Vec<(usize, f64)>,
}

struct Filled {
    cache: KvCache,
    seqs: Vec<SeqId>,
}

/// A cache of `cfg` holding `k`/`v` (per sequence `[kv_heads, len, dim]`), appended whole.
fn fill(
    ctx: &Context,
    cfg: KvCacheConfig,
    data: &[(Vec<f32>, Vec<f32>)],
    lens: &[usize],
) -> Result<Filled> {
    let mut cache = KvCache::new(ctx, cfg)?;
    let mut seqs = Vec::new();
    for ((k, v), &len) in data.iter().zip(lens) {
        let s = cache.add_sequence()?;
        let kt = Tensor::from_f32(ctx, &[1, cfg.kv_heads, len, cfg.head_dim], k, cfg.dtype)?;
        let vt = Tensor::from_f32(ctx, &[1, cfg.kv_heads, len, cfg.value_dim], v, cfg.dtype)?;
        cache.append(ctx, &[s], &kt, &vt)?;
        seqs.push(s);
    }
    Ok(Filled { cache, seqs })
}

fn random(rng: &mut SeededRng, n: usize, dtype: DType) -> Vec<f32> {
    (0..n)
        .map(|_| dtype.round(rng.random_range(-1.0f32..1.0)))
        .collect()
}

/// Runs the measurement.
pub fn run(ctx: &Context, timer: &Timer, set: &Settings) -> Result<Figures> {
    let (hq, hkv, d) = (set.q_heads, set.kv_heads, set.head_dim);
    let lens = &set.lengths;
    let max_len = *lens.iter().max().unwrap_or(&1);
    let mut rng = SeededRng::seed_from_u64(7);
    let data: Vec<(Vec<f32>, Vec<f32>)> = lens
        .iter()
        .map(|&l| {
            (
                random(&mut rng, hkv * l * d, set.dtype),
                random(&mut rng, hkv * l * d, set.dtype),
            )
        })
        .collect();
    let paged_cfg = KvCacheConfig {
        max_seqs: lens.len(),
        kv_heads: hkv,
        head_dim: d,
        value_dim: d,
        dtype: set.dtype,
        block_size: set.block_size,
        num_blocks: lens
            .iter()
            .map(|l| l.div_ceil(set.block_size))
            .sum::<usize>()
            + lens.len(),
    };
    let contiguous_cfg = KvCacheConfig::contiguous(lens.len(), hkv, d, d, set.dtype, max_len);
    let paged = fill(ctx, paged_cfg, &data, lens)?;
    let contiguous = fill(ctx, contiguous_cfg, &data, lens)?;

    let qd = random(&mut rng, lens.len() * hq * d, set.dtype);
    let q = Tensor::from_f32(ctx, &[lens.len(), hq, 1, d], &qd, set.dtype)?;
    let opts = AttentionOptions {
        variant: set.variant,
        return_lse: true,
        ..AttentionOptions::for_cache()
    };
    let shape = Shape::new(lens.len(), hq, hkv, 1, max_len, d, d);
    let outputs = |ctx: &Context| -> Result<AttentionOutput> {
        Ok(AttentionOutput {
            out: Tensor::filled_as(ctx, &shape.out(), f32::NAN, set.dtype)?,
            lse: Some(Tensor::filled(ctx, &shape.lse(), f32::NAN)?),
            probs: None,
            variant: set.variant,
        })
    };
    // Check: paged equal to contiguous, and both against the f64 reference.
    let (po, co) = (outputs(ctx)?, outputs(ctx)?);
    let ran = paged
        .cache
        .attention_into_blocking(ctx, &q, &paged.seqs, &opts, &po)?;
    contiguous
        .cache
        .attention_into_blocking(ctx, &q, &contiguous.seqs, &opts, &co)?;
    let (pv, cv) = (po.out.read_blocking(ctx)?, co.out.read_blocking(ctx)?);
    let equal = pv.iter().zip(&cv).all(|(a, b)| a.to_bits() == b.to_bits());
    let lse = po.lse.as_ref().map(|l| l.read_blocking(ctx)).transpose()?;
    let mut expected = Reference {
        rows: Vec::new(),
        out: Vec::new(),
        lse: Vec::new(),
        probs: None,
    };
    for (b, ((k, v), &len)) in data.iter().zip(lens).enumerate() {
        let mut case = Case::random("cache", Shape::new(1, hq, hkv, 1, len, d, d), 0)
            .with_dtype(set.dtype)
            .with_causal(wgpu_attention::Causal::BottomRight);
        case.q = qd[b * hq * d..(b + 1) * hq * d].to_vec();
        case.k = k.clone();
        case.v = v.clone();
        let r = reference::attention(&case, false);
        expected.rows.extend(b * hq..(b + 1) * hq);
        expected.out.extend(r.out);
        expected.lse.extend(r.lse);
    }
    let report = check::compare(
        "cache",
        ran,
        &shape,
        &Got {
            out: &pv,
            lse: lse.as_deref(),
            probs: None,
        },
        &expected,
        Tolerance::CONTRACT,
        set.dtype,
    );

    // Timing: warm-up, then the two layouts alternating.
    let time = |f: &Filled, o: &AttentionOutput| -> Result<f64> {
        Ok(timer
            .time(ctx, |enc| {
                f.cache
                    .record_attention_into(ctx, enc, &q, &f.seqs, &opts, o)
                    .map(|_| ())
            })?
            .best())
    };
    for _ in 0..2 {
        time(&paged, &po)?;
        time(&contiguous, &co)?;
    }
    let (mut tp, mut tc) = (Vec::new(), Vec::new());
    for _ in 0..set.reps.max(1) {
        tp.push(time(&paged, &po)?);
        tc.push(time(&contiguous, &co)?);
    }
    let (paged_ms, contiguous_ms) = (stats(&tp).0 * 1e3, stats(&tc).0 * 1e3);

    // Append of one position to every sequence, at each cache length.
    let mut append_ms = Vec::new();
    let n = lens.len();
    let kt = Tensor::from_f32(
        ctx,
        &[n, hkv, 1, d],
        &random(&mut rng, n * hkv * d, set.dtype),
        set.dtype,
    )?;
    let vt = Tensor::from_f32(
        ctx,
        &[n, hkv, 1, d],
        &random(&mut rng, n * hkv * d, set.dtype),
        set.dtype,
    )?;
    for &len in &set.append_lengths {
        let reps = set.reps.max(1) + 2;
        let cfg = KvCacheConfig {
            max_seqs: n,
            num_blocks: n * (len + reps).div_ceil(set.block_size),
            ..paged_cfg
        };
        let per_seq: Vec<(Vec<f32>, Vec<f32>)> = (0..n)
            .map(|_| {
                (
                    random(&mut rng, hkv * len * d, set.dtype),
                    random(&mut rng, hkv * len * d, set.dtype),
                )
            })
            .collect();
        let mut f = fill(ctx, cfg, &per_seq, &vec![len; n])?;
        let mut ts = Vec::new();
        for r in 0..reps {
            let seqs = f.seqs.clone();
            let cache = &mut f.cache;
            let t = timer.time(ctx, |enc| cache.record_append(ctx, enc, &seqs, &kt, &vt))?;
            if r >= 2 {
                ts.push(t.best());
            }
        }
        append_ms.push((len, stats(&ts).0 * 1e3));
    }

    Ok(Figures {
        lengths: lens.clone(),
        total_keys: lens.iter().sum(),
        dtype: set.dtype.to_string(),
        block_size: set.block_size,
        variant: ran.to_string(),
        paged_ms,
        contiguous_ms,
        ratio: paged_ms / contiguous_ms,
        paged_equals_contiguous: equal,
        reference_passed: report.passed,
        worst_ratio: report.worst_ratio.unwrap_or(0.0),
        timing: timer.source().as_str().into(),
        append_ms,
    })
}
