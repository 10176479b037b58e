//! The staged path: S = scale·QKᵀ + masks (`qk`), softmax in place with lse (`softmax`), O = P·V
//! (`pv`), through an explicit score buffer.
//!
//! The score buffer is the one thing that grows with q_len·kv_len. When it would exceed one binding
//! (or `max_scratch_bytes`), the rows are cut into chunks: several heads per chunk while whole heads
//! fit, else row ranges of one head. Every kernel loop whose length depends on the problem is also
//! cut at dispatch level (head-dim chunks for QK, key chunks for PV, key segments for softmax) so
//! that no invocation runs long loops (lavapipe's limiter, desktop watchdogs).

use crate::context::Context;
use crate::error::Result;
use crate::fused;
use crate::kernels::{
    self, additive, bind_group, chunk_flags, mask_and_lengths, params_binding, params_buffer, pv,
    qk, softmax, storage_binding, tensor_binding, Params, FLAG_ACCUMULATE,
};
use crate::options::AttentionOptions;
use crate::output::AttentionOutput;
use crate::problem::Problem;
use crate::tensor::Tensor;

/// A contiguous block of score rows: heads `bh0 .. bh0 + nbh`, rows `i0 .. i0 + rows` of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub bh0: usize,
    pub nbh: usize,
    pub i0: usize,
    pub rows: usize,
}

/// Cuts `heads` heads of `q_len` rows into chunks of at most `max_rows` rows in total, with at most
/// `max_heads` heads and `max_rows_per_head` rows of one head per chunk.
pub(crate) fn plan_chunks(
    heads: usize,
    q_len: usize,
    max_rows: usize,
    max_heads: usize,
    max_rows_per_head: usize,
) -> Vec<Chunk> {
    let mut out = Vec::new();
    let per_head = max_rows.min(max_rows_per_head).max(1);
    if q_len <= per_head {
        let hpc = (max_rows / q_len).clamp(1, max_heads);
        let mut bh0 = 0;
        while bh0 < heads {
            let nbh = hpc.min(heads - bh0);
            out.push(Chunk {
                bh0,
                nbh,
                i0: 0,
                rows: q_len,
            });
            bh0 += nbh;
        }
    } else {
        for bh in 0..heads {
            let mut i0 = 0;
            while i0 < q_len {
                let rows = per_head.min(q_len - i0);
                out.push(Chunk {
                    bh0: bh,
                    nbh: 1,
                    i0,
                    rows,
                });
                i0 += rows;
            }
        }
    }
    out
}

/// `(start, len)` pieces of `0..total`, each at most `step` long.
fn pieces(total: usize, step: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..total)
        .step_by(step.max(1))
        .map(move |s| (s, step.min(total - s)))
}

fn div_ceil(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

/// What [`record`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The staged attention: O, lse and (when asked) P.
    Attention,
    /// Only P (the fused path's weights, computed after its main kernel): the scores are
    /// recomputed and normalised by their own row statistics, with the lse going to `lse` (a
    /// scratch buffer there). Normalising by the fused kernel's lse instead was measured to miss
    /// the probability tolerance on the large_logits golden case (2.3e-5 > 1e-5): its scores are
    /// summed in another order, and one ulp of a score near 1000 is 6e-5 of relative weight.
    ProbsOnly,
}

enum Step {
    Qk {
        param: usize,
        grid: [u32; 3],
    },
    /// Additive scores of a chunk (instead of Qk).
    Additive {
        param: usize,
        grid: [u32; 3],
    },
    Stats {
        param: usize,
        grid: [u32; 3],
    },
    Normalize {
        param: usize,
        grid: [u32; 3],
    },
    Pv {
        param: usize,
        grid: [u32; 3],
    },
    /// Copy a chunk's probabilities from the scratch buffer into the caller's P.
    CopyProbs {
        dst_offset: u64,
        bytes: u64,
    },
    EndChunk,
}

/// Records the staged path for a checked problem into `encoder`, writing the row lse to `lse`;
/// `outputs.out` is not touched in ProbsOnly mode.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    ctx: &Context,
    encoder: &mut wgpu::CommandEncoder,
    prob: &Problem,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    outputs: &AttentionOutput,
    lse: &Tensor,
    opts: &AttentionOptions,
    mode: Mode,
) -> Result<()> {
    let max_scratch_bytes = opts.max_scratch_bytes;
    let s = prob.shape;
    let limits = ctx.limits();
    let max_binding = limits.max_storage_buffer_binding_size;
    let max_wg = limits.max_compute_workgroups_per_dimension as usize;
    let qk_tile = kernels::tile_for(ctx.tuning().0, s.q_len);
    let pv_tile = qk_tile;

    let qk_k = ctx.kernel(
        &qk::SOURCE,
        qk::key(qk_tile).with(prob.data_constants(false)),
    )?;
    let (stats_src, norm_src) = softmax::sources(fused::subgroups_enabled(ctx, opts.subgroups));
    let stats_k = ctx.kernel(stats_src, softmax::key(stats_src))?;
    let norm_k = ctx.kernel(norm_src, softmax::key(norm_src))?;
    // pv reads no mask: only the inputs' data constants go into its key.
    let pv_k = ctx.kernel(&pv::SOURCE, pv::key(pv_tile).with(prob.input_constants()))?;
    // Bahdanau's score: the projection and score kernels, and attn_dim.
    let additive = match &prob.additive {
        Some((dim, w)) => Some((
            ctx.kernel(
                &additive::SOURCE,
                additive::key(false).with(prob.data_constants(false)),
            )?,
            ctx.kernel(
                &additive::SOURCE,
                additive::key(true).with(prob.data_constants(false)),
            )?,
            *dim,
            w,
        )),
        None => None,
    };

    // Score buffer: the caller's P itself when it fits the budget, else a scratch buffer per chunk.
    let row_bytes = s.kv_len as u64 * 4;
    let budget = max_scratch_bytes.unwrap_or(max_binding).min(max_binding);
    // One score row always fits a binding: K, which validation checked, is at least as large.
    debug_assert!(row_bytes <= max_binding);
    // Rows per chunk: bounded by the score buffer budget and by the dispatch work bound (a row
    // costs kv_len·(head_dim + value_dim) multiply-adds over QKᵀ and PV).
    let work_rows = opts
        .max_dispatch_work
        .unwrap_or(ctx.tuning().0.dispatch_work)
        / (s.kv_len * (s.head_dim + s.value_dim)) as u64;
    let max_rows = (budget / row_bytes).min(work_rows).max(1) as usize;
    let heads = s.batch * s.q_heads;
    let total_rows = heads * s.q_len;
    let chunks = plan_chunks(
        heads,
        s.q_len,
        max_rows,
        max_wg,
        max_wg * qk_tile.tm.min(pv_tile.tm) as usize,
    );
    let probs_direct = outputs
        .probs
        .as_ref()
        .filter(|p| p.bytes() <= budget)
        .cloned();
    let chunk_rows_max = chunks.iter().map(|c| c.nbh * c.rows).max().unwrap_or(1);
    let nseg = s.kv_len.div_ceil(softmax::SEG as usize);

    let mut base = prob.params();
    base.nseg = nseg as u32;

    // Every dispatch's parameters go in one uniform buffer, one aligned block each.
    let mut params: Vec<Params> = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let qk_keys = max_wg * qk_tile.tn as usize;
    for c in &chunks {
        let mut cp = base;
        cp.bh0 = c.bh0 as u32;
        cp.nbh = c.nbh as u32;
        cp.i0 = c.i0 as u32;
        cp.rows = c.rows as u32;
        let first_row = (c.bh0 * s.q_len + c.i0) as u64;
        cp.s_shift = if probs_direct.is_some() {
            0
        } else {
            first_row as u32
        };

        if let Some((_, _, dim, _)) = &additive {
            // One invocation per score: keys in pieces of 64 per workgroup, rows (per head) in
            // pieces within the grid's limit.
            for (j0, jn) in pieces(s.kv_len, max_wg * additive::WG as usize) {
                for (r0, rn) in pieces(c.rows, max_wg) {
                    let mut p = cp;
                    p.j0 = j0 as u32;
                    p.jn = jn as u32;
                    p.i0 = (c.i0 + r0) as u32;
                    p.rows = rn as u32;
                    p.count = *dim as u32;
                    params.push(p);
                    steps.push(Step::Additive {
                        param: params.len() - 1,
                        grid: [div_ceil(jn, additive::WG as usize), rn as u32, c.nbh as u32],
                    });
                }
            }
        }
        let d_pieces: Vec<_> = pieces(s.head_dim, qk::D_CHUNK as usize).collect();
        for (j0, jn) in pieces(s.kv_len, qk_keys).filter(|_| additive.is_none()) {
            for (n, &(d0, dn)) in d_pieces.iter().enumerate() {
                let mut p = cp;
                p.j0 = j0 as u32;
                p.jn = jn as u32;
                p.d0 = d0 as u32;
                p.dn = dn as u32;
                p.flags = chunk_flags(n, d_pieces.len());
                params.push(p);
                steps.push(Step::Qk {
                    param: params.len() - 1,
                    grid: [
                        div_ceil(jn, qk_tile.tn as usize),
                        div_ceil(c.rows, qk_tile.tm as usize),
                        c.nbh as u32,
                    ],
                });
            }
        }

        params.push(cp);
        let sp = params.len() - 1;
        let rows = c.nbh * c.rows;
        let y = rows.min(max_wg);
        let grid = [nseg as u32, y as u32, div_ceil(rows, y)];
        steps.push(Step::Stats { param: sp, grid });
        steps.push(Step::Normalize { param: sp, grid });
        if mode == Mode::ProbsOnly {
            steps.push(Step::EndChunk);
            if probs_direct.is_none() {
                steps.push(Step::CopyProbs {
                    dst_offset: first_row * row_bytes,
                    bytes: rows as u64 * row_bytes,
                });
            }
            continue;
        }

        for (n, (j0, jn)) in pieces(s.kv_len, pv::K_CHUNK as usize).enumerate() {
            let mut p = cp;
            p.j0 = j0 as u32;
            p.jn = jn as u32;
            p.flags = if n > 0 { FLAG_ACCUMULATE } else { 0 };
            params.push(p);
            steps.push(Step::Pv {
                param: params.len() - 1,
                grid: [
                    div_ceil(s.value_dim, pv_tile.tn as usize),
                    div_ceil(c.rows, pv_tile.tm as usize),
                    c.nbh as u32,
                ],
            });
        }
        steps.push(Step::EndChunk);
        if outputs.probs.is_some() && probs_direct.is_none() {
            steps.push(Step::CopyProbs {
                dst_offset: first_row * row_bytes,
                bytes: rows as u64 * row_bytes,
            });
        }
    }
    debug_assert!(chunks.iter().map(|c| c.nbh * c.rows).sum::<usize>() == total_rows);

    // The projections' dispatches: rows of Q, then of K, in pieces within the grid's limit.
    let mut projections = Vec::new();
    if let Some((_, _, dim, _)) = &additive {
        for (is_k, rows) in [
            (false, heads * s.q_len),
            (true, s.batch * s.kv_heads * s.kv_len),
        ] {
            // Tiles of 8 rows by 8 outputs (additive.wgsl).
            for (r0, rn) in pieces(rows, max_wg * 8) {
                let mut p = base;
                p.i0 = r0 as u32;
                p.rows = rows as u32;
                p.count = *dim as u32;
                params.push(p);
                projections.push((
                    is_k,
                    params.len() - 1,
                    [div_ceil(*dim, 8), div_ceil(rn, 8), 1],
                ));
            }
        }
    }
    let (param_buf, stride) = params_buffer(ctx, &params);
    let scores_bytes = chunk_rows_max as u64 * row_bytes;
    // The caller's P itself, at its offset, when it fits the budget.
    let scores_offset = probs_direct.as_ref().map_or(0, |p| p.offset());
    let scores = match &probs_direct {
        Some(p) => p.buffer().clone(),
        None => ctx.scratch_buffer(
            "wgpu-attention scores",
            scores_bytes.max(4),
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        ),
    };
    let scores_bind = match &probs_direct {
        Some(p) => p.bytes(),
        None => scores_bytes,
    };
    let partials = ctx.scratch_buffer(
        "wgpu-attention softmax partials",
        (chunk_rows_max * nseg * 8) as u64,
        wgpu::BufferUsages::STORAGE,
    );
    let (mask, kl_buf) = mask_and_lengths(ctx, prob);
    let scores_binding = || {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &scores,
            offset: scores_offset,
            size: std::num::NonZeroU64::new(scores_bind.max(4)),
        })
    };
    let kl_binding = match &kl_buf {
        Some(b) => storage_binding(b, b.size()),
        None => storage_binding(ctx.dummy_buffer(), 16),
    };
    let bg = |layout: &wgpu::BindGroupLayout, res: Vec<wgpu::BindingResource>| {
        bind_group(ctx, layout, res)
    };
    let qk_bg = bg(
        &qk_k.layout,
        vec![
            params_binding(&param_buf),
            tensor_binding(q),
            tensor_binding(k),
            scores_binding(),
            mask,
            kl_binding,
        ],
    );
    let sm_bg = bg(
        &stats_k.layout,
        vec![
            params_binding(&param_buf),
            scores_binding(),
            storage_binding(&partials, partials.size()),
            tensor_binding(lse),
        ],
    );
    let pv_bg = bg(
        &pv_k.layout,
        vec![
            params_binding(&param_buf),
            scores_binding(),
            tensor_binding(v),
            tensor_binding(&outputs.out),
        ],
    );

    // Additive: the projections (f32 [rows, attn_dim]), recorded before the chunks, and the
    // score kernel's bind group.
    let additive_bg = match &additive {
        None => None,
        Some((proj_k, score_k, dim, w)) => {
            let proj = |rows: usize, role| -> Result<wgpu::Buffer> {
                let bytes = (rows * dim * 4) as u64;
                crate::problem::fits_binding(ctx, role, bytes)?;
                Ok(ctx.scratch_buffer(
                    "wgpu-attention additive projection",
                    bytes.max(4),
                    wgpu::BufferUsages::STORAGE,
                ))
            };
            let qp = proj(heads * s.q_len, crate::error::TensorRole::Query)?;
            let kp = proj(
                s.batch * s.kv_heads * s.kv_len,
                crate::error::TensorRole::Key,
            )?;
            let zeros;
            let bias = match &w.bias {
                Some(b) => tensor_binding(b),
                None => {
                    zeros = Tensor::filled(ctx, &[*dim], 0.0)?;
                    tensor_binding(&zeros)
                }
            };
            let dummy = || storage_binding(ctx.dummy_buffer(), 16);
            let project_bg = |x: &Tensor, wt: &Tensor, y: &wgpu::Buffer| {
                bg(
                    &proj_k.layout,
                    vec![
                        params_binding(&param_buf),
                        tensor_binding(x),
                        tensor_binding(wt),
                        storage_binding(y, y.size()),
                        dummy(),
                        dummy(),
                        dummy(),
                        dummy(),
                        dummy(),
                    ],
                )
            };
            let (q_bg, k_bg) = (project_bg(q, &w.w_q, &qp), project_bg(k, &w.w_k, &kp));
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("wgpu-attention additive projections"),
                    timestamp_writes: None,
                });
                for (is_k, param, grid) in &projections {
                    let group = if *is_k { &k_bg } else { &q_bg };
                    proj_k.dispatch(&mut pass, group, &[(*param as u64 * stride) as u32], *grid);
                }
            }
            let (mask2, kl2) = mask_and_lengths(ctx, prob);
            let kl2 = match &kl2 {
                Some(b) => storage_binding(b, b.size()),
                None => dummy(),
            };
            Some((
                score_k,
                bg(
                    &score_k.layout,
                    vec![
                        params_binding(&param_buf),
                        dummy(),
                        storage_binding(&qp, qp.size()),
                        scores_binding(),
                        mask2,
                        kl2,
                        tensor_binding(&w.v_a),
                        bias,
                        storage_binding(&kp, kp.size()),
                    ],
                ),
            ))
        }
    };

    let mut pass: Option<wgpu::ComputePass> = None;
    for step in &steps {
        let (kernel, group, param, grid) = match step {
            Step::Qk { param, grid } => (&qk_k, &qk_bg, *param, *grid),
            Step::Additive { param, grid } => {
                let (k, g) = additive_bg
                    .as_ref()
                    .expect("additive steps only with the score");
                (*k, g, *param, *grid)
            }
            Step::Stats { param, grid } => (&stats_k, &sm_bg, *param, *grid),
            Step::Normalize { param, grid } => (&norm_k, &sm_bg, *param, *grid),
            Step::Pv { param, grid } => (&pv_k, &pv_bg, *param, *grid),
            Step::EndChunk => {
                pass = None;
                continue;
            }
            Step::CopyProbs { dst_offset, bytes } => {
                if let Some(p) = &outputs.probs {
                    crate::trace::copy(
                        ctx.device(),
                        ctx.queue(),
                        &scores,
                        0,
                        p.buffer(),
                        p.offset() + *dst_offset,
                        *bytes,
                    );
                    encoder.copy_buffer_to_buffer(
                        &scores,
                        0,
                        p.buffer(),
                        p.offset() + *dst_offset,
                        *bytes,
                    );
                }
                continue;
            }
        };
        let pass = pass.get_or_insert_with(|| {
            encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("wgpu-attention staged"),
                    timestamp_writes: None,
                })
                .forget_lifetime()
        });
        kernel.dispatch(pass, group, &[(param as u64 * stride) as u32], grid);
    }
    drop(pass);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(chunks: &[Chunk], heads: usize, q_len: usize) {
        let mut seen = vec![0u8; heads * q_len];
        for c in chunks {
            for bh in c.bh0..c.bh0 + c.nbh {
                for i in c.i0..c.i0 + c.rows {
                    seen[bh * q_len + i] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "every row exactly once");
    }

    #[test]
    fn whole_heads_per_chunk_when_they_fit() {
        let c = plan_chunks(10, 7, 30, 65535, 1 << 20);
        assert!(c.iter().all(|c| c.i0 == 0 && c.rows == 7 && c.nbh <= 4));
        assert_eq!(c.len(), 3);
        covers(&c, 10, 7);
    }

    #[test]
    fn row_ranges_of_one_head_when_a_head_does_not_fit() {
        let c = plan_chunks(3, 100, 30, 65535, 1 << 20);
        assert!(c.iter().all(|c| c.nbh == 1 && c.rows <= 30));
        assert_eq!(c.len(), 3 * 4);
        covers(&c, 3, 100);
    }

    #[test]
    fn dispatch_limits_bound_heads_and_rows() {
        let c = plan_chunks(10, 5, 1000, 4, 1 << 20);
        assert!(c.iter().all(|c| c.nbh <= 4));
        covers(&c, 10, 5);
        let c = plan_chunks(1, 100, 1000, 65535, 16);
        assert!(c.iter().all(|c| c.rows <= 16));
        covers(&c, 1, 100);
    }

    #[test]
    fn pieces_cover_a_range() {
        let p: Vec<_> = pieces(2500, 1024).collect();
        assert_eq!(p, vec![(0, 1024), (1024, 1024), (2048, 452)]);
    }
}
