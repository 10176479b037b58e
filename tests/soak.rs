//! Soak: 10,000 calls after warm-up; resident memory and the allocator's live GPU allocations do
//! not grow. Alone in its test binary (its own process), since resident memory is per process.

mod common;

use common::{new_ctx, shape};
use wgpu_attention::case::Case;
use wgpu_attention::{AttentionOptions, Causal, Variant};

fn resident_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

/// 10,000 calls after warm-up: resident memory and the allocator's live GPU allocations do not
/// grow. The figures are printed (run with --nocapture) and recorded in docs/CONFORMANCE.md.
#[test]
fn soak_10000_calls_memory_does_not_grow() {
    let c = new_ctx();
    let shapes = [shape(1, 2, 1, 5, 33, 8, 8), shape(1, 2, 2, 1, 64, 16, 16)];
    let inputs: Vec<_> = shapes
        .iter()
        .map(|&s| Case::random("soak", s, 3).upload(&c).unwrap())
        .collect();
    let call = |n: usize| {
        let (q, k, v, opts) = &inputs[n % 2];
        let o = AttentionOptions {
            variant: Variant::CONCRETE[n % 3],
            causal: Causal::ALL[n % 3],
            return_lse: n % 5 == 0,
            ..opts.clone()
        };
        c.attention_blocking(q, k, v, &o).unwrap();
    };
    let gpu = || {
        c.device()
            .generate_allocator_report()
            .map(|r| (r.allocations.len(), r.total_allocated_bytes))
    };
    for n in 0..500 {
        call(n);
    }
    let (rss0, gpu0) = (resident_kib(), gpu());
    let t = std::time::Instant::now();
    let mut mid = None;
    for n in 0..10_000 {
        call(n);
        if n == 4_999 {
            mid = Some((resident_kib(), gpu()));
        }
    }
    let (rss1, gpu1) = (resident_kib(), gpu());
    println!(
        "soak: 10,000 calls in {:.1} s; resident {:?} KiB after warm-up, {:?} at 5,000, {:?} at 10,000; GPU (allocations, bytes) {:?}, {:?}, {:?}",
        t.elapsed().as_secs_f64(),
        rss0,
        mid.and_then(|m| m.0),
        rss1,
        gpu0,
        mid.and_then(|m| m.1),
        gpu1
    );
    if let (Some(a), Some(b)) = (gpu0, gpu1) {
        assert!(
            b.0 <= a.0 && b.1 <= a.1,
            "live GPU allocations grew: {a:?} -> {b:?}"
        );
    }
    if let (Some(a), Some(b)) = (rss0, rss1) {
        // Allow allocator noise (4 MiB), not growth per call: 10,000 calls leaking even 1 KiB
        // each would add 10 MiB.
        assert!(
            b <= a + 4096,
            "resident memory grew from {a} KiB to {b} KiB"
        );
    }
}
