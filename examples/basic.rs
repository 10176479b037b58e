//! The basic call: a context on the best adapter, three tensors, one attention call, the result
//! read back. The explainer's worked example: Q = [3 4], K = [[1 2], [2 3]], V = [[7 8], [9 10]].
//!
//! `cargo run --release --example basic`

use wgpu_attention::{AttentionOptions, Causal, Context, ContextOptions, Tensor};

fn main() -> Result<(), wgpu_attention::Error> {
    let ctx = Context::new_blocking(ContextOptions::default())?;
    println!("adapter: {}", ctx.adapter_info().name);

    // [batch, heads, len, dim], row-major f32.
    let q = Tensor::from_data(&ctx, &[1, 1, 1, 2], &[3.0, 4.0])?;
    let k = Tensor::from_data(&ctx, &[1, 1, 2, 2], &[1.0, 2.0, 2.0, 3.0])?;
    let v = Tensor::from_data(&ctx, &[1, 1, 2, 2], &[7.0, 8.0, 9.0, 10.0])?;

    let opts = AttentionOptions::default()
        .causal(Causal::None)
        .with_lse()
        .with_probs();
    let res = ctx.attention_blocking(&q, &k, &v, &opts)?;

    let out = res.out.read_blocking(&ctx)?;
    let probs = res.probs.as_ref().expect("asked for").read_blocking(&ctx)?;
    let lse = res.lse.as_ref().expect("asked for").read_blocking(&ctx)?;
    println!("variant: {}", res.variant);
    println!("out:   {out:?}"); // [8.98593, 9.98593]
    println!("probs: {probs:?}"); // [0.00704, 0.99296]
    println!("lse:   {lse:?}");
    assert!((out[0] - 8.985929).abs() < 1e-5 && (probs[1] - 0.992965).abs() < 1e-5);
    Ok(())
}
