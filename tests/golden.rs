//! Every golden case of `tests/golden/` (float64 results from an independent NumPy reference)
//! through the public API, on every variant, against the contract's tolerance: the float32 rule,
//! and for the `f16_*` and `bf16_*` cases (16-bit inputs, the output in their dtype) the
//! half-precision rule.

mod common;

use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Tolerance};

fn run(name: &str) {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let case = Case::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        case.out.is_some() && case.lse.is_some(),
        "{name}: golden file carries results"
    );
    for cfg in common::configs() {
        let opts = cfg.options();
        if !case.supports(cfg.variant) {
            // The additive score runs on staged only: elsewhere the contract is a typed error.
            let e = check::verify_blocking(common::ctx(), &case, &opts, None, Tolerance::CONTRACT)
                .unwrap_err();
            assert!(
                matches!(e, wgpu_attention::Error::Unsupported { .. }),
                "{name} on {}: {e}",
                cfg.label()
            );
            continue;
        }
        let r = check::verify_blocking(common::ctx(), &case, &opts, None, Tolerance::CONTRACT)
            .unwrap_or_else(|e| panic!("{name} on {}: {e}", cfg.label()));
        eprintln!("{}", r.line());
        assert_eq!(r.rows_checked, r.rows_total, "golden cases check every row");
        assert!(r.passed, "{}", r.line());
    }
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { run(stringify!($name)); } )*

        /// The list above is every file in tests/golden: a new file without a test fails here.
        #[test]
        fn every_golden_file_has_a_test() {
            let listed = [$(stringify!($name)),*];
            let dir = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
            let mut files: Vec<String> = std::fs::read_dir(&dir).unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".json"))
                .map(|n| n.trim_end_matches(".json").to_string())
                .collect();
            files.sort();
            for f in &files {
                assert!(listed.contains(&f.as_str()), "golden file {f}.json has no test");
            }
            assert_eq!(files.len(), listed.len());
        }
    };
}

golden!(
    additive_mask,
    bahdanau_all_steps,
    bahdanau_batch_padding,
    bahdanau_bool_mask_rows,
    bahdanau_gqa_causal,
    bahdanau_long_source,
    bahdanau_no_bias_scaled,
    bahdanau_odd_dims,
    bahdanau_seq2seq_step,
    bf16_additive_mask_broadcast,
    bf16_bool_mask_rows_masked,
    bf16_bottom_right_key_lengths,
    bf16_decode_gqa,
    bf16_head_dims_1_3,
    bf16_large_values,
    bf16_long_keys,
    bf16_odd_dims_gqa_causal,
    bf16_self_attention,
    blog_worked_example,
    bool_mask_broadcast,
    bool_mask_full_rows_masked,
    causal_bottom_right_tall,
    causal_bottom_right_wide,
    causal_top_left_square,
    causal_top_left_wide,
    custom_scale,
    f16_additive_mask_broadcast,
    f16_bool_mask_rows_masked,
    f16_bottom_right_key_lengths,
    f16_decode_gqa,
    f16_head_dims_1_3,
    f16_large_values,
    f16_long_keys,
    f16_odd_dims_gqa_causal,
    f16_self_attention,
    gqa_4_to_1,
    head_dim_1,
    head_dim_128,
    key_padding,
    kv113_d80,
    large_logits,
    mqa,
    odd_sizes_cross,
    seq_tile_minus_one,
    seq_tile_plus_one,
    single_query_decode,
    tiny_self_attention,
);

/// The additive (Bahdanau) golden files: the library's f64 reference agrees with the independent
/// one to rounding, on out, lse and P (so the GPU checks above compare against the right thing).
#[test]
fn the_reference_reproduces_the_additive_golden_files() {
    let dir = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("bahdanau_") {
            continue;
        }
        let case = wgpu_attention::case::Case::load(path.to_str().unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            matches!(
                case.score,
                Some(wgpu_attention::case::CaseScore::Additive { .. })
            ),
            "{} is an additive case",
            case.name
        );
        let r = wgpu_attention::reference::attention(&case, case.probs.is_some());
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
        let want = case.out.as_ref().expect("expected out");
        assert!(
            r.out.iter().zip(want).all(|(a, b)| close(*a, *b)),
            "{}: out",
            case.name
        );
        for (a, b) in r.lse.iter().zip(case.lse.as_ref().expect("expected lse")) {
            match b {
                Some(b) => assert!(close(*a, *b), "{}: lse {a} vs {b}", case.name),
                None => assert_eq!(*a, f64::NEG_INFINITY, "{}: lse", case.name),
            }
        }
        if let (Some(p), Some(want)) = (&r.probs, &case.probs) {
            assert!(
                p.iter().zip(want).all(|(a, b)| close(*a, *b)),
                "{}: probs",
                case.name
            );
        }
        n += 1;
    }
    assert_eq!(n, 8, "the eight bahdanau_* files of ../shared/golden");
}
