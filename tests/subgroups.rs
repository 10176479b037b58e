//! The fused and decode subgroup forms at every subgroup size: the probe's verdict on this device,
//! the native form at the confirmed size, the emulated form at every size of
//! `subgroups::FORM_SIZES` (the code generated for sizes this device lacks), the in-kernel check
//! that turns a broken driver promise into NaN, and the guard that the automatic choice only picks
//! sizes CI tests.
//!
//! The `sg_` tests depend on the device's subgroups; `scripts/subgroup-sweep.sh` runs them at
//! every lavapipe width (`LP_NATIVE_VECTOR_WIDTH` 64 to 2048: subgroups of 2 to 64 reported, 2 to
//! 16 run natively). The `emulated_` tests use no subgroup operation, so one width covers them.

mod common;

use common::{ctx, shape};
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::subgroups::{self, FORM_SIZES};
use wgpu_attention::{AttentionOptions, Causal, Context, ContextOptions, MaskKind, Variant};

/// Shapes that exercise a size `sg`: a block of exactly sg rows, sg ± 1 (a partial last block),
/// GQA, Dk ≠ Dv, both causal alignments, key lengths, bool and additive masks, fully masked rows.
/// Dims stay small so that even 128 lanes get the subgroup form (its generated loop is capped at
/// 512 broadcast steps per key block when emulated: `kernels::flash::EMULATED_MAX_STEPS`).
fn cases(sg: usize) -> Vec<Case> {
    let seed = sg as u64;
    vec![
        Case::random("block", shape(1, 2, 1, sg, 2 * sg + 1, 4, 4), seed)
            .with_causal(Causal::BottomRight),
        Case::random("odd", shape(2, 4, 2, sg + 1, sg - 1 + 113, 3, 5), seed + 1)
            .with_causal(Causal::TopLeft)
            .with_key_lengths(vec![sg as u32 + 7, 0])
            .with_random_mask(MaskKind::Bool, [false, true, false, false], 0.7, seed)
            .with_fully_masked_rows(&[(0, 1, 0)])
            .unwrap(),
        Case::random(
            "additive",
            shape(1, 3, 1, 2 * sg - 1, 3 * sg + 5, 8, 1),
            seed + 2,
        )
        .with_random_mask(MaskKind::Additive, [true, true, false, false], 0.8, seed)
        .with_q_scaled(8.0),
    ]
}

/// The subgroup size the probe confirmed on this device; `None`, with the reason printed, where
/// the native-form tests have nothing to run (they skip).
fn confirmed_size(c: &Context) -> Option<u32> {
    let s = subgroups::support(c);
    if s.size.is_none() {
        eprintln!("skipped: no confirmed subgroup size here ({})", s.note);
    }
    s.size
}

fn check(ctx: &Context, case: &Case, opts: &AttentionOptions, what: &str) {
    let r = check::verify_blocking(ctx, case, opts, None, Tolerance::CONTRACT)
        .unwrap_or_else(|e| panic!("{what} {}: {e}", case.name));
    eprintln!("{what}: {}", r.line());
    assert!(r.passed, "{what}: {}", r.line());
}

#[test]
fn sg_probe_confirms_a_size_no_larger_than_reported_or_says_why_not() {
    let c = ctx();
    let s = subgroups::support(c);
    let info = c.adapter_info();
    eprintln!("subgroups: {}", s.note);
    assert!(!s.note.is_empty());
    if let Some(n) = s.size {
        assert!(FORM_SIZES.contains(&n), "{}", s.note);
        assert!(s.reported.is_some_and(|r| n <= r), "{}", s.note);
        assert!(c.features().contains(wgpu::Features::SUBGROUP));
    }
    if info.name.contains("llvmpipe") && c.features().contains(wgpu::Features::SUBGROUP) {
        // lavapipe runs at most 16 lanes whatever it reports (docs/CONFORMANCE.md).
        let reported = info.subgroup_min_size;
        assert_eq!(s.reported, Some(reported));
        assert_eq!(s.size, Some(reported.min(16)), "{}", s.note);
    }
    // Cached: a second call does not probe again and says the same.
    assert_eq!(subgroups::support(c), s);
}

#[test]
fn sg_native_form_runs_at_the_confirmed_size() {
    let c = ctx();
    let Some(n) = confirmed_size(c) else {
        return;
    };
    for case in cases(n as usize) {
        for variant in [Variant::Fused, Variant::Decode] {
            let opts = AttentionOptions {
                variant,
                subgroups: Some(true),
                ..Default::default()
            };
            let how = c.explain(&case.shape(), &opts);
            assert!(
                how.contains(&format!("subgroup form, {n} lanes")) && !how.contains("emulated"),
                "{how}"
            );
            check(c, &case, &opts, &format!("{variant} native sg{n}"));
        }
    }
}

#[test]
fn emulated_form_matches_the_reference_at_every_size() {
    let c = ctx();
    for sg in FORM_SIZES {
        for case in cases(sg as usize) {
            for variant in [Variant::Fused, Variant::Decode] {
                let opts = AttentionOptions {
                    variant,
                    emulate_subgroups: Some(sg),
                    ..Default::default()
                };
                let how = c.explain(&case.shape(), &opts);
                assert!(
                    how.contains(&format!("subgroup form, {sg} lanes emulated")),
                    "{how}"
                );
                check(c, &case, &opts, &format!("{variant} emulated sg{sg}"));
            }
        }
    }
}

/// Thousands of keys at the sizes lavapipe cannot run natively: many key blocks, several
/// dispatches' worth of the fused form's key chunks, and the decode splits.
#[test]
fn emulated_form_is_right_on_long_key_sequences() {
    let c = ctx();
    for sg in [32u32, 64] {
        let case = Case::random("long", shape(1, 4, 2, 3, 4100, 16, 16), 5 + sg as u64)
            .with_causal(Causal::BottomRight)
            .with_key_lengths(vec![4001]);
        for variant in [Variant::Fused, Variant::Decode] {
            let opts = AttentionOptions {
                variant,
                emulate_subgroups: Some(sg),
                ..Default::default()
            };
            check(c, &case, &opts, &format!("{variant} emulated sg{sg} long"));
        }
    }
}

#[test]
fn emulated_size_too_large_for_the_dims_takes_the_workgroup_form_and_says_why() {
    let c = ctx();
    let case = Case::random("wide", shape(1, 2, 2, 70, 90, 128, 128), 3);
    let opts = AttentionOptions {
        variant: Variant::Fused,
        emulate_subgroups: Some(64),
        ..Default::default()
    };
    let how = c.explain(&case.shape(), &opts);
    assert!(
        how.contains("workgroup-memory form") && how.contains("broadcast steps"),
        "{how}"
    );
    check(c, &case, &opts, "fused, too wide for 64 lanes");
}

#[test]
fn emulated_size_outside_the_generated_sizes_is_a_typed_error() {
    let c = ctx();
    let case = Case::random("e", shape(1, 1, 1, 4, 4, 4, 4), 1);
    let (q, k, v, _) = case.upload(c).unwrap();
    for bad in [0u32, 3, 256] {
        let opts = AttentionOptions {
            emulate_subgroups: Some(bad),
            ..Default::default()
        };
        let e = c.attention_blocking(&q, &k, &v, &opts).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, wgpu_attention::Error::InvalidOption { .. })
                && msg.contains("emulate_subgroups")
                && msg.contains(&bad.to_string())
                && msg.contains("one of [2, 4, 8, 16, 32, 64, 128]"),
            "{msg}"
        );
    }
}

/// With the probe skipped, the subgroup form runs at the adapter's reported size. Where the
/// driver keeps its promise that is right; where it does not (lavapipe above width 512), every
/// element the form writes must be NaN, never plausible wrong numbers.
#[test]
fn sg_trusting_a_broken_report_gives_nan_never_wrong_numbers() {
    let probed = subgroups::support(ctx());
    let trusting = Context::new_blocking(ContextOptions {
        backends: Some(wgpu::Backends::from(common::expected_backend())),
        trust_subgroup_size: true,
        ..Default::default()
    })
    .unwrap();
    let trusted = subgroups::support(&trusting);
    let Some(n) = trusted.size else {
        eprintln!(
            "skipped: the adapter reports no size the form serves ({})",
            trusted.note
        );
        return;
    };
    let case = Case::random("trust", shape(1, 2, 1, 2 * n as usize + 3, 150, 4, 4), 9);
    for variant in [Variant::Fused, Variant::Decode] {
        let opts = AttentionOptions {
            variant,
            subgroups: Some(true),
            ..Default::default()
        };
        if probed.size == Some(n) {
            check(&trusting, &case, &opts, &format!("{variant} trusted sg{n}"));
            continue;
        }
        let (q, k, v, _) = case.upload(&trusting).unwrap();
        let got = trusting
            .attention_blocking(&q, &k, &v, &opts)
            .unwrap()
            .out
            .read_blocking(&trusting)
            .unwrap();
        let finite = got.iter().filter(|x| !x.is_nan()).count();
        assert_eq!(
            finite,
            0,
            "{variant} at an unconfirmed {n}: {finite} of {} values are not NaN",
            got.len()
        );
    }
}

/// The automatic choice may only pick the subgroup form at a size CI runs it at. The sizes CI
/// tests are read from the sweep script: natively at each width's subgroup size up to lavapipe's
/// 16 lanes, emulated at each larger reported size (the conformance suite adds those
/// configurations) and at 128 in this file.
#[test]
fn choice_only_picks_subgroup_sizes_ci_tests() {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/subgroup-sweep.sh"
    ))
    .unwrap();
    let line = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("WIDTHS=\""))
        .expect("scripts/subgroup-sweep.sh sets WIDTHS=\"...\"");
    let widths: Vec<u32> = line
        .trim_end_matches('"')
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    let mut tested: Vec<u32> = widths.iter().map(|w| w / 32).collect();
    tested.push(128); // emulated_form_matches_the_reference_at_every_size covers FORM_SIZES
    for reported in 1..=512u32 {
        // A device that keeps the promise at every size: the choice takes what the library allows.
        let s = subgroups::decide_with(reported, |_| true);
        if let Some(n) = s.size {
            assert!(
                tested.contains(&n),
                "the choice can pick the subgroup form at {n} lanes, which CI does not test \
                 (widths {widths:?} test {tested:?})"
            );
        }
    }
}

/// The decode split kernel in both of its native layouts (`Tuning::decode_dims_in_lanes`): query
/// rows in lanes, and head dims across lanes (`kernels::flash_lanes`), whichever the adapter's
/// row picks. Head dims 1, 3, 59, 111 and 256 (read element by element, or past the last lane's
/// slice), 40 (a wide-load slice that the last lanes overrun) and 128 (an exact slice of 16-element
/// loads in 16-bit), Dk ≠ Dv, groups of 1, 3 and 8 query heads (24 rows: three workgroups of 8),
/// both causal alignments, key lengths, bool and additive masks, fully masked rows, thousands of
/// keys, in f32, f16 and bf16 (rows in lanes, the layout other tests cover too, on fewer cases).
#[test]
fn sg_decode_both_layouts_match_the_reference() {
    use wgpu_attention::DType;
    let base = ctx();
    let Some(n) = confirmed_size(base) else {
        return;
    };
    let cases = |seed: u64| {
        vec![
            Case::random("d1", shape(1, 4, 4, 1, 300, 1, 1), seed),
            Case::random("d3_gqa3", shape(2, 6, 2, 1, 257, 3, 3), seed + 1)
                .with_causal(Causal::BottomRight)
                .with_key_lengths(vec![200, 1]),
            Case::random("d59_dv40", shape(1, 8, 2, 2, 513, 59, 40), seed + 2)
                .with_random_mask(MaskKind::Bool, [false, true, false, false], 0.6, seed)
                .with_fully_masked_rows(&[(0, 3, 1)])
                .unwrap(),
            Case::random("d111", shape(1, 2, 1, 3, 130, 111, 111), seed + 3)
                .with_causal(Causal::TopLeft),
            Case::random("d256", shape(1, 2, 2, 1, 100, 256, 256), seed + 4),
            Case::random("d40_gqa8", shape(1, 16, 2, 3, 777, 40, 40), seed + 5)
                .with_random_mask(MaskKind::Additive, [true, true, true, true], 0.9, seed)
                .with_q_scaled(8.0),
            Case::random("d128_long", shape(1, 8, 2, 1, 4100, 128, 128), seed + 6)
                .with_causal(Causal::BottomRight)
                .with_key_lengths(vec![4001]),
        ]
    };
    for dims in [true, false] {
        let tuning = wgpu_attention::tuning::Tuning {
            decode_dims_in_lanes: dims,
            ..*base.tuning().0
        };
        let c = Context::new_blocking(ContextOptions {
            backends: Some(wgpu::Backends::from(common::expected_backend())),
            tuning: Some(tuning),
            ..Default::default()
        })
        .unwrap();
        let opts = AttentionOptions {
            variant: Variant::Decode,
            subgroups: Some(true),
            ..Default::default()
        };
        // Every case in f32; in 16-bit the cases whose loads differ (element by element, a wide
        // slice the last lanes overrun, 16-element loads), each layout's rows all in f16 and
        // bf16 for dims across lanes, bf16 for rows in lanes. Each case is a new pipeline, and
        // the subgroup sweep runs this test at every width: this keeps it to about 20.
        let sixteen: &[&str] = if dims {
            &["d59_dv40", "d40_gqa8", "d128_long"]
        } else {
            &["d3_gqa3", "d40_gqa8"]
        };
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            for case in cases(dims as u64 * 10) {
                let wanted = match dtype {
                    DType::F32 => dims || !matches!(case.name.as_str(), "d1" | "d111" | "d256"),
                    DType::F16 => dims && sixteen.contains(&case.name.as_str()),
                    _ => sixteen.contains(&case.name.as_str()),
                };
                if !wanted {
                    continue;
                }
                let case = case.with_dtype(dtype);
                let how = c.explain(&case.shape(), &opts);
                assert_eq!(how.contains("head dims across lanes"), dims, "{how}");
                // Rows in lanes gives way to the workgroup form where its generated loop would be
                // too long (head dim 256 at 16 lanes), and says so.
                assert!(
                    how.contains(&format!("subgroup form, {n} lanes"))
                        || (!dims && how.contains("broadcast steps")),
                    "{how}"
                );
                check(&c, &case, &opts, &format!("decode {how} {dtype:?}"));
            }
        }
    }
}
