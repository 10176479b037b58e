//! Decoding with a paged KV cache: a prompt is appended, a few decode steps run attention over
//! the cache (each step appends the new token's key and value first), then a sequence is forked
//! and both branches decode on. Every step is compared with the f64 reference computed on the
//! host's own copy of the keys and values.
//!
//! `cargo run --release --example kv_cache`

use wgpu_attention::case::Case;
use wgpu_attention::rng::SeededRng;
use wgpu_attention::{
    AttentionOptions, Causal, Context, ContextOptions, DType, KvCache, KvCacheConfig, SeqId, Shape,
    Tensor,
};

const HQ: usize = 8;
const HKV: usize = 2;
const D: usize = 64;
const DTYPE: DType = DType::F16;

/// The host's copy of one sequence: K and V as `[kv_heads, len, D]`.
#[derive(Clone, Default)]
struct HostSeq {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

fn random(rng: &mut SeededRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| DTYPE.round(rng.random_range(-1.0f32..1.0)))
        .collect()
}

/// Appends n random positions to `seq` on the GPU and to its host copy.
fn append(
    ctx: &Context,
    cache: &mut KvCache,
    rng: &mut SeededRng,
    seq: SeqId,
    host: &mut HostSeq,
    n: usize,
) -> Result<(), wgpu_attention::Error> {
    let (k, v) = (random(rng, HKV * n * D), random(rng, HKV * n * D));
    let kt = Tensor::from_f32(ctx, &[1, HKV, n, D], &k, DTYPE)?;
    let vt = Tensor::from_f32(ctx, &[1, HKV, n, D], &v, DTYPE)?;
    cache.append(ctx, &[seq], &kt, &vt)?;
    for h in 0..HKV {
        host.k[h].extend_from_slice(&k[h * n * D..(h + 1) * n * D]);
        host.v[h].extend_from_slice(&v[h * n * D..(h + 1) * n * D]);
    }
    Ok(())
}

/// One decode step's attention for `seq` (one query per head), checked against the reference;
/// returns the largest error relative to the half-precision rule's limit.
fn attend(
    ctx: &Context,
    cache: &KvCache,
    rng: &mut SeededRng,
    seq: SeqId,
    host: &HostSeq,
) -> Result<f64, wgpu_attention::Error> {
    let q = random(rng, HQ * D);
    let qt = Tensor::from_f32(ctx, &[1, HQ, 1, D], &q, DTYPE)?;
    let out = cache.attention_blocking(ctx, &qt, &[seq], &AttentionOptions::for_cache())?;
    let got = out.out.read_blocking(ctx)?;
    let len = host.k[0].len() / D;
    let mut case = Case::random("step", Shape::new(1, HQ, HKV, 1, len, D, D), 0)
        .with_dtype(DTYPE)
        .with_causal(Causal::BottomRight);
    case.q = q;
    case.k = host.k.concat();
    case.v = host.v.concat();
    let r = wgpu_attention::reference::attention(&case, false);
    let max_ref = r.out.iter().fold(0f64, |m, x| m.max(x.abs()));
    let u = DTYPE.unit_roundoff();
    let worst = got
        .iter()
        .zip(&r.out)
        // The half-precision rule of check::Tolerance; NaN never passes.
        .map(|(&g, &e)| match (g as f64 - e).abs() {
            d if d.is_nan() => f64::INFINITY,
            d => d / (2.0 * u * e.abs() + 1e-4 * max_ref.max(1.0)),
        })
        .fold(0f64, f64::max);
    Ok(worst)
}

fn main() -> Result<(), wgpu_attention::Error> {
    let ctx = Context::new_blocking(ContextOptions::default())?;
    println!("adapter: {}", ctx.adapter_info().name);
    let mut cache = KvCache::new(
        &ctx,
        KvCacheConfig {
            max_seqs: 4,
            kv_heads: HKV,
            head_dim: D,
            value_dim: D,
            dtype: DTYPE,
            block_size: 16,
            num_blocks: 64,
        },
    )?;
    let mut rng = SeededRng::seed_from_u64(5);
    let a = cache.add_sequence()?;
    let mut host_a = HostSeq {
        k: vec![Vec::new(); HKV],
        v: vec![Vec::new(); HKV],
    };
    append(&ctx, &mut cache, &mut rng, a, &mut host_a, 37)?; // the prompt
    let mut worst = 0f64;
    for _ in 0..4 {
        append(&ctx, &mut cache, &mut rng, a, &mut host_a, 1)?;
        worst = worst.max(attend(&ctx, &cache, &mut rng, a, &host_a)?);
    }
    println!(
        "sequence {a}: {} positions in {} blocks",
        cache.len(a)?,
        cache.block_table(a)?.len()
    );
    // Fork: the branch shares every block; its first append copies the shared partial block.
    let b = cache.fork(a)?;
    let mut host_b = host_a.clone();
    println!(
        "forked {b} from {a}: {} blocks in use (no new one)",
        cache.blocks_in_use()
    );
    for _ in 0..4 {
        append(&ctx, &mut cache, &mut rng, a, &mut host_a, 1)?;
        append(&ctx, &mut cache, &mut rng, b, &mut host_b, 1)?;
        worst = worst.max(attend(&ctx, &cache, &mut rng, a, &host_a)?);
        worst = worst.max(attend(&ctx, &cache, &mut rng, b, &host_b)?);
    }
    println!(
        "after 4 more steps on each branch: {} blocks in use, {} free",
        cache.blocks_in_use(),
        cache.free_blocks()
    );
    cache.free(a)?;
    cache.free(b)?;
    let ok = worst <= 1.0 && cache.free_blocks() == 64;
    println!(
        "worst error / limit over 12 decode steps: {worst:.3}; every block back in the pool: {}",
        cache.free_blocks() == 64
    );
    println!(
        "{}",
        if ok {
            "results match the reference"
        } else {
            "MISMATCH"
        }
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
