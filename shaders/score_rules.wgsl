// Shared by the kernels that write the staged path's score buffer (qk.wgsl, additive.wgsl): scale
// and every mask rule, applied to a raw score (the causal offset is keys.wgsl's). Put after
// common.wgsl and keys.wgsl in front of those kernels; each declares `key_lengths` and the `mask`
// input.

// Scale and every mask rule; returns MASKED for a key that takes no part.
fn finalize_score(b: u32, h: u32, i: u32, j: u32, dot: f32) -> f32 {
    var kept = true;
    if (p.causal != 0u) {
        kept = kept && (i32(j) - i32(i) <= causal_off(b));
    }
    if (p.has_key_lengths != 0u) {
        kept = kept && (j < key_lengths[b]);
    }
    var sc = clamp(p.scale * dot, -SCORE_LIMIT, SCORE_LIMIT);
    if (p.mask_kind != 0u) {
        let m = mask_1(b * p.mask_sb + h * p.mask_sh + i * p.mask_sq + j * p.mask_sk);
        if (p.mask_kind == 1u) {
            kept = kept && (m != 0.0);
        } else {
            sc = clamp(sc + m, -SCORE_LIMIT, SCORE_LIMIT);
        }
    }
    return select(MASKED, sc, kept);
}
