//! Seeded random differential tests against the f64 CPU reference, on every variant, with outputs
//! poisoned (NaN) before each run. Each test names the shapes and options it covers. Tile sizes
//! are 64 (QK and PV tiles), 1024 (softmax segment, PV key chunk, QK head-dim chunk).

mod common;

use common::{check_all_variants, check_with, combined_rules, ctx, shape};
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Got, Tolerance};
use wgpu_attention::reference;
use wgpu_attention::{AttentionOptions, Causal, DType, MaskKind, Tensor, Variant};

#[test]
fn odd_sizes_lq_lk_1_63_64_65_113_with_head_dims_1_3_59() {
    let mut seed = 100;
    for (lq, lk, d) in [
        (1, 1, 1),
        (1, 113, 3),
        (63, 65, 59),
        (64, 64, 3),
        (65, 63, 1),
        (113, 113, 59),
        (113, 1, 3),
    ] {
        seed += 1;
        let c = Case::random(
            format!("odd_{lq}x{lk}_d{d}"),
            shape(2, 2, 1, lq, lk, d, d),
            seed,
        );
        check_all_variants(&c, true, None);
    }
}

#[test]
fn head_dims_111_and_256_and_value_dim_differs() {
    check_all_variants(
        &Case::random("d111", shape(1, 2, 2, 70, 90, 111, 111), 11),
        false,
        None,
    );
    check_all_variants(
        &Case::random("d256", shape(1, 2, 1, 65, 130, 256, 256), 12),
        false,
        None,
    );
    check_all_variants(
        &Case::random("dk64_dv17", shape(2, 2, 2, 33, 47, 64, 17), 13),
        true,
        None,
    );
    check_all_variants(
        &Case::random("dk5_dv130", shape(1, 3, 1, 20, 66, 5, 130), 14),
        false,
        None,
    );
}

#[test]
fn head_dim_1100_spans_two_qk_dispatches() {
    // head_dim > 1024 exercises the accumulate-then-finalize split of the QK kernel.
    let c = Case::random("d1100_causal", shape(1, 1, 1, 20, 70, 1100, 8), 15)
        .with_causal(Causal::TopLeft);
    check_all_variants(&c, true, None);
}

#[test]
fn lq_differs_from_lk_both_ways_with_both_causal_alignments() {
    let mut seed = 200;
    for (lq, lk) in [(7, 300), (300, 7), (1, 129), (129, 1), (65, 200), (200, 65)] {
        for causal in Causal::ALL {
            seed += 1;
            let c = Case::random(
                format!("{lq}x{lk}_{causal}"),
                shape(1, 2, 2, lq, lk, 16, 16),
                seed,
            )
            .with_causal(causal);
            check_all_variants(&c, true, None);
        }
    }
}

#[test]
fn gqa_ratios_1_4_8_and_mqa() {
    for (hq, hkv) in [(4, 4), (8, 2), (8, 1), (16, 2)] {
        let c = Case::random(
            format!("gqa_{hq}_{hkv}"),
            shape(2, hq, hkv, 33, 70, 32, 24),
            300 + hq as u64 + hkv as u64,
        )
        .with_causal(Causal::BottomRight);
        check_all_variants(&c, false, None);
    }
}

#[test]
fn bool_masks_broadcast_over_every_dimension() {
    let mut seed = 400;
    for bc in [
        [false, false, false, false],
        [true, false, false, false],
        [false, true, false, false],
        [true, true, false, false],
        [false, true, true, false], // [batch, 1, 1, kv_len]: key padding
        [true, true, true, false],
        [true, true, false, true],
    ] {
        seed += 1;
        let c = Case::random(
            format!("bool_bc{bc:?}"),
            shape(2, 4, 2, 37, 81, 16, 16),
            seed,
        )
        .with_random_mask(MaskKind::Bool, bc, 0.6, seed);
        check_all_variants(&c, true, None);
    }
}

#[test]
fn additive_masks_broadcast_with_strong_minus_1e9() {
    let mut seed = 500;
    for bc in [
        [false, false, false, false],
        [true, false, false, false],
        [false, true, true, false],
    ] {
        seed += 1;
        let c = Case::random(
            format!("add_bc{bc:?}"),
            shape(2, 2, 2, 29, 66, 24, 24),
            seed,
        )
        .with_random_mask(MaskKind::Additive, bc, 0.8, seed);
        check_all_variants(&c, true, None);
    }
}

#[test]
fn key_lengths_including_zero_and_full() {
    let c = Case::random("keylens", shape(4, 2, 1, 30, 77, 16, 16), 600)
        .with_key_lengths(vec![77, 0, 1, 40]);
    let r = check_all_variants(&c, true, None);
    assert!(r[0].lse_max_err == Some(0.0) || r[0].lse_max_err.unwrap() < 1e-4);
}

#[test]
fn every_rule_combined_gqa_causal_keylens_bool_mask_scale() {
    let mut seed = 700;
    for causal in [Causal::TopLeft, Causal::BottomRight] {
        for kind in [MaskKind::Bool, MaskKind::Additive] {
            seed += 1;
            let c = combined_rules(
                format!("combined_{causal}_{kind:?}"),
                DType::F32,
                causal,
                kind,
                vec![70, 31],
                seed,
            );
            check_all_variants(&c, true, None);
        }
    }
}

#[test]
fn fully_masked_rows_give_zero_output_and_minus_inf_lse() {
    // Rows masked three ways: a bool mask row of zeros, bottom-right causal with q_len > kv_len,
    // and a zero key length.
    let c = Case::random("masked_rows", shape(2, 2, 2, 20, 50, 16, 16), 800)
        .with_random_mask(MaskKind::Bool, [false, false, false, false], 0.7, 800)
        .with_fully_masked_rows(&[(0, 0, 0), (1, 1, 19), (0, 1, 7)])
        .unwrap();
    let reports = check_all_variants(&c, true, None);
    for r in &reports {
        assert_eq!(r.nan_count, 0);
    }
    let tall = Case::random("tall_bottom_right", shape(1, 2, 1, 40, 10, 8, 8), 801)
        .with_causal(Causal::BottomRight);
    check_all_variants(&tall, true, None);

    // Check the values directly as well: output exactly 0 and lse exactly -inf in masked rows.
    let ctx = ctx();
    let (q, k, v, opts) = tall.upload(ctx).unwrap();
    for variant in Variant::CONCRETE {
        let out = ctx
            .attention_blocking(&q, &k, &v, &opts.clone().variant(variant).with_lse())
            .unwrap();
        let o = out.out.read_blocking(ctx).unwrap();
        let l = out.lse.unwrap().read_blocking(ctx).unwrap();
        for h in 0..2 {
            for i in 0..30 {
                // rows i < q_len - kv_len = 30 have no key under bottom-right alignment
                let row = h * 40 + i;
                assert_eq!(l[row], f32::NEG_INFINITY, "lse of masked row {row}");
                assert!(
                    o[row * 8..row * 8 + 8].iter().all(|&x| x == 0.0),
                    "output of masked row {row}"
                );
            }
        }
    }
}

#[test]
fn large_logits_and_custom_scales() {
    check_all_variants(
        &Case::random("large_logits_x30", shape(1, 2, 2, 50, 90, 32, 32), 900).with_q_scaled(30.0),
        true,
        None,
    );
    for (n, s) in [0.0, 1e-3, -2.5, 10.0].into_iter().enumerate() {
        check_all_variants(
            &Case::random(
                format!("scale_{s}"),
                shape(1, 1, 1, 17, 40, 8, 8),
                910 + n as u64,
            )
            .with_scale(s),
            true,
            None,
        );
    }
}

#[test]
fn long_keys_4100_and_20000_sampled_rows() {
    // Thousands of keys: softmax segments and PV key chunks span several dispatches, and no
    // invocation may approach lavapipe's 65,535-iteration loop limit.
    let c = Case::random(
        "keys_4100_causal_br",
        shape(1, 2, 1, 70, 4100, 64, 64),
        1000,
    )
    .with_causal(Causal::BottomRight);
    check_all_variants(&c, false, Some(24));
    let c = Case::random("keys_20000_decode", shape(1, 4, 1, 3, 20000, 64, 64), 1001)
        .with_key_lengths(vec![19_999]);
    check_all_variants(&c, false, None);
}

#[test]
fn long_queries_1030_rows() {
    let c = Case::random("queries_1030", shape(1, 2, 2, 1030, 150, 32, 32), 1100)
        .with_causal(Causal::TopLeft);
    check_all_variants(&c, false, Some(64));
}

#[test]
fn split_score_buffer_equals_unsplit_and_returns_full_probs() {
    // A tiny scratch budget forces row chunks within a head and copies of P out of scratch.
    let c = Case::random("split", shape(2, 3, 1, 70, 300, 16, 16), 1200)
        .with_causal(Causal::TopLeft)
        .with_random_mask(MaskKind::Bool, [false, true, false, false], 0.8, 1200);
    for budget in [300 * 4, 300 * 4 * 7, 300 * 4 * 70 * 2] {
        let opts = AttentionOptions {
            max_scratch_bytes: Some(budget),
            ..Default::default()
        };
        check_with(&c, &opts, true, None);
    }
    // And bit-for-bit equal to the unsplit run.
    let ctx = ctx();
    let (q, k, v, opts) = c.upload(ctx).unwrap();
    let full = ctx
        .attention_blocking(&q, &k, &v, &opts.clone().with_probs())
        .unwrap();
    let split = ctx
        .attention_blocking(
            &q,
            &k,
            &v,
            &AttentionOptions {
                max_scratch_bytes: Some(1200 * 5),
                ..opts.with_probs()
            },
        )
        .unwrap();
    assert_eq!(
        full.out.read_blocking(ctx).unwrap(),
        split.out.read_blocking(ctx).unwrap()
    );
    assert_eq!(
        full.probs.unwrap().read_blocking(ctx).unwrap(),
        split.probs.unwrap().read_blocking(ctx).unwrap()
    );
}

#[test]
fn probs_sum_to_one_and_match_reference() {
    let c = Case::random("probs", shape(1, 2, 1, 9, 33, 8, 8), 1300).with_causal(Causal::TopLeft);
    let ctx = ctx();
    let (q, k, v, opts) = c.upload(ctx).unwrap();
    let out = ctx
        .attention_blocking(&q, &k, &v, &opts.with_probs().with_lse())
        .unwrap();
    let p = out.probs.as_ref().unwrap().read_blocking(ctx).unwrap();
    for row in p.chunks(33) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "row sums to {s}");
    }
    let o = out.out.read_blocking(ctx).unwrap();
    let l = out.lse.as_ref().unwrap().read_blocking(ctx).unwrap();
    let r = reference::attention(&c, true);
    let rep = check::compare(
        "probs",
        out.variant,
        &c.shape(),
        &Got {
            out: &o,
            lse: Some(&l),
            probs: Some(&p),
        },
        &r,
        Tolerance::CONTRACT,
        wgpu_attention::DType::F32,
    );
    assert!(rep.passed, "{}", rep.line());
}

#[test]
fn poisoned_outputs_are_fully_overwritten() {
    // verify() fills outputs with NaN; here a different poison checks the same for a value that
    // the NaN scan would not catch.
    let c =
        Case::random("poison", shape(1, 3, 3, 65, 65, 33, 33), 1400).with_causal(Causal::TopLeft);
    let ctx = ctx();
    let (q, k, v, opts) = c.upload(ctx).unwrap();
    let s = c.shape();
    for variant in Variant::CONCRETE {
        let outputs = wgpu_attention::AttentionOutput {
            out: Tensor::filled(ctx, &s.out(), 12345.0).unwrap(),
            lse: Some(Tensor::filled(ctx, &s.lse(), 12345.0).unwrap()),
            probs: Some(Tensor::filled(ctx, &s.probs(), 12345.0).unwrap()),
            variant,
        };
        pollster::block_on(ctx.attention_into(
            &q,
            &k,
            &v,
            &opts.clone().variant(variant),
            &outputs,
        ))
        .unwrap();
        for t in [
            &outputs.out,
            outputs.lse.as_ref().unwrap(),
            outputs.probs.as_ref().unwrap(),
        ] {
            assert!(
                t.read_blocking(ctx).unwrap().iter().all(|&x| x != 12345.0),
                "unwritten element"
            );
        }
    }
}
