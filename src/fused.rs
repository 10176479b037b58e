//! The fused path (`shaders/flash.wgsl`): one kernel, online softmax, O and lse written once.
//! Its only buffers besides the inputs and outputs are an (m, l) pair per query row and the
//! parameter blocks: nothing grows with q_len · kv_len. Also the shared host side of the decode
//! path, which runs the same kernel in its split-KV form.

use crate::context::Context;
use crate::error::Result;
use crate::kernels::{
    bind_group, chunk_flags, flash, flash_lanes, mask_and_lengths, params_binding, params_buffer,
    storage_binding, tensor_binding,
};
use crate::options::AttentionOptions;
use crate::problem::Problem;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Whether kernels may use subgroup operations: the adapter has SUBGROUP and the caller did not
/// turn them off with `subgroups: Some(false)` or, when that is `None`,
/// `WGPU_ATTENTION_SUBGROUPS=0` (or `false`).
pub(crate) fn subgroups_enabled(ctx: &Context, subgroups: Option<bool>) -> bool {
    let wanted = subgroups.unwrap_or_else(|| {
        !std::env::var("WGPU_ATTENTION_SUBGROUPS").is_ok_and(|v| v == "0" || v == "false")
    });
    wanted && ctx.features().contains(wgpu::Features::SUBGROUP)
}

/// The subgroup size the subgroup form of the fused kernel runs with: where subgroups are enabled
/// and the subgroup probe confirmed a size on this device ([`crate::subgroups::support`]; never
/// the adapter's report alone). The fused kernel's literal-lane broadcasts need the size at
/// compile time; the softmax reductions do not, and run on any size.
pub(crate) fn subgroup_size(ctx: &Context, subgroups: Option<bool>) -> Option<u32> {
    if !subgroups_enabled(ctx, subgroups) {
        return None;
    }
    crate::subgroups::support(ctx).size
}

/// How a fused or decode call runs its flash kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FlashForm {
    /// The subgroup form at `size` lanes with `rows` rows per invocation; `emulated`: its
    /// broadcasts through workgroup memory (`AttentionOptions::emulate_subgroups`).
    Subgroup {
        size: u32,
        rows: u32,
        emulated: bool,
        /// The decode form with head dims across lanes (`kernels::flash_lanes`): `rows` are the
        /// workgroup's, each lane holds all of them.
        dims_in_lanes: bool,
    },
    /// The workgroup-memory form, and why the subgroup form was not taken.
    Workgroup { why: String },
}

impl FlashForm {
    /// In words, for `AttentionOutput::kernel`.
    pub(crate) fn describe(&self) -> String {
        match self {
            FlashForm::Subgroup {
                size,
                rows,
                dims_in_lanes: true,
                ..
            } => format!(
                "subgroup form, {size} lanes, head dims across lanes, {rows} row{} per workgroup",
                if *rows == 1 { "" } else { "s" }
            ),
            FlashForm::Subgroup {
                size,
                rows,
                emulated,
                ..
            } => format!(
                "subgroup form, {size} lanes{}, {rows} row{} per invocation",
                if *emulated {
                    " emulated through workgroup memory"
                } else {
                    ""
                },
                if *rows == 1 { "" } else { "s" }
            ),
            FlashForm::Workgroup { why } => format!("workgroup-memory form ({why})"),
        }
    }
}

/// The form of the flash kernel for a problem: the emulated subgroup form where the caller asks
/// for it, else the subgroup form where the probe confirmed a size and the generated loop is not
/// too long for these dims, else the workgroup-memory form, with the reason. `rows`: query rows
/// per head (fused) or per key/value head (decode). The decode form on native subgroups puts the
/// head dims across lanes where [`decode_dims_in_lanes`] says so.
pub(crate) fn flash_form(
    ctx: &Context,
    s: &Shape,
    subgroups: Option<bool>,
    emulate: Option<u32>,
    rows: usize,
    decode: bool,
) -> FlashForm {
    let (sg, emulated) = match emulate {
        Some(sg) => (sg, true),
        None => {
            if !subgroups_enabled(ctx, subgroups) {
                return FlashForm::Workgroup {
                    why: "subgroups off or not on this adapter".into(),
                };
            }
            let support = crate::subgroups::support(ctx);
            match support.size {
                Some(sg) => (sg, false),
                None => {
                    return FlashForm::Workgroup {
                        why: format!("subgroup size: {}", support.note),
                    }
                }
            }
        }
    };
    if decode && !emulated && decode_dims_in_lanes(ctx) {
        return FlashForm::Subgroup {
            size: sg,
            rows: flash_lanes::rows(rows),
            emulated: false,
            dims_in_lanes: true,
        };
    }
    let max_steps = if emulated {
        flash::EMULATED_MAX_STEPS
    } else {
        flash::SUBGROUP_MAX_STEPS
    };
    match flash::subgroup_rows(ctx.tuning().0, sg, s.head_dim, s.value_dim, rows, max_steps) {
        Some(r) => FlashForm::Subgroup {
            size: sg,
            rows: r,
            emulated,
            dims_in_lanes: false,
        },
        None => FlashForm::Workgroup {
            why: format!(
                "at {sg} lanes, head dim {} and value dim {} need {} broadcast steps per key \
                 block, more than the {}subgroup form's {max_steps}",
                s.head_dim,
                s.value_dim,
                sg as usize * (s.head_dim.div_ceil(4) + s.value_dim.div_ceil(4)),
                if emulated { "emulated " } else { "" }
            ),
        },
    }
}

/// Whether the decode split kernel on native subgroups puts the head dims across lanes
/// (`kernels::flash_lanes`) instead of query rows: where the tuning row asks for it.
/// `WGPU_ATTENTION_DECODE_LANES=dims` or `rows` overrides the tuning (for side-by-side
/// measurements).
pub(crate) fn decode_dims_in_lanes(ctx: &Context) -> bool {
    match std::env::var("WGPU_ATTENTION_DECODE_LANES").as_deref() {
        Ok("dims") => true,
        Ok("rows") => false,
        _ => ctx.tuning().0.decode_dims_in_lanes,
    }
}

/// Whether the subgroup form reads K and V 8 elements at a time: where the tuning row asks for it
/// and, for f32 data (read as `vec4<u64>`), the device has SHADER_INT64. `WGPU_ATTENTION_WIDE_LOADS=0` or `1` overrides the tuning
/// (for side-by-side measurements).
/// 16-bit data is read as four 32-bit words per 8 elements, which needs no feature.
pub(crate) fn wide_loads(ctx: &Context, dtype: crate::dtype::DType) -> u32 {
    let env = std::env::var("WGPU_ATTENTION_WIDE_LOADS");
    let wanted = match env.as_deref() {
        Ok("0") | Ok("false") => false,
        Ok("1") | Ok("true") | Ok("8") => true,
        _ => ctx.tuning().0.fused_wide_loads,
    };
    let int64 = ctx.features().contains(wgpu::Features::SHADER_INT64);
    match (wanted, dtype) {
        (false, _) => 0,
        (true, crate::dtype::DType::F32) => int64 as u32,
        // 16-bit rows: 16 elements a load as vec4<u64> where the device has INT64 (unless
        // `WGPU_ATTENTION_WIDE_LOADS=8` keeps them at 8, as vec4<u32>), else 8.
        (true, _) if int64 && env.as_deref() != Ok("8") => 2,
        (true, _) => 1,
    }
}

/// Whether the fused kernel is specialised for these dims.
pub(crate) fn supports(s: &Shape) -> bool {
    s.head_dim <= flash::MAX_DIM && s.value_dim <= flash::MAX_DIM
}

/// The bind group of the flash kernel (both forms): `o` and `ml` are the output and per-row
/// state (fused) or the partial buffers (decode).
#[allow(clippy::too_many_arguments)]
pub(crate) fn flash_bind_group(
    ctx: &Context,
    layout: &wgpu::BindGroupLayout,
    prob: &Problem,
    params: &wgpu::Buffer,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: wgpu::BindingResource,
    ml: (&wgpu::Buffer, u64),
    lse: &Tensor,
) -> wgpu::BindGroup {
    let (mask, kl_buf) = mask_and_lengths(ctx, prob);
    let (kl, kl_bytes) = match &kl_buf {
        Some(b) => (b, b.size()),
        None => (ctx.dummy_buffer(), 16),
    };
    let table_buf = prob.paged.as_ref().map(|pg| {
        ctx.buffer_with_data(
            "wgpu-attention kv block table",
            wgpu::BufferUsages::STORAGE,
            bytemuck::cast_slice(&pg.table),
        )
    });
    let (bt, bt_bytes) = match &table_buf {
        Some(b) => (b, b.size()),
        None => (ctx.dummy_buffer(), 16),
    };
    bind_group(
        ctx,
        layout,
        vec![
            params_binding(params),
            tensor_binding(q),
            tensor_binding(k),
            tensor_binding(v),
            o,
            storage_binding(ml.0, ml.1),
            tensor_binding(lse),
            mask,
            storage_binding(kl, kl_bytes),
            storage_binding(bt, bt_bytes),
        ],
    )
}

/// What [`flash_kernel`] returns: the kernel, the rows one workgroup covers, and for the subgroup
/// form its size and whether it puts the head dims across lanes.
pub(crate) type FlashKernel = (
    std::sync::Arc<crate::pipeline::Kernel>,
    usize,
    Option<(u32, bool)>,
);

/// The flash kernel for a fused or decode call, in the form [`flash_form`] picks (else the
/// workgroup-memory form of `spec`). Returns the kernel, the rows each workgroup covers (of
/// `rows` per head, or per key/value head for decode) and, for the subgroup form, its subgroup
/// size and whether it puts the head dims across lanes.
/// `odt`: the dtype code of a 16-bit O the subgroup form writes itself (0: an f32 O; only where
/// [`direct_16bit`] allows it).
pub(crate) fn flash_kernel(
    ctx: &Context,
    prob: &Problem,
    opts: &AttentionOptions,
    decode: bool,
    rows: usize,
    spec: flash::Spec,
    odt: u32,
) -> Result<FlashKernel> {
    let s = prob.shape;
    Ok(
        match flash_form(
            ctx,
            &s,
            opts.subgroups,
            opts.emulate_subgroups,
            rows,
            decode,
        ) {
            FlashForm::Subgroup {
                size,
                rows: r,
                emulated,
                dims_in_lanes,
            } => {
                let key = flash::subgroup_key(
                    size,
                    r,
                    decode,
                    s.head_dim,
                    s.value_dim,
                    prob.params().mask_kind,
                    wide_loads(ctx, prob.dtype),
                    emulated,
                )
                .with(prob.data_constants(false))
                .with(paged_constant(prob))
                .with(odt_constant(odt));
                // Dims across lanes: each workgroup covers r rows, not r per lane.
                let (key, covered) = if dims_in_lanes {
                    (key.with(vec![("DL", 1)]), r)
                } else {
                    (key, size * r)
                };
                (
                    ctx.kernel(&flash::SUBGROUP_SOURCE, key)?,
                    covered as usize,
                    Some((size, dims_in_lanes)),
                )
            }
            FlashForm::Workgroup { .. } => (
                ctx.kernel(
                    &flash::SOURCE,
                    flash::key(spec)
                        .with(prob.data_constants(true))
                        .with(paged_constant(prob))
                        .with(odt_constant(odt)),
                )?,
                spec.bq as usize,
                None,
            ),
        },
    )
}

/// ODT where the kernel writes a 16-bit O itself (absent, so 0, for an f32 O).
fn odt_constant(odt: u32) -> Vec<(&'static str, u32)> {
    if odt != 0 {
        vec![("ODT", odt)]
    } else {
        Vec::new()
    }
}

/// Whether the fused path writes a 16-bit O itself for this problem, with no f32 scratch copy and
/// no pack pass: where its kernel (the subgroup form with rows in lanes, native or emulated, or
/// the workgroup-memory form) takes the keys in one chunk, so it never reads O back to
/// accumulate, and the value dim is a multiple of 4, so every row is whole pairs of words and no
/// two invocations write one word. Elsewhere it writes an f32 O that the caller packs.
pub(crate) fn direct_16bit(ctx: &Context, prob: &Problem, opts: &AttentionOptions) -> bool {
    let s = prob.shape;
    if s.value_dim % 4 != 0 || s.kv_len == 0 || !supports(&s) {
        return false;
    }
    match flash_form(
        ctx,
        &s,
        opts.subgroups,
        opts.emulate_subgroups,
        s.q_len,
        false,
    ) {
        FlashForm::Subgroup {
            size,
            dims_in_lanes: false,
            ..
        } => s.kv_len <= flash::subgroup_keys_per_dispatch(size),
        FlashForm::Subgroup { .. } => false,
        FlashForm::Workgroup { .. } => {
            let spec = flash::spec(ctx.tuning().0, s.head_dim, s.value_dim);
            s.kv_len <= flash::keys_per_dispatch(spec)
        }
    }
}

/// PAGED = 1 where K and V are a KV cache's pools (absent, so 0, otherwise).
fn paged_constant(prob: &Problem) -> Vec<(&'static str, u32)> {
    if prob.paged.is_some() {
        vec![("PAGED", 1)]
    } else {
        Vec::new()
    }
}

/// Records the fused kernel: for each group of heads, one dispatch per key chunk, in order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    ctx: &Context,
    encoder: &mut wgpu::CommandEncoder,
    prob: &Problem,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    opts: &AttentionOptions,
) -> Result<()> {
    let s = prob.shape;
    let max_dispatch_work = opts.max_dispatch_work;
    let spec = flash::spec(ctx.tuning().0, s.head_dim, s.value_dim);
    // A 16-bit `out` is written directly (the caller checked `direct_16bit`).
    let odt = out.dtype().code();
    debug_assert!(odt == 0 || direct_16bit(ctx, prob, opts));
    let (kernel, rows_per_group, subgroup) =
        flash_kernel(ctx, prob, opts, false, s.q_len, spec, odt)?;
    let kc = match subgroup {
        Some((sg, _)) => flash::subgroup_keys_per_dispatch(sg),
        None => flash::keys_per_dispatch(spec),
    };
    let max_wg = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let heads = s.batch * s.q_heads;
    let key_chunks: Vec<(usize, usize)> = (0..s.kv_len)
        .step_by(kc)
        .map(|j0| (j0, kc.min(s.kv_len - j0)))
        .collect();
    let base = prob.params();
    let mut params = Vec::new();
    let mut grids = Vec::new();
    // Bound each dispatch's work: rows of one key chunk cost kc·(dk + dv) multiply-adds each.
    let bound = max_dispatch_work.unwrap_or(ctx.tuning().0.dispatch_work);
    let per_row = (kc.min(s.kv_len) * (s.head_dim + s.value_dim)) as u64;
    let rows_budget = (bound / per_row.max(1)).max(1) as usize;
    let (head_step, row_step) = if rows_budget >= s.q_len {
        ((rows_budget / s.q_len).clamp(1, max_wg), s.q_len)
    } else {
        // Whole workgroups of rows, at least one.
        (1, (rows_budget / rows_per_group).max(1) * rows_per_group)
    };
    for bh0 in (0..heads).step_by(head_step) {
        let nbh = head_step.min(heads - bh0);
        for i0 in (0..s.q_len).step_by(row_step) {
            let nrows = row_step.min(s.q_len - i0);
            for (n, &(j0, jn)) in key_chunks.iter().enumerate() {
                let mut p = base;
                p.bh0 = bh0 as u32;
                p.nbh = nbh as u32;
                p.rows = s.q_len as u32;
                p.i0 = i0 as u32;
                p.j0 = j0 as u32;
                p.jn = jn as u32;
                p.flags = chunk_flags(n, key_chunks.len());
                params.push(p);
                grids.push([nrows.div_ceil(rows_per_group) as u32, nbh as u32, 1]);
            }
        }
    }
    let (param_buf, stride) = params_buffer(ctx, &params);
    // (m, l) per row, only read by dispatches after the first key chunk.
    let ml_bytes = if key_chunks.len() > 1 {
        heads * s.q_len * 8
    } else {
        8
    } as u64;
    let ml = ctx.scratch_buffer(
        "wgpu-attention flash state",
        ml_bytes,
        wgpu::BufferUsages::STORAGE,
    );
    let bg = flash_bind_group(
        ctx,
        &kernel.layout,
        prob,
        &param_buf,
        q,
        k,
        v,
        tensor_binding(out),
        (&ml, ml_bytes),
        lse,
    );
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("wgpu-attention fused"),
        timestamp_writes: None,
    });
    for (n, g) in grids.iter().enumerate() {
        kernel.dispatch(&mut pass, &bg, &[(n as u64 * stride) as u32], *g);
    }
    Ok(())
}
