//! `attn-bench check`: one line per case, a summary line, exit status 0 / 1 / 2.

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_attn-bench"))
}

fn golden(name: &str) -> String {
    format!("{}/../tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_all_golden_files_passes_with_exit_0() {
    let dir = format!("{}/../tests/golden", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().to_string())
        .filter(|p| p.ends_with(".json"))
        .collect();
    files.sort();
    let out = bench().arg("check").args(&files).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "{} passed, 0 failed",
            files.len() * wgpu_attention::Variant::CONCRETE.len()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("blog_worked_example") && stdout.contains("rel_l2="),
        "{stdout}"
    );
}

#[test]
fn a_wrong_expected_result_fails_with_exit_1_and_names_the_element() {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden("blog_worked_example")).unwrap())
            .unwrap();
    v["out"][1] = serde_json::json!(9.6); // the explainer's illustrative answer, not the true one
    let path = std::env::temp_dir().join(format!("attn_wrong_{}.json", std::process::id()));
    std::fs::write(&path, v.to_string()).unwrap();
    let out = bench()
        .arg("check")
        .arg(&path)
        .arg(golden("tiny_self_attention"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("[0, 0, 0, 1]"),
        "{stdout}"
    );
    let n = wgpu_attention::Variant::CONCRETE.len();
    assert!(
        stdout.contains(&format!("{n} passed, {n} failed")),
        "{stdout}"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn unreadable_or_contract_breaking_files_exit_2_with_the_reason() {
    let out = bench()
        .args(["check", "/nonexistent/case.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/case.json"));

    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden("gqa_4_to_1")).unwrap()).unwrap();
    v["kv_heads"] = serde_json::json!(3);
    let path = std::env::temp_dir().join(format!("attn_bad_{}.json", std::process::id()));
    std::fs::write(&path, v.to_string()).unwrap();
    let out = bench().arg("check").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a multiple of kv_heads"), "{stderr}");
    let _ = std::fs::remove_file(path);
}
