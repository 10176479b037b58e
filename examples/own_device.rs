//! Bringing your own `wgpu::Device` and `Queue`: an application that already has a device hands
//! it to the library, which adds its pipelines to it and captures its own errors in error scopes
//! (your uncaptured-error handler and device-lost callback stay yours).
//!
//! `cargo run --release --example own_device`

use wgpu_attention::{AttentionOptions, Causal, Context, Tensor, OPTIONAL_FEATURES};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Your own instance, adapter and device, as your application makes them.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))?;
    // Ask for the optional features the kernels can use where the adapter has them (subgroups,
    // f16, timestamps, 64-bit integers); none is required.
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("my app"),
        required_features: adapter.features() & OPTIONAL_FEATURES,
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))?;

    let ctx = Context::from_device(device.clone(), queue.clone());
    println!("adapter: {}", ctx.adapter_info().name);

    // Causal self-attention over 5 tokens, 2 heads, head dim 4.
    let (h, l, d) = (2, 5, 4);
    let data: Vec<f32> = (0..h * l * d)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let x = Tensor::from_data(&ctx, &[1, h, l, d], &data)?;
    let opts = AttentionOptions::default().causal(Causal::TopLeft);
    let res = ctx.attention_blocking(&x, &x, &x, &opts)?;
    let out = res.out.read_blocking(&ctx)?;
    // Row 0 of each head sees only key 0, so it equals value 0 exactly.
    for head in 0..h {
        let row0 = &out[head * l * d..head * l * d + d];
        let v0 = &data[head * l * d..head * l * d + d];
        assert!(row0.iter().zip(v0).all(|(a, b)| (a - b).abs() < 1e-6));
    }
    println!("{} ran; head 0 row 0 = {:?}", res.variant, &out[..d]);

    // The device is still yours: use it for your own work afterwards.
    device.poll(wgpu::PollType::wait_indefinitely())?;
    Ok(())
}
