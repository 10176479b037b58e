//! Recording into your own `CommandEncoder` between your own passes: a pass of yours writes the
//! queries, the attention is recorded after it, a copy of yours reads the output, and everything
//! goes to the GPU in one submission.
//!
//! `cargo run --release --example own_encoder`

use wgpu_attention::{AttentionOptions, Context, ContextOptions, Tensor};

/// Your own kernel: fills the queries with q[i] = 0.01 * i.
const FILL: &str = r#"
@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < arrayLength(&q)) {
        q[gid.x] = 0.01 * f32(gid.x);
    }
}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = Context::new_blocking(ContextOptions::default())?;
    let device = ctx.device();
    let (b, h, l, d) = (1, 2, 8, 16);
    let n = b * h * l * d;

    // Queries in a buffer of yours (a tensor over it), keys and values uploaded.
    let q_buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("my queries"),
        size: (n * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let q = Tensor::from_buffer(q_buf.clone(), &[b, h, l, d])?;
    let kv: Vec<f32> = (0..n).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect();
    let k = Tensor::from_data(&ctx, &[b, h, l, d], &kv)?;
    let v = Tensor::from_data(&ctx, &[b, h, l, d], &kv)?;

    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("fill"),
        source: wgpu::ShaderSource::Wgsl(FILL.into()),
    });
    let fill = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("fill"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let fill_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("fill"),
        layout: &fill.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: q_buf.as_entire_binding(),
        }],
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("my readback"),
        size: (n * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });

    let mut enc = device.create_command_encoder(&Default::default());
    // 1. Your pass.
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&fill);
        pass.set_bind_group(0, &fill_group, &[]);
        pass.dispatch_workgroups((n as u32).div_ceil(64), 1, 1);
    }
    // 2. The attention, recorded (inputs are checked now; nothing is submitted).
    let res = ctx.record_attention(&mut enc, &q, &k, &v, &AttentionOptions::default())?;
    // 3. Your copy of the output.
    enc.copy_buffer_to_buffer(
        res.out.buffer(),
        res.out.offset(),
        &readback,
        0,
        (n * 4) as u64,
    );
    // One submission for all three.
    ctx.queue().submit([enc.finish()]);

    readback
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let out: Vec<f32> = bytemuck::cast_slice(&readback.slice(..).get_mapped_range()?).to_vec();

    // The same call through the blocking API, on the queries the pass wrote.
    let again = ctx
        .attention_blocking(&q, &k, &v, &AttentionOptions::default())?
        .out
        .read_blocking(&ctx)?;
    assert!(out.iter().zip(&again).all(|(a, b)| a == b));
    println!(
        "{} recorded between two passes of ours; out[0..4] = {:?}",
        res.variant,
        &out[..4]
    );
    Ok(())
}
