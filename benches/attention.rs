//! Criterion benches: a group per variant, a benchmark per shape, `Throughput` in FLOPs (4·B·Hq·D
//! per kept query–key pair, so criterion's "elem/s" reads as FLOP/s). Each iteration is one
//! submit-and-wait timed on the wall clock (`iter_custom`); pipelines compile in a warm-up call
//! outside the measurement. Sized to run in a few minutes on lavapipe:
//!
//!     WGPU_BACKEND=vulkan cargo bench

use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use wgpu_attention::case::Case;
use wgpu_attention::{AttentionOptions, Causal, Context, ContextOptions, Shape, Variant};

fn shape(b: usize, hq: usize, hkv: usize, lq: usize, lk: usize, d: usize) -> Shape {
    Shape::new(b, hq, hkv, lq, lk, d, d)
}

fn attention(c: &mut Criterion) {
    let ctx = match Context::new_blocking(ContextOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("no adapter, benches skipped: {e}");
            return;
        }
    };
    eprintln!(
        "adapter: {} ({:?})",
        ctx.adapter_info().name,
        ctx.adapter_info().backend
    );
    let shapes = [
        (shape(1, 4, 4, 256, 256, 64), Causal::None),
        (shape(1, 4, 4, 256, 256, 64), Causal::TopLeft),
        (shape(1, 2, 2, 1024, 1024, 64), Causal::None),
        (shape(1, 8, 2, 1, 4096, 128), Causal::BottomRight),
    ];
    for variant in Variant::CONCRETE {
        let mut group = c.benchmark_group(format!("attention/{variant}"));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(3));
        for (s, causal) in shapes {
            let case = Case::random("bench", s, 1).with_causal(causal);
            let (q, k, v, opts) = case.upload(&ctx).expect("upload");
            let opts = AttentionOptions { variant, ..opts };
            ctx.attention_blocking(&q, &k, &v, &opts)
                .expect("warm-up run");
            group.throughput(Throughput::Elements(s.flops(causal) as u64));
            let id = format!(
                "B{}_Hq{}_Hkv{}_Lq{}_Lk{}_D{}_{}",
                s.batch, s.q_heads, s.kv_heads, s.q_len, s.kv_len, s.head_dim, causal
            );
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t = Instant::now();
                        ctx.attention_blocking(&q, &k, &v, &opts)
                            .expect("attention");
                        total += t.elapsed();
                    }
                    total
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, attention);
criterion_main!(benches);
