//! Host side of `shaders/pack.wgsl`: a 16-bit output written from the f32 results of the
//! attention kernels, rounded to nearest even.

use super::{bind_group, params_binding, params_buffer, tensor_binding, KernelSource, Params};
use crate::context::Context;
use crate::dtype::DType;
use crate::error::Result;
use crate::pipeline::{Binding, PipelineKey};
use crate::tensor::Tensor;

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    prelude: super::COMMON_WGSL,
    name: "pack",
    source: include_str!("../../shaders/pack.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Params,
        Binding::Read,      // f32 source
        Binding::ReadWrite, // 16-bit destination, as words
    ],
    expand: None,
};

pub(crate) const WG: u32 = 256;

pub(crate) fn key(dtype: DType) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![("WG", WG), ("ODT", dtype.code())],
    }
}

/// Records the conversion of the f32 tensor `src` into the 16-bit tensor `dst` (same number of
/// elements).
pub(crate) fn record(
    ctx: &Context,
    encoder: &mut wgpu::CommandEncoder,
    src: &Tensor,
    dst: &Tensor,
) -> Result<()> {
    debug_assert!(src.dtype() == DType::F32 && dst.dtype() != DType::F32);
    debug_assert_eq!(src.numel(), dst.numel());
    let kernel = ctx.kernel(&SOURCE, key(dst.dtype()))?;
    let (params, _) = params_buffer(
        ctx,
        &[Params {
            count: dst.numel() as u32,
            ..Default::default()
        }],
    );
    let bg = bind_group(
        ctx,
        &kernel.layout,
        vec![
            params_binding(&params),
            tensor_binding(src),
            tensor_binding(dst),
        ],
    );
    let max_wg = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let groups = dst.numel().div_ceil(2).div_ceil(WG as usize);
    let (gx, gy) = (groups.min(max_wg), groups.div_ceil(max_wg));
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("wgpu-attention pack"),
        timestamp_writes: None,
    });
    kernel.dispatch(&mut pass, &bg, &[0], [gx as u32, gy as u32, 1]);
    Ok(())
}
