//! Host side of `shaders/kv_copy.wgsl`: runs of elements copied bit for bit between buffers of one
//! dtype (the KV cache's append, copy-on-write and gather).

use super::{bind_group, params_binding, params_buffer, storage_binding, KernelSource, Params};
use crate::context::Context;
use crate::dtype::DType;
use crate::error::Result;
use crate::pipeline::{Binding, PipelineKey};
use wgpu::util::DeviceExt;

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    prelude: super::COMMON_WGSL,
    name: "kv_copy",
    source: include_str!("../../shaders/kv_copy.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Params,
        Binding::Read,      // source words (a dummy when SAME)
        Binding::ReadWrite, // destination words
        Binding::Read,      // runs: (source element, destination element, length, 0)
    ],
    expand: None,
};

pub(crate) const WG: u32 = 64;

pub(crate) fn key(dtype: DType, same: bool) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![("WG", WG), ("DT", dtype.code()), ("SAME", same as u32)],
    }
}

/// One run: `len` elements from element `src` of the source to element `dst` of the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub src: u32,
    pub dst: u32,
    pub len: u32,
}

/// A buffer range in words: (buffer, byte offset, byte size).
pub(crate) type Words<'a> = (&'a wgpu::Buffer, u64, u64);

/// Records the copy of `runs` from `src` (None: within `dst`) to `dst`, both of `dtype`.
pub(crate) fn record(
    ctx: &Context,
    encoder: &mut wgpu::CommandEncoder,
    dtype: DType,
    src: Option<Words>,
    dst: Words,
    runs: &[Run],
) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let kernel = ctx.kernel(&SOURCE, key(dtype, src.is_none()))?;
    let (params, _) = params_buffer(
        ctx,
        &[Params {
            count: runs.len() as u32,
            ..Default::default()
        }],
    );
    let words: Vec<[u32; 4]> = runs.iter().map(|r| [r.src, r.dst, r.len, 0]).collect();
    let run_buf = ctx
        .device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-attention kv runs"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::STORAGE,
        });
    fn range((b, off, size): Words<'_>) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: b,
            offset: off,
            size: std::num::NonZeroU64::new(size.max(4)),
        })
    }
    let src_res = match src {
        Some(s) => range(s),
        None => storage_binding(ctx.dummy_buffer(), 16),
    };
    let bg = bind_group(
        ctx,
        &kernel.layout,
        vec![
            params_binding(&params),
            src_res,
            range(dst),
            storage_binding(&run_buf, run_buf.size()),
        ],
    );
    // Words a run covers at most (a 16-bit run may start in the middle of one).
    let span = runs
        .iter()
        .map(|r| match dtype {
            DType::F32 => r.len as usize,
            _ => (r.dst as usize + r.len as usize).div_ceil(2) - r.dst as usize / 2,
        })
        .max()
        .unwrap_or(1);
    let gx = span.div_ceil(WG as usize) as u32;
    let (gy, gz) = (
        runs.len().min(65535) as u32,
        runs.len().div_ceil(65535) as u32,
    );
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("wgpu-attention kv copy"),
        timestamp_writes: None,
    });
    kernel.dispatch(&mut pass, &bg, &[0], [gx, gy, gz]);
    Ok(())
}
