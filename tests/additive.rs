//! Bahdanau's additive score (`AttentionOptions::additive`) against the f64 reference: odd sizes
//! (head dims 1, 3, 59; attn_dim 1, 7, 64, 512), GQA, Lq ≠ Lk both ways, long sources (1,500
//! keys), bool and additive masks, key lengths with fully masked rows, both causal alignments,
//! lse and P, in every dtype, into NaN-poisoned outputs; and the typed errors of bad weights.

mod common;

use common::ctx;
use wgpu_attention::case::{Case, CaseScore};
use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::rng::SeededRng;
use wgpu_attention::{
    AdditiveScore, AttentionOptions, Causal, DType, Error, MaskKind, Shape, Tensor, Variant,
};

/// Random weights for attn_dim `a`, scaled so that the tanh arguments are of order 1.
fn score(a: usize, d: usize, bias: bool, seed: u64) -> CaseScore {
    let mut rng = SeededRng::seed_from_u64(seed);
    let s = 1.5 / (d as f32).sqrt();
    let mut gen =
        |n: usize, s: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-s..s)).collect() };
    CaseScore::Additive {
        attn_dim: a,
        w_q: gen(a * d, s),
        w_k: gen(a * d, s),
        bias: bias.then(|| gen(a, 0.5)),
        v_a: gen(a, 1.0),
    }
}

fn check(case: &Case, probs: bool) {
    for variant in [Variant::Staged, Variant::Auto] {
        let opts = AttentionOptions {
            variant,
            return_probs: probs,
            ..Default::default()
        };
        let r = check::verify_blocking(ctx(), case, &opts, None, Tolerance::CONTRACT)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        eprintln!("{}", r.line());
        assert!(r.passed, "{}", r.line());
        assert_eq!(r.variant, "staged", "the additive score runs on staged");
    }
}

#[test]
fn odd_sizes_gqa_and_every_attn_dim_in_every_dtype() {
    let shapes = [
        (Shape::new(1, 1, 1, 1, 1, 1, 1), 1),
        (Shape::new(2, 6, 2, 7, 113, 3, 5), 7),
        (Shape::new(1, 4, 4, 65, 17, 59, 33), 64),
        (Shape::new(1, 2, 1, 9, 40, 16, 16), 512),
    ];
    for (n, &(shape, a)) in shapes.iter().enumerate() {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let mut case = Case::random(format!("additive A{a} {dtype}"), shape, 100 + n as u64)
                .with_dtype(dtype);
            case.score = Some(score(a, shape.head_dim, n % 2 == 0, 7 + n as u64));
            check(&case, shape.q_len * shape.kv_len < 10_000);
        }
    }
}

#[test]
fn long_source_masks_key_lengths_and_causal_rules() {
    let shape = Shape::new(2, 4, 2, 3, 1500, 32, 24);
    let mut case =
        Case::random("additive long source", shape, 200).with_key_lengths(vec![1500, 1001]);
    case.score = Some(score(48, 32, true, 9));
    check(&case, false);
    for causal in [Causal::TopLeft, Causal::BottomRight] {
        let shape = Shape::new(1, 2, 1, 40, 23, 8, 8);
        let mut case = Case::random("additive causal", shape, 201).with_causal(causal);
        case.score = Some(score(5, 8, false, 10));
        check(&case, true);
    }
    // Masks, and rows with no key left (key length 0): O = 0, lse = -inf, never NaN.
    for kind in [MaskKind::Bool, MaskKind::Additive] {
        let shape = Shape::new(2, 2, 2, 6, 50, 8, 8);
        let mut case = Case::random("additive masked", shape, 202)
            .with_random_mask(kind, [false, true, false, false], 0.7, 3)
            .with_key_lengths(vec![0, 31]);
        case.score = Some(score(16, 8, true, 11));
        check(&case, true);
    }
}

#[test]
fn bad_weights_are_typed_errors() {
    let shape = Shape::new(1, 2, 2, 4, 9, 8, 8);
    let case = Case::random("additive errors", shape, 300);
    let (q, k, v, _) = case.upload(ctx()).unwrap();
    let t = |shape: &[usize], dtype: DType| {
        let n = shape.iter().product();
        Tensor::from_f32(ctx(), shape, &vec![0.1; n], dtype).unwrap()
    };
    let good = AdditiveScore {
        w_q: t(&[4, 8], DType::F32),
        w_k: t(&[4, 8], DType::F32),
        bias: None,
        v_a: t(&[4], DType::F32),
    };
    let run = |score: AdditiveScore, variant: Variant| {
        ctx().attention_blocking(
            &q,
            &k,
            &v,
            &AttentionOptions::default().additive(score).variant(variant),
        )
    };
    assert!(run(good.clone(), Variant::Auto).is_ok());
    for bad in [
        AdditiveScore {
            w_q: t(&[4, 7], DType::F32),
            ..good.clone()
        },
        AdditiveScore {
            w_k: t(&[5, 8], DType::F32),
            ..good.clone()
        },
        AdditiveScore {
            v_a: t(&[3], DType::F32),
            ..good.clone()
        },
        AdditiveScore {
            bias: Some(t(&[4, 1], DType::F32)),
            ..good.clone()
        },
        AdditiveScore {
            w_q: t(&[4, 8], DType::F16),
            ..good.clone()
        },
        AdditiveScore {
            w_q: t(&[513, 8], DType::F32),
            w_k: t(&[513, 8], DType::F32),
            v_a: t(&[513], DType::F32),
            ..good.clone()
        },
    ] {
        let e = run(bad, Variant::Auto).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    option: "additive",
                    ..
                }
            ),
            "{e}"
        );
    }
    for variant in [Variant::Fused, Variant::Decode] {
        let e = run(good.clone(), variant).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    }
}
