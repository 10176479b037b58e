//! "Is this GPU right?": run problems through the public API into NaN-poisoned outputs and
//! compare them with the f64 CPU reference, on every kernel variant.
//!
//! `cargo run --release --example verify`

use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::{AttentionOptions, Causal, Context, ContextOptions, MaskKind, Shape, Variant};

fn main() -> Result<(), wgpu_attention::Error> {
    let ctx = Context::new_blocking(ContextOptions::default())?;
    println!("adapter: {}", ctx.adapter_info().name);
    // Grouped-query attention with a key-padding mask, causal decoding alignment, odd sizes.
    let case = Case::random(
        "gqa, padding mask",
        Shape::new(2, 8, 2, 33, 301, 64, 64),
        42,
    )
    .with_causal(Causal::BottomRight)
    .with_random_mask(MaskKind::Bool, [false, true, true, false], 0.9, 7);
    let mut all_passed = true;
    for variant in Variant::CONCRETE {
        let opts = AttentionOptions::default().variant(variant).with_probs();
        // Compare 16 sampled query rows (None: every row) under the float32 rule of the contract.
        let report = check::verify_blocking(&ctx, &case, &opts, Some(16), Tolerance::CONTRACT)?;
        println!("{}", report.line());
        all_passed &= report.passed;
    }
    println!(
        "{}",
        if all_passed {
            "this GPU is right"
        } else {
            "MISMATCH"
        }
    );
    if !all_passed {
        std::process::exit(1);
    }
    Ok(())
}
