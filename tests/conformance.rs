//! The conformance suite's own behaviour: the known-issue table turns failures into expected
//! ones and reports an expected failure that passes; a wrong result becomes a failure with a
//! repro command and a non-zero exit; the matrix is a pure function of size and seed.

mod common;

use std::process::Command;

use wgpu_attention::conformance::{self, Outcome, Settings, Size};
use wgpu_attention::known_issues::{Action, KnownIssue};
use wgpu_attention::tuning::AdapterPattern;
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
        ..Default::default()
    };
    let r = conformance::run(&c, &set, |_, _| {});
    assert_eq!(r.counts["decode"].unexpected_pass, 3, "{}", r.markdown());
    assert_eq!(r.counts["staged"].skipped, 3);
    assert_eq!(r.counts["fused"].pass, 3);
    assert!(r.ok(), "unexpected passes are reported, not failures");
    assert!(r
        .problems
        .iter()
        .all(|p| p.outcome == Outcome::UnexpectedPass && p.detail.contains("test row")));
    assert!(r.markdown().contains("UnexpectedPass"));
}

#[test]
fn a_wrong_result_is_a_failure_with_a_repro_command_and_exit_1() {
    let mut v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/blog_worked_example.json"
        ))
        .unwrap(),
    )
    .unwrap();
    v["out"][1] = serde_json::json!(9.6);
    let path = std::env::temp_dir().join(format!("attn_conf_wrong_{}.json", std::process::id()));
    std::fs::write(&path, v.to_string()).unwrap();
    let json = std::env::temp_dir().join(format!("attn_conf_{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_attn-bench"))
        .arg("conformance")
        .arg(&path)
        .args(["--only", "0", "--config", "fused", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("| fused | 1 | 1 |"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("Fail"))
        .expect("a failure row");
    assert!(
        line.contains("check ") && line.contains("--variant fused"),
        "{line}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report[0]["counts"]["fused"]["fail"], 1);
    assert!(report[0]["adapter"].as_str().is_some_and(|a| !a.is_empty()));
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(json);
}
