//! The decode path (Flash-Decoding): for few queries against long key sequences. The keys are
//! split over workgroups (z), so even batch 1 with few KV heads fills the device; one workgroup
//! serves all query heads of a KV head (GQA), so each K/V tile is read once per group. Each split
//! writes a partial output and (m, l); `shaders/merge.wgsl` combines them into O and lse.
//! Partial buffers hold rows · splits · (value_dim + 2) floats: they grow with q_len · kv_len /
//! keys-per-split, which is why the automatic choice keeps this path to short query blocks.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::fused::flash_bind_group;
use crate::kernels::{
    bind_group, flash, merge, params_binding, params_buffer, storage_binding, tensor_binding,
};
use crate::problem::Problem;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Keys per split and the number of splits. The workgroup-memory and rows forms take the split
/// the workgroup form's per-dispatch budget allows. The dims-across-lanes form (`lanes`: its
/// subgroup size) runs one straight-line loop trip per block of SG keys, so it could take far more
/// keys per workgroup; it takes enough splits for about 64 workgroups in all (each split costs a
/// prologue, an epilogue and merge traffic), never fewer keys than that budget and never
/// more keys than `flash::subgroup_keys_per_dispatch` (lavapipe's loop limiter).
fn splits(ctx: &Context, s: &Shape, lanes: Option<u32>) -> (usize, usize) {
    let spec = flash::decode_spec(ctx.tuning().0, s.head_dim, s.value_dim);
    let mut per_split = flash::keys_per_dispatch(spec);
    if let Some(sg) = lanes {
        let heads = (s.batch * s.kv_heads).max(1);
        let want = (s.kv_len * heads)
            .div_ceil(64)
            .next_multiple_of(sg as usize);
        per_split = want.clamp(per_split, flash::subgroup_keys_per_dispatch(sg));
    }
    (per_split, s.kv_len.div_ceil(per_split))
}

/// Why the decode path cannot run this problem, if it cannot.
pub(crate) fn unsupported(ctx: &Context, s: &Shape) -> Option<String> {
    if s.head_dim > flash::MAX_DIM || s.value_dim > flash::MAX_DIM {
        return Some(format!(
            "head_dim {} and value_dim {} must be at most {}",
            s.head_dim,
            s.value_dim,
            flash::MAX_DIM
        ));
    }
    // The most splits any form takes (the dims-across-lanes form takes no more).
    let (_, n) = splits(ctx, s, None);
    if n > merge::MAX_SPLITS {
        return Some(format!(
            "kv_len {} needs {n} key splits, more than the merge handles ({})",
            s.kv_len,
            merge::MAX_SPLITS
        ));
    }
    let rows = s.batch * s.q_heads * s.q_len;
    let bytes = (rows * n * s.value_dim * 4) as u64;
    let limit = ctx.limits().max_storage_buffer_binding_size;
    if bytes > limit {
        return Some(format!(
            "its partial outputs ({bytes} bytes) exceed max_storage_buffer_binding_size {limit}; use fused for long query blocks"
        ));
    }
    let max_wg = ctx.limits().max_compute_workgroups_per_dimension as usize;
    if s.batch * s.kv_heads > max_wg {
        return Some(format!("batch · kv_heads exceeds {max_wg} workgroups"));
    }
    None
}

/// Records the split kernel and the merge.
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
    opts: &crate::options::AttentionOptions,
) -> Result<()> {
    let s = prob.shape;
    if let Some(reason) = unsupported(ctx, &s) {
        return Err(Error::Unsupported {
            variant: "decode",
            reason,
        });
    }
    let spec = flash::decode_spec(ctx.tuning().0, s.head_dim, s.value_dim);
    // The split kernel: the fused kernel in its decode mode (subgroup or workgroup-memory form).
    let group_rows = s.group() * s.q_len;
    let (split_kernel, rows_per_group, sg) =
        crate::fused::flash_kernel(ctx, prob, opts, true, group_rows, spec, 0)?;
    let merge_kernel = ctx.kernel(&merge::SOURCE, merge::key(out.dtype()))?;
    // The subgroup size where the split kernel puts the head dims across lanes.
    let lanes = sg.and_then(|(size, dims_in_lanes)| dims_in_lanes.then_some(size));
    let (per_split, nsplit) = splits(ctx, &s, lanes);
    let rows = s.batch * s.q_heads * s.q_len;

    let mut p = prob.params();
    p.j0 = 0;
    p.jn = per_split as u32;
    p.nseg = nsplit as u32;
    p.flags = 0;
    let (param_buf, _) = params_buffer(ctx, &[p]);
    let part_o_bytes = (rows * nsplit * s.value_dim * 4) as u64;
    let part_ml_bytes = (rows * nsplit * 8) as u64;
    let mk = |label, size: u64| ctx.scratch_buffer(label, size.max(4), wgpu::BufferUsages::STORAGE);
    let part_o = mk("wgpu-attention decode partial out", part_o_bytes);
    let part_ml = mk("wgpu-attention decode partial stats", part_ml_bytes);
    let split_bg = flash_bind_group(
        ctx,
        &split_kernel.layout,
        prob,
        &param_buf,
        q,
        k,
        v,
        storage_binding(&part_o, part_o_bytes),
        (&part_ml, part_ml_bytes),
        lse,
    );
    let merge_bg = bind_group(
        ctx,
        &merge_kernel.layout,
        vec![
            params_binding(&param_buf),
            storage_binding(&part_o, part_o_bytes),
            storage_binding(&part_ml, part_ml_bytes),
            tensor_binding(out),
            tensor_binding(lse),
        ],
    );
    let max_wg = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let items = merge::items(rows, s.value_dim, out.dtype());
    let groups = items.div_ceil(merge::WG as usize);
    let (mx, my) = (groups.min(max_wg), groups.div_ceil(max_wg));

    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("wgpu-attention decode"),
        timestamp_writes: None,
    });
    split_kernel.dispatch(
        &mut pass,
        &split_bg,
        &[0],
        [
            group_rows.div_ceil(rows_per_group) as u32,
            (s.batch * s.kv_heads) as u32,
            nsplit as u32,
        ],
    );
    merge_kernel.dispatch(&mut pass, &merge_bg, &[0], [mx as u32, my as u32, 1]);
    Ok(())
}
