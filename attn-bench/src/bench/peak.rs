//! The adapter's measured ceilings, with the tool's own small kernels (`attn-bench/shaders/peak*.wgsl`):
//! f32 FMA throughput, f16 FMA throughput where SHADER_F16 exists, copy bandwidth.

use serde::Serialize;

use super::timer::{stats, Timer, TimingSource};
use wgpu_attention::{Context, Result};

/// FMA loop trips per invocation: 256 x 64 FLOPs, far below lavapipe's loop limiter.
const ITERS: u32 = 256;
/// FLOPs per invocation of the FMA probes.
const FLOPS_PER_INVOCATION: u64 = ITERS as u64 * 8 * 4 * 2;

/// One probe kernel: its file, entry point and any `enable` directive it needs.
struct Probe {
    source: &'static str,
    entry: &'static str,
    enable: &'static str,
}

const FMA_F32: Probe = Probe {
    source: include_str!("../../shaders/peak.wgsl"),
    entry: "fma_f32",
    enable: "",
};
const COPY: Probe = Probe {
    source: include_str!("../../shaders/peak.wgsl"),
    entry: "copy",
    enable: "",
};
const FMA_F16: Probe = Probe {
    source: include_str!("../../shaders/peak_f16.wgsl"),
    entry: "fma_f16",
    enable: "enable f16;\n",
};

#[derive(Debug, Clone, Serialize)]
pub struct Peak {
    pub fma_f32_gflops: f64,
    pub fma_f16_gflops: Option<f64>,
    /// Bytes read plus bytes written per second.
    pub copy_gbps: f64,
    pub timing: TimingSource,
}

/// Runs `probe` over `invocations` invocations `reps` times and returns the median seconds.
fn run(
    ctx: &Context,
    timer: &Timer,
    probe: &Probe,
    invocations: u64,
    buf_src: &wgpu::Buffer,
    buf_dst: &wgpu::Buffer,
    reps: usize,
) -> Result<f64> {
    let d = ctx.device();
    let (pipeline, bg) = ctx.scoped("peak probe", || {
        let code = format!(
            "{}const ITERS: u32 = {ITERS}u;\n{}",
            probe.enable, probe.source
        );
        let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(probe.entry),
            source: wgpu::ShaderSource::Wgsl(code.into()),
        });
        // One explicit layout for every probe (an entry point that leaves a binding unused would
        // get a smaller automatic one).
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let bgl = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("peak"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, false),
            ],
        });
        let layout = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("peak"),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(probe.entry),
            layout: Some(&layout),
            module: &module,
            entry_point: Some(probe.entry),
            compilation_options: Default::default(),
            cache: None,
        });
        // The probe's parameter: the FMA multiplier (a uniform, so nothing folds it away).
        let params = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("peak params"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue()
            .write_buffer(&params, 0, bytemuck::cast_slice(&[0.999f32, 0.0, 0.0, 0.0]));
        let entries = [
            wgpu::BindGroupEntry {
                binding: 0,
                resource: params.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: buf_src.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: buf_dst.as_entire_binding(),
            },
        ];
        let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("peak"),
            layout: &bgl,
            entries: &entries,
        });
        (pipeline, bg)
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
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bg, &[]);
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
    let t = run(ctx, &timer, &FMA_F32, inv, &a, &b, reps)?;
    let fma_f32_gflops = (inv * FLOPS_PER_INVOCATION) as f64 / t / 1e9;
    let fma_f16_gflops = if ctx.features().contains(wgpu::Features::SHADER_F16) {
        let t = run(ctx, &timer, &FMA_F16, inv, &a, &b, reps)?;
        Some((inv * FLOPS_PER_INVOCATION) as f64 / t / 1e9)
    } else {
        None
    };
    let t = run(ctx, &timer, &COPY, bytes / 16, &a, &b, reps)?;
    let copy_gbps = 2.0 * bytes as f64 / t / 1e9;
    Ok(Peak {
        fma_f32_gflops,
        fma_f16_gflops,
        copy_gbps,
        timing: timer.source(),
    })
}
