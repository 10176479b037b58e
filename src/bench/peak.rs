//! The adapter's measured ceilings, with the project's own small kernels (`shaders/peak*.wgsl`):
//! f32 FMA throughput, f16 FMA throughput where SHADER_F16 exists, copy bandwidth.

use std::num::NonZeroU64;

use serde::Serialize;

use super::timer::{stats, Timer, TimingSource};
use crate::context::Context;
use crate::error::Result;
use crate::kernels::{peak, KernelSource, Params};

#[derive(Debug, Clone, Serialize)]
pub struct Peak {
    pub fma_f32_gflops: f64,
    pub fma_f16_gflops: Option<f64>,
    /// Bytes read plus bytes written per second.
    pub copy_gbps: f64,
    pub timing: TimingSource,
}

/// Runs `src` over `invocations` invocations `reps` times and returns the median seconds.
fn run(
    ctx: &Context,
    timer: &Timer,
    src: &KernelSource,
    invocations: u64,
    buf_src: &wgpu::Buffer,
    buf_dst: &wgpu::Buffer,
    reps: usize,
) -> Result<f64> {
    let kernel = ctx.kernel(src, peak::key(src))?;
    let params = Params {
        scale: 0.999,
        ..Default::default()
    };
    let pbuf = ctx.buffer_with_data(
        "peak params",
        wgpu::BufferUsages::UNIFORM,
        bytemuck::bytes_of(&params),
    );
    let bg = ctx.scoped("peak bind group", || {
        ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("peak"),
            layout: &kernel.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &pbuf,
                        offset: 0,
                        size: NonZeroU64::new(std::mem::size_of::<Params>() as u64),
                    }),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: buf_src.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: buf_dst.as_entire_binding(),
                },
            ],
        })
    })?;
    let groups = invocations.div_ceil(256);
    let max = ctx.limits().max_compute_workgroups_per_dimension as u64;
    let (x, y) = if groups <= max {
        (groups as u32, 1)
    } else {
        (max as u32, groups.div_ceil(max) as u32)
    };
    let mut times = Vec::new();
    for rep in 0..reps + 1 {
        let s = timer.time(ctx, |enc| {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bg, &[0]);
            pass.dispatch_workgroups(x, y, 1);
            Ok(())
        })?;
        if rep > 0 {
            times.push(s.best());
        }
    }
    Ok(stats(&times).0)
}

/// Measures the ceilings. `scale` multiplies the default problem sizes (1.0: about 0.1–0.5 s per
/// probe on lavapipe).
pub fn measure(ctx: &Context, scale: f64) -> Result<Peak> {
    let timer = Timer::new(ctx)?;
    let bytes = (64u64 << 20).min(ctx.limits().max_storage_buffer_binding_size / 16 * 16);
    let mk = |label| {
        ctx.scoped("peak buffers", || {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })
    };
    let (a, b) = (mk("peak src")?, mk("peak dst")?);
    let reps = 5;
    let inv = ((1u64 << 18) as f64 * scale).max(256.0) as u64;
    let t = run(ctx, &timer, &peak::FMA_F32, inv, &a, &b, reps)?;
    let fma_f32_gflops = (inv * peak::FLOPS_PER_INVOCATION) as f64 / t / 1e9;
    let fma_f16_gflops = if ctx.features().contains(wgpu::Features::SHADER_F16) {
        let t = run(ctx, &timer, &peak::FMA_F16, inv, &a, &b, reps)?;
        Some((inv * peak::FLOPS_PER_INVOCATION) as f64 / t / 1e9)
    } else {
        None
    };
    let t = run(ctx, &timer, &peak::COPY, bytes / 16, &a, &b, reps)?;
    let copy_gbps = 2.0 * bytes as f64 / t / 1e9;
    Ok(Peak {
        fma_f32_gflops,
        fma_f16_gflops,
        copy_gbps,
        timing: timer.source(),
    })
}
