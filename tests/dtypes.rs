//! f16 and bf16: uploads and downloads, their typed errors, the packed output's rounding, and the
//! attention contract in 16-bit data on every configuration (each test names the shapes and rules
//! it covers). 16-bit results are held to the half-precision rule (`check::Tolerance`), lse and P
//! to the float32 rule.

mod common;

use common::{check_all_variants, check_with, combined_rules, ctx, shape};
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::half::{bf16, f16};
use wgpu_attention::{
    AttentionOptions, AttentionOutput, Causal, DType, Error, MaskKind, Tensor, Variant,
};

const HALF: [DType; 2] = [DType::F16, DType::BF16];

#[test]
fn uploads_round_to_nearest_even_and_download_exactly() {
    let c = ctx();
    // Ties both ways, subnormals (f16), negative zero, and an odd count (the last word is half
    // padding).
    let data = [
        1.0 + f32::powi(2.0, -11),
        1.0 + 3.0 * f32::powi(2.0, -11),
        1.0 + f32::powi(2.0, -8),
        1.0 + 3.0 * f32::powi(2.0, -8),
        3.0e-6,
        -0.0,
        -65504.0,
    ];
    for dtype in HALF {
        let t = Tensor::from_f32(c, &[7], &data, dtype).unwrap();
        assert_eq!((t.dtype(), t.bytes(), t.storage_bytes()), (dtype, 14, 16));
        let back = t.read_blocking(c).unwrap();
        let want: Vec<f32> = data.iter().map(|&x| dtype.round(x)).collect();
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{dtype}"
        );
        let bits = pollster::block_on(t.read_bits(c)).unwrap();
        let want_bits: Vec<u16> = data.iter().map(|&x| dtype.to_bits16(x)).collect();
        assert_eq!(bits, want_bits, "{dtype}");
        let again = Tensor::from_bits(c, &[7], &bits, dtype).unwrap();
        assert_eq!(pollster::block_on(again.read_bits(c)).unwrap(), bits);
    }
    // Native half types in and out.
    let h: Vec<f16> = data.iter().map(|&x| f16::from_f32(x)).collect();
    let t = Tensor::from_f16(c, &[7], &h).unwrap();
    assert_eq!(t.read_f16_blocking(c).unwrap(), h);
    let b: Vec<bf16> = data.iter().map(|&x| bf16::from_f32(x)).collect();
    let t = Tensor::from_bf16(c, &[7], &b).unwrap();
    assert_eq!(t.read_bf16_blocking(c).unwrap(), b);
    // A filled 16-bit tensor (NaN poison stays NaN).
    let t = Tensor::filled_as(c, &[3], f32::NAN, DType::F16).unwrap();
    assert!(t.read_blocking(c).unwrap().iter().all(|x| x.is_nan()));
}

#[test]
fn values_beyond_the_type_are_typed_errors_naming_the_index() {
    let c = ctx();
    let mut data = vec![0.5f32; 6];
    data[5] = 7.0e4;
    match Tensor::from_f32(c, &[2, 3], &data, DType::F16) {
        Err(Error::NotRepresentable {
            index,
            value,
            dtype,
            ..
        }) => assert_eq!((index, value, dtype), (vec![1, 2], 7.0e4, DType::F16)),
        other => panic!("expected NotRepresentable, got {other:?}"),
    }
    // 65504 is f16's largest finite value and fits; bf16 takes 7e4.
    data[5] = 65504.0;
    Tensor::from_f32(c, &[2, 3], &data, DType::F16).unwrap();
    data[5] = 7.0e4;
    Tensor::from_f32(c, &[2, 3], &data, DType::BF16).unwrap();
    data[5] = f32::MAX;
    assert!(matches!(
        Tensor::from_f32(c, &[2, 3], &data, DType::BF16),
        Err(Error::NotRepresentable { .. })
    ));

    // Non-finite values are kept, and the non-finite scan names the tensor and index.
    let s = shape(1, 1, 1, 2, 3, 4, 4);
    let mut kd = vec![0.25f32; 12];
    kd[6] = f32::INFINITY;
    for dtype in HALF {
        let q = Tensor::from_f32(c, &s.q(), &[0.5; 8], dtype).unwrap();
        let k = Tensor::from_f32(c, &s.k(), &kd, dtype).unwrap();
        let v = Tensor::from_f32(c, &s.v(), &[1.0; 12], dtype).unwrap();
        let opts = AttentionOptions {
            check_finite: true,
            ..Default::default()
        };
        match c.attention_blocking(&q, &k, &v, &opts) {
            Err(Error::NonFiniteInput { index, value, .. }) => {
                assert_eq!((index, value), (vec![0, 0, 1, 2], f32::INFINITY))
            }
            other => panic!("{dtype}: expected NonFiniteInput, got {other:?}"),
        }
    }
}

#[test]
fn mixed_dtypes_are_typed_errors_that_name_the_tensor() {
    let c = ctx();
    let s = shape(1, 2, 1, 3, 5, 4, 4);
    let t = |dims: [usize; 4], d| Tensor::filled_as(c, &dims, 0.5, d).unwrap();
    let (q, k, v) = (
        t(s.q(), DType::F16),
        t(s.k(), DType::F16),
        t(s.v(), DType::F16),
    );
    let what = |r: wgpu_attention::Result<AttentionOutput>| match r {
        Err(Error::DTypeMismatch { what, .. }) => what,
        other => panic!("expected DTypeMismatch, got {other:?}"),
    };
    let o = AttentionOptions::default();
    assert_eq!(
        what(c.attention_blocking(&q, &t(s.k(), DType::F32), &v, &o)),
        "k"
    );
    assert_eq!(
        what(c.attention_blocking(&q, &k, &t(s.v(), DType::BF16), &o)),
        "v"
    );
    // A mask is f32 or the inputs' dtype, of either kind.
    let mask = |d| o.clone().mask(MaskKind::Additive, t([1, 1, 1, 5], d));
    assert_eq!(
        what(c.attention_blocking(&q, &k, &v, &mask(DType::BF16))),
        "mask"
    );
    for d in [DType::F32, DType::F16] {
        c.attention_blocking(&q, &k, &v, &mask(d)).unwrap();
    }
    // Outputs: O in the inputs' dtype (or f32 when asked), lse and P in f32.
    let outputs = |od, ld| AttentionOutput {
        out: t(s.out(), od),
        lse: Some(Tensor::filled_as(c, &s.lse(), 0.0, ld).unwrap()),
        probs: None,
        variant: Variant::Auto,
    };
    let into = |opts: &AttentionOptions, outs: &AttentionOutput| match c
        .attention_into_blocking(&q, &k, &v, opts, outs)
    {
        Err(Error::DTypeMismatch { what, .. }) => what,
        other => panic!("expected DTypeMismatch, got {other:?}"),
    };
    assert_eq!(into(&o, &outputs(DType::F32, DType::F32)), "out");
    assert_eq!(into(&o, &outputs(DType::F16, DType::F16)), "lse");
    let f32_out = o.clone().with_f32_output();
    assert_eq!(into(&f32_out, &outputs(DType::F16, DType::F32)), "out");
    c.attention_into_blocking(&q, &k, &v, &f32_out, &outputs(DType::F32, DType::F32))
        .unwrap();
    c.attention_into_blocking(&q, &k, &v, &o, &outputs(DType::F16, DType::F32))
        .unwrap();
    // The tensor's own dtype checks.
    assert!(matches!(
        Tensor::from_bits(c, &[2], &[0, 0], DType::F32),
        Err(Error::DTypeMismatch { .. })
    ));
    assert!(matches!(
        t(s.q(), DType::F32).read_f16_blocking(c),
        Err(Error::DTypeMismatch { .. })
    ));
    assert!(matches!(
        q.read_bf16_blocking(c),
        Err(Error::DTypeMismatch { .. })
    ));
}

/// The packed output is exactly the f32 output rounded to nearest even: the kernel's integer
/// rounding against the host's, on normal values, values near f16's largest (V up to 6e4) and
/// f16 subnormals (V below 2^-14), on every variant, with subgroups on and off. Kernels that write
/// a 16-bit O themselves are covered in each of their forms: the decode path's merge at value dim
/// 5 (one invocation a word, words across rows, an odd element count), 6 (one a word, rows of
/// whole words) and 8 (two words per 4 columns); the fused path at 8, in its subgroup form
/// (subgroups on) and its workgroup-memory form (off); at 5 and 6 the fused path is packed.
#[test]
fn packed_output_is_the_f32_output_rounded_to_nearest_even() {
    let c = ctx();
    let cases = [("normal", 1.0f32), ("large", 6.0e4), ("tiny", 3.0e-5)]
        .into_iter()
        .flat_map(|(name, factor)| [5, 6, 8].map(|dv| (name, factor, dv)));
    for (name, factor, dv) in cases {
        for dtype in HALF {
            let name = format!("{name}_dv{dv}");
            let mut case =
                Case::random(name.clone(), shape(1, 3, 1, 7, 45, 8, dv), 40).with_dtype(dtype);
            case.v
                .iter_mut()
                .for_each(|x| *x = dtype.round(*x * factor));
            let (q, k, v, opts) = case.upload(c).unwrap();
            let forms = Variant::CONCRETE
                .into_iter()
                .flat_map(|v| [Some(false), None].map(|sg| (v, sg)));
            for (variant, subgroups) in forms {
                let opts = AttentionOptions {
                    subgroups,
                    ..opts.clone().variant(variant)
                };
                let wide = c
                    .attention_blocking(&q, &k, &v, &opts.clone().with_f32_output())
                    .unwrap()
                    .out;
                assert_eq!(wide.dtype(), DType::F32);
                let packed = c.attention_blocking(&q, &k, &v, &opts).unwrap().out;
                assert_eq!(packed.dtype(), dtype);
                let want: Vec<u16> = wide
                    .read_blocking(c)
                    .unwrap()
                    .iter()
                    .map(|&x| dtype.to_bits16(x))
                    .collect();
                let got = pollster::block_on(packed.read_bits(c)).unwrap();
                assert_eq!(
                    got, want,
                    "{name} {dtype} {variant} subgroups {subgroups:?}"
                );
            }
        }
    }
}

#[test]
fn odd_sizes_1_63_65_113_with_head_dims_1_3_59_111_rows_mid_word() {
    let mut seed = 2000;
    for (lq, lk, d, dv) in [
        (1, 1, 1, 1),
        (1, 113, 3, 5),
        (63, 65, 59, 59),
        (65, 63, 1, 3),
        (113, 17, 111, 111),
    ] {
        for dtype in HALF {
            seed += 1;
            let c = Case::random(
                format!("{dtype}_odd_{lq}x{lk}_d{d}_dv{dv}"),
                shape(2, 2, 1, lq, lk, d, dv),
                seed,
            )
            .with_dtype(dtype);
            check_all_variants(&c, true, None);
        }
    }
}

#[test]
fn gqa_dk_ne_dv_both_causal_alignments_key_lengths_and_masks() {
    let mut seed = 2100;
    for dtype in HALF {
        for causal in [Causal::TopLeft, Causal::BottomRight] {
            for kind in [MaskKind::Bool, MaskKind::Additive] {
                seed += 1;
                let c = combined_rules(
                    format!("{dtype}_combined_{causal}_{kind:?}"),
                    dtype,
                    causal,
                    kind,
                    vec![70, 0],
                    seed,
                );
                check_all_variants(&c, true, None);
            }
        }
        // Lq > Lk and Lq < Lk under bottom-right alignment (rows with no key at all).
        for (lq, lk) in [(40, 10), (3, 200)] {
            seed += 1;
            let c = Case::random(
                format!("{dtype}_br_{lq}x{lk}"),
                shape(1, 4, 1, lq, lk, 16, 8),
                seed,
            )
            .with_dtype(dtype)
            .with_causal(Causal::BottomRight);
            check_all_variants(&c, true, None);
        }
    }
}

#[test]
fn fully_masked_rows_and_large_values_in_16_bit() {
    for dtype in HALF {
        let c = Case::random(
            format!("{dtype}_masked_rows"),
            shape(2, 2, 2, 20, 50, 16, 16),
            2200,
        )
        .with_dtype(dtype)
        .with_random_mask(MaskKind::Bool, [false, false, false, false], 0.7, 2200)
        .with_fully_masked_rows(&[(0, 0, 0), (1, 1, 19)])
        .unwrap();
        for r in check_all_variants(&c, true, None) {
            assert_eq!(r.nan_count, 0);
        }
        // Values up to a few hundred: logits in the thousands, V well above 1.
        let mut c = Case::random(
            format!("{dtype}_large"),
            shape(1, 2, 2, 30, 90, 32, 32),
            2201,
        )
        .with_dtype(dtype)
        .with_q_scaled(30.0);
        c.v.iter_mut().for_each(|x| *x = dtype.round(*x * 300.0));
        check_all_variants(&c, true, None);
    }
}

#[test]
fn head_dim_256_and_long_keys_4100_and_9000() {
    for dtype in HALF {
        check_all_variants(
            &Case::random(
                format!("{dtype}_d256"),
                shape(1, 2, 1, 33, 70, 256, 256),
                2300,
            )
            .with_dtype(dtype),
            false,
            None,
        );
        let c = Case::random(
            format!("{dtype}_keys_4100"),
            shape(1, 2, 1, 40, 4100, 64, 64),
            2301,
        )
        .with_dtype(dtype)
        .with_causal(Causal::BottomRight);
        check_all_variants(&c, false, Some(16));
        let c = Case::random(
            format!("{dtype}_decode_9000"),
            shape(1, 4, 1, 2, 9000, 128, 128),
            2302,
        )
        .with_dtype(dtype)
        .with_key_lengths(vec![8_999]);
        check_all_variants(&c, false, None);
    }
}

/// With `output_f32` the 16-bit inputs' result is written in f32 and meets the float32 rule (the
/// inputs are exact; only the f32 arithmetic is left).
#[test]
fn f32_output_on_request_meets_the_float32_rule() {
    for dtype in HALF {
        let c = Case::random(
            format!("{dtype}_f32_out"),
            shape(2, 4, 2, 33, 65, 24, 24),
            2400,
        )
        .with_dtype(dtype)
        .with_causal(Causal::TopLeft);
        for r in check_with(
            &c,
            &AttentionOptions::default().with_f32_output(),
            true,
            None,
        ) {
            assert_eq!(r.out_dtype, DType::F32);
            assert!(
                r.worst_ratio.is_none(),
                "the float32 rule, not the half rule"
            );
        }
    }
}

/// The half-precision rule can fail: an f16 result is not accepted against a reference that is
/// off by 3 units of roundoff, and NaN never passes.
#[test]
fn the_half_rule_rejects_errors_beyond_two_roundings() {
    let case = Case::random("rule", shape(1, 1, 1, 2, 3, 4, 4), 2500).with_dtype(DType::F16);
    let r = wgpu_attention::reference::attention(&case, false);
    let s = case.shape();
    // `reference` nudged by f units of f16 roundoff, and a comparison against `reference`.
    let nudge = |reference: &wgpu_attention::reference::Reference, f: f64| -> Vec<f32> {
        reference
            .out
            .iter()
            .map(|&x| (x * (1.0 + f * DType::F16.unit_roundoff())) as f32)
            .collect()
    };
    let compare = |out: &[f32], reference: &wgpu_attention::reference::Reference| {
        check::compare(
            "rule",
            Variant::Fused,
            &s,
            &check::Got {
                out,
                lse: None,
                probs: None,
            },
            reference,
            Tolerance::CONTRACT,
            DType::F16,
        )
    };
    // The rule allows 2u|ref| + 1e-4·max(1, max|ref|): 1.9u passes, 3u + the absolute part fails
    // where |ref| is large enough; use a large reference to make the relative part dominate.
    let mut rb = r.clone();
    rb.out = r.out.iter().map(|x| x * 1e4).collect();
    let scaled = |f: f64| nudge(&rb, f);
    let cmp = |out: &[f32]| compare(out, &rb);
    let run = |out: &[f32]| compare(out, &r);
    assert!(cmp(&scaled(1.9)).passed);
    assert!(!cmp(&scaled(3.0)).passed);
    assert!(run(&nudge(&r, 0.0)).passed);
    let mut nan = nudge(&r, 0.0);
    nan[1] = f32::NAN;
    assert!(!run(&nan).passed);
}

/// A context that unpacks f16 with the integer decode, never `unpack2x16float`.
fn integer_f16_ctx() -> wgpu_attention::Context {
    wgpu_attention::Context::new_blocking(wgpu_attention::ContextOptions {
        backends: Some(wgpu::Backends::from(common::expected_backend())),
        f16_unpack: Some(false),
        ..Default::default()
    })
    .unwrap()
}

/// f16 decoded in integer arithmetic (no `unpack2x16float`, which some adapters cannot compile):
/// the f16 golden files on every configuration, and tiny (subnormal) and large values through
/// a context that is told not to use the builtin.
#[test]
fn f16_integer_decode_passes_the_golden_files_on_every_configuration() {
    let c = integer_f16_ctx();
    assert!(!c.native_f16_unpack());
    eprintln!(
        "the shared context unpacks f16 with unpack2x16float: {}",
        ctx().native_f16_unpack()
    );
    let dir = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_string_lossy().to_string())
        .filter(|p| p.contains("/f16_"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 9);
    let mut tiny = Case::random("tiny", shape(1, 2, 1, 5, 33, 8, 8), 2600).with_dtype(DType::F16);
    tiny.k
        .iter_mut()
        .chain(&mut tiny.v)
        .for_each(|x| *x = DType::F16.round(*x * 4.0e-5));
    let mut cases: Vec<Case> = files.iter().map(|f| Case::load(f).unwrap()).collect();
    cases.push(tiny);
    for case in &cases {
        for cfg in wgpu_attention::conformance::configs(&c) {
            let r = check::verify_blocking(&c, case, &cfg.options(), None, Tolerance::CONTRACT)
                .unwrap();
            assert!(r.passed, "{}: {}", cfg.label(), r.line());
        }
    }
}

/// Every one of the 65,536 f16 bit patterns (normals, subnormals, ±0, ±infinity, NaNs) read by
/// every variant exactly, through both conversions: `unpack2x16float` where the device compiles
/// it (the shared context; lavapipe does) and the integer decode (a context told not to use the
/// builtin). V holds all patterns, one key per head, so O = 1 · V (the weights of a single key
/// are exactly 1) and the f32 output is each element as the kernel decoded it (±0 both compare
/// equal: 1 · -0 + 0 is +0; infinities and NaNs must stay non-finite).
#[test]
fn every_f16_bit_pattern_is_read_exactly_by_every_variant() {
    let integer = integer_f16_ctx();
    for c in [ctx(), &integer] {
        let how = if c.native_f16_unpack() {
            "unpack2x16float"
        } else {
            "integer decode"
        };
        let heads = 256;
        let bits: Vec<u16> = (0..=u16::MAX).collect();
        let zeros = vec![0u16; heads * 4];
        let q = Tensor::from_bits(c, &[1, heads, 1, 4], &zeros, DType::F16).unwrap();
        let k = Tensor::from_bits(c, &[1, heads, 1, 4], &zeros, DType::F16).unwrap();
        let v = Tensor::from_bits(c, &[1, heads, 1, 256], &bits, DType::F16).unwrap();
        for variant in Variant::CONCRETE {
            let opts = AttentionOptions::default()
                .variant(variant)
                .with_f32_output();
            let out = c.attention_blocking(&q, &k, &v, &opts).unwrap().out;
            let got = out.read_blocking(c).unwrap();
            for (i, (&b, &x)) in bits.iter().zip(&got).enumerate() {
                // A non-finite V element may come out as NaN (README: 0 × ±inf from the padding
                // of a key block is NaN), never as a finite number.
                let want = f16::from_bits(b).to_f32();
                assert!(
                    (!want.is_finite() && !x.is_finite()) || want == x,
                    "{variant} ({how}): pattern {b:#06x} (element {i}) read as {x:e}, expected \
                     {want:e}"
                );
            }
        }
    }
}
