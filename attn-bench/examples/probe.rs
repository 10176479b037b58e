//! Times a WGSL micro-kernel: how a driver compiles one access pattern, measured in isolation.
//!
//! Usage: `cargo run --release -p attn-bench --example probe -- FILE.wgsl ENTRY GX GY [REPS]`
//!
//! Bindings the probe provides (declare the ones the kernel uses):
//! - `@binding(0)`: `var<uniform>` block of 64 KiB, random values in [-1, 1)
//! - `@binding(1)`: `var<storage, read>` 16 MiB (`PROBE_MB`), random values in [-1, 1)
//!   (`PROBE_FILL=bf16`: each word two bf16 values of magnitude below 1)
//! - `@binding(2)`: `var<storage, read_write>` 16 MiB output
//!
//! The device gets SUBGROUP and SHADER_INT64 where the adapter has them. `attn-bench/examples/probes/*.py`
//! write the probes of docs/PERFORMANCE.md's optimisation log 13.
//!
//! Prints the median wall time of REPS dispatches of GX x GY workgroups (after one warm-up that
//! compiles the pipeline) and the sum of the first 4,096 output values, so that the compiler
//! cannot drop the work and two forms of one computation can be compared. `PROBE_DUMP=N` also
//! prints the first N output values (to see which invocations wrote what).

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: probe FILE.wgsl ENTRY GX GY [REPS]");
        std::process::exit(2);
    }
    let src = std::fs::read_to_string(&args[1]).expect("read shader");
    let entry = &args[2];
    let gx: u32 = args[3].parse().expect("GX");
    let gy: u32 = args[4].parse().expect("GY");
    let reps: usize = args.get(5).map(|r| r.parse().expect("REPS")).unwrap_or(5);

    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("adapter");
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: None,
        required_features: adapter.features()
            & (wgpu::Features::SUBGROUP | wgpu::Features::SHADER_INT64),
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .expect("device");

    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("probe"),
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("probe"),
        layout: None,
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });

    let mut seed = 0x2545f4914f6cdd1du64;
    let mut random = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    };
    let make = |data: &[f32], usage: wgpu::BufferUsages| {
        let buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (data.len() * 4) as u64,
            usage: usage | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        queue.write_buffer(&buf, 0, bytemuck::cast_slice(data));
        buf
    };
    let uniform = make(&random(16384), wgpu::BufferUsages::UNIFORM);
    // PROBE_MB sizes the input (default 16 MiB); PROBE_FILL=bf16 fills each word with two bf16
    // values in [-1, 1) instead of one f32, so 16-bit kernels read ordinary numbers.
    let words = std::env::var("PROBE_MB")
        .ok()
        .and_then(|m| m.parse::<usize>().ok())
        .map_or(4 << 20, |mb| mb << 18);
    let mut data = random(words);
    if std::env::var("PROBE_FILL").as_deref() == Ok("bf16") {
        for x in &mut data {
            let hi = x.to_bits() >> 16;
            let lo = (x.to_bits() >> 3) & 0x3f7f; // |value| < 1, never NaN or infinite
            *x = f32::from_bits((hi << 16) | lo);
        }
    }
    let input = make(&data, wgpu::BufferUsages::STORAGE);
    let output = make(&vec![0.0; 4 << 20], wgpu::BufferUsages::STORAGE);
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 4096 * 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });

    let layout = pipeline.get_bind_group_layout(0);
    // Only the bindings the shader declares may be in the group: try every subset in order.
    let all = [(0u32, &uniform), (1, &input), (2, &output)];
    let mut group = None;
    for mask in (1u32..8).rev() {
        let entries: Vec<wgpu::BindGroupEntry> = all
            .iter()
            .filter(|(b, _)| mask & (1 << b) != 0)
            .map(|(b, buf)| wgpu::BindGroupEntry {
                binding: *b,
                resource: buf.as_entire_binding(),
            })
            .collect();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let g = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        });
        if pollster::block_on(scope.pop()).is_none() {
            group = Some(g);
            break;
        }
    }
    let group = group.expect("bind group");

    let run = || {
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        let t = Instant::now();
        queue.submit([enc.finish()]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
        t.elapsed().as_secs_f64() * 1e3
    };
    run();
    let mut times: Vec<f64> = (0..reps).map(|_| run()).collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());

    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(&output, 0, &readback, 0, 4096 * 4);
    queue.submit([enc.finish()]);
    readback.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
    let values: Vec<f32> =
        bytemuck::cast_slice::<u8, f32>(&readback.slice(..).get_mapped_range().expect("mapped"))
            .to_vec();
    let sum: f64 = values.iter().map(|&x| x as f64).sum();
    // PROBE_DUMP=N prints the first N output values: to see which invocations wrote what.
    if let Some(n) = std::env::var("PROBE_DUMP")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        println!("{:?}", &values[..n.min(values.len())]);
    }
    println!(
        "{} {entry}: median {:.3} ms (min {:.3}, max {:.3}), checksum {sum:.6e}",
        args[1],
        times[reps / 2],
        times[0],
        times[reps - 1]
    );
}
