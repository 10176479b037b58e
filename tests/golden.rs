//! Every golden case of `tests/golden/` (float64 results from an independent NumPy reference)
//! through the public API, on every variant, against the float32 tolerance rule.

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
        let r = check::verify_blocking(common::ctx(), &case, &opts, None, Tolerance::FLOAT32)
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
    blog_worked_example,
    bool_mask_broadcast,
    bool_mask_full_rows_masked,
    causal_bottom_right_tall,
    causal_bottom_right_wide,
    causal_top_left_square,
    causal_top_left_wide,
    custom_scale,
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
