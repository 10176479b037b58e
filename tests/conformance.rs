//! The conformance suite's own behaviour: the known-issue table turns failures into expected
//! ones and reports an expected failure that passes; the matrix is a pure function of size and
//! seed. (A wrong result becoming a failure with a repro command and exit 1 is tested through the
//! tool, in attn-bench/tests/conformance.rs.)

mod common;

use wgpu_attention::conformance::{self, Outcome, Settings, Size};
use wgpu_attention::known_issues::{Action, KnownIssue};
use wgpu_attention::tuning::AdapterPattern;
use wgpu_attention::DType;
use wgpu_attention::{Context, ContextOptions, Variant};

fn ctx_with(issues: Vec<KnownIssue>) -> Context {
    Context::new_blocking(ContextOptions {
        backends: Some(wgpu::Backends::from(common::expected_backend())),
        known_issues: issues,
        ..Default::default()
    })
    .unwrap()
}

fn issue(variant: Variant, action: Action) -> KnownIssue {
    KnownIssue {
        implementation: None,
        kernel: "",
        adapter: AdapterPattern::ANY,
        variant: Some(variant),
        subgroups: None,
        action,
        reason: "test row",
        link: "tests/conformance.rs",
    }
}

#[test]
fn matrix_is_a_pure_function_of_size_and_seed_and_quick_has_hundreds_of_cases() {
    let a = conformance::matrix(Size::Quick, 7);
    let b = conformance::matrix(Size::Quick, 7);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.what, y.what);
        assert_eq!(x.case.q, y.case.q);
    }
    let c = conformance::matrix(Size::Quick, 8);
    assert!(a.iter().zip(&c).any(|(x, y)| x.case.q != y.case.q));
    // Several hundred cases: problems times the configurations (at least the three variants).
    assert!(a.len() * 3 >= 200, "{}", a.len());
    assert!(conformance::matrix(Size::Full, 7).len() > a.len());
}

#[test]
fn known_issues_skip_and_expect_fail_and_report_unexpected_passes() {
    let c = ctx_with(vec![
        issue(Variant::Decode, Action::ExpectFail),
        issue(Variant::Staged, Action::Skip),
    ]);
    let set = Settings {
        only: vec![0, 1, 2],
        configs: vec!["decode".into(), "staged".into(), "fused".into()],
        dtypes: vec![DType::F32, DType::BF16],
        ..Default::default()
    };
    let r = conformance::run(&c, &set, |_, _| {});
    // Counted per configuration and dtype.
    for d in ["f32", "bf16"] {
        assert_eq!(
            r.counts[&format!("decode {d}")].unexpected_pass,
            3,
            "{}",
            r.markdown()
        );
        assert_eq!(r.counts[&format!("staged {d}")].skipped, 3);
        assert_eq!(r.counts[&format!("fused {d}")].pass, 3);
    }
    assert!(!r.counts.contains_key("fused f16"));
    // Repro lines name the dtype.
    assert!(r
        .problems
        .iter()
        .any(|p| p.dtype == DType::BF16 && p.repro.contains("--dtype bf16")));
    assert!(r.ok(), "unexpected passes are reported, not failures");
    assert!(r
        .problems
        .iter()
        .all(|p| p.outcome == Outcome::UnexpectedPass && p.detail.contains("test row")));
    assert!(r.markdown().contains("UnexpectedPass"));
}
