//! `attn-bench conformance` end to end: a wrong result is a failure with a repro command, exit 1,
//! and the JSON report says so.

use std::process::Command;

#[test]
fn a_wrong_result_is_a_failure_with_a_repro_command_and_exit_1() {
    let mut v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/golden/blog_worked_example.json"
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
    // The file (f32) fails, matrix case 0 passes in each dtype.
    assert!(stdout.contains("| fused | f32 | 1 | 1 |"), "{stdout}");
    assert!(stdout.contains("| fused | f16 | 1 | 0 |"), "{stdout}");
    assert!(stdout.contains("| fused | bf16 | 1 | 0 |"), "{stdout}");
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
    assert_eq!(report[0]["counts"]["fused f32"]["fail"], 1);
    assert!(report[0]["adapter"].as_str().is_some_and(|a| !a.is_empty()));
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(json);
}
