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
    // Every variant on every file, except the additive (Bahdanau) ones: staged only.
    let additive = files.iter().filter(|f| f.contains("bahdanau_")).count();
    assert_eq!(additive, 8);
    assert!(
        stdout.contains(&format!(
            "{} passed, 0 failed",
            (files.len() - additive) * wgpu_attention::Variant::CONCRETE.len() + additive
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

/// `check` reads a file's dtype: the 16-bit golden files run in their dtype and are held to the
/// half-precision rule (the line names the dtype and the error as a fraction of its limit).
#[test]
fn check_reads_the_dtype_from_the_file() {
    let out = bench()
        .args([
            "check",
            &golden("f16_decode_gqa"),
            &golden("bf16_head_dims_1_3"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(" f16 err/limit="), "{stdout}");
    assert!(stdout.contains(" bf16 err/limit="), "{stdout}");
}

/// `sweep --dtype --form`: one row per dtype and form, the forced form named in the variant
/// column, and the GB/s count the dtype's real element size (the 16-bit rows' bytes are half the
/// f32 row's); the same rows in the same order whether timed in interleaved rounds (the default,
/// 2 rounds here) or `--sequential`.
#[test]
fn sweep_counts_the_bytes_of_each_dtype_in_each_form() {
    for order in [&[][..], &["--sequential"][..]] {
        sweep_dtypes_and_forms(order);
    }
}

fn sweep_dtypes_and_forms(order: &[&str]) {
    let json = std::env::temp_dir().join(format!("attn-sweep-dtype-{}.json", std::process::id()));
    let out = bench()
        .args([
            "sweep",
            "--batch",
            "1",
            "--heads",
            "2",
            "--kv-heads",
            "1",
            "--q-len",
            "1",
            "--kv-len",
            "300",
            "--head-dim",
            "32",
            "--variant",
            "decode",
            "--dtype",
            "f32,f16,bf16",
            "--form",
            "auto,workgroup",
            "--reps",
            "2",
            "--warmup",
            "1",
            "--no-cpu",
            "--no-peak",
            "--no-burn",
            "--json",
        ])
        .arg(&json)
        .args(order)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{order:?}: {stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let rows = v["rows"].as_array().unwrap();
    let dtypes: Vec<&str> = rows.iter().map(|r| r["dtype"].as_str().unwrap()).collect();
    assert_eq!(
        dtypes,
        ["f32", "f32", "f16", "f16", "bf16", "bf16"],
        "{order:?}"
    );
    let variants: Vec<&str> = rows
        .iter()
        .map(|r| r["variant"].as_str().unwrap())
        .collect();
    assert_eq!(variants, ["decode", "decode/wg"].repeat(3));
    assert!(stdout.contains("\ndecode/wg "), "{stdout}");
    // Q 1·2·1·32, K and V 1·1·300·32, O 1·2·1·32 elements.
    let elems = (64 + 2 * 9600 + 64) as f64;
    for (r, size) in rows.iter().zip([4.0, 4.0, 2.0, 2.0, 2.0, 2.0]) {
        let bytes = r["gbps"].as_f64().unwrap() * 1e9 * r["median_ms"].as_f64().unwrap() / 1e3;
        assert!(
            (bytes / (elems * size) - 1.0).abs() < 1e-9,
            "{}: {bytes} bytes, expected {}",
            r["dtype"],
            elems * size
        );
        assert_eq!(r["check_passed"], true);
    }
}

/// `memory --dtype`: the call's memory per dtype, and the comparison line.
#[test]
fn memory_compares_dtypes() {
    let out = bench()
        .args([
            "memory",
            "--heads",
            "2",
            "--q-len",
            "256",
            "--head-dim",
            "64",
            "--dtype",
            "f32,f16",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("== f16") && stdout.contains("by dtype:"),
        "{stdout}"
    );
    let ratio: f64 = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("f16 "))
        .and_then(|l| l.split_whitespace().find(|w| w.ends_with('x')))
        .and_then(|w| w.trim_end_matches('x').parse().ok())
        .unwrap_or_else(|| panic!("no f16 ratio in {stdout}"));
    assert!(
        ratio < 1.0,
        "f16 needs less memory than f32: {ratio}\n{stdout}"
    );
}

#[test]
fn cache_checks_paged_against_contiguous_and_times_appends() {
    let json = std::env::temp_dir().join(format!("attn-cache-{}.json", std::process::id()));
    let out = bench()
        .args([
            "cache",
            "--lengths",
            "1,40,300",
            "--heads",
            "4",
            "--kv-heads",
            "2",
            "--head-dim",
            "24",
            "--dtype",
            "bf16",
            "--paged",
            "7",
            "--reps",
            "2",
            "--append-lengths",
            "5,200",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("paged == contiguous bit for bit: true")
            && stdout.contains("f64 reference on every row: true"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let c = &v["cache"];
    assert_eq!(c["total_keys"], 341);
    assert!(c["paged_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(c["append_ms"].as_array().unwrap().len(), 2);
}

#[test]
fn translate_prints_every_decoding_method_and_draws_the_heatmap() {
    let dir = std::env::temp_dir();
    let svg = dir.join(format!("attn-heatmap-{}.svg", std::process::id()));
    let png = dir.join(format!("attn-heatmap-{}.png", std::process::id()));
    for path in [&svg, &png] {
        let out = bench()
            .args(["translate", "the 25th of march 2017", "--heatmap"])
            .arg(path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        for line in ["greedy:   2017-03-25", "beam 4:   2017-03-25", "sampled:"] {
            assert!(stdout.contains(line), "{line:?} in {stdout}");
        }
        let bytes = std::fs::read(path).unwrap();
        let _ = std::fs::remove_file(path);
        if path == &png {
            assert_eq!(&bytes[1..4], b"PNG");
        } else {
            let text = String::from_utf8(bytes).unwrap();
            // One cell per (output token incl. the end, source character).
            assert_eq!(text.matches("<rect x=").count(), 11 * 22, "{text}");
        }
    }
    let out = bench().args(["translate", "☃"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the vocabulary"));
}

/// Without Dawn (here: a harness folder with no npm package), `conformance --dawn` fails with exit
/// 1 and says why and which backend it tried: in CI a missing Dawn adapter is a failure, never a
/// skip. (The suite itself runs in scripts/test.sh, which installs the harness.)
#[test]
fn dawn_without_an_adapter_fails_and_says_why() {
    let empty = std::env::temp_dir().join(format!("no-dawn-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = bench()
        .args([
            "conformance",
            "--dawn",
            "opengles",
            "--only",
            "0",
            "--dawn-work",
        ])
        .arg(empty.join("work"))
        .env("WGPU_ATTENTION_DAWN_DIR", &empty)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("backend=opengles") && text.contains("not installed"),
        "{text}"
    );
    let out = bench()
        .args(["conformance", "--dawn", "metal"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&empty).ok();
}

/// `attn-bench trace` writes a trace set of one call: its kernels' WGSL, buffers and commands, and
/// the outputs named; an unknown configuration is exit 2 with the labels there are.
#[test]
fn trace_records_one_call_as_a_trace_set() {
    let stem = std::env::temp_dir().join(format!("attn-trace-{}", std::process::id()));
    let out = bench()
        .args([
            "trace",
            &golden("tiny_self_attention"),
            "--config",
            "staged",
            "--probs",
            "--out",
        ])
        .arg(&stem)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stem.with_extension("json")).unwrap())
            .unwrap();
    let kernels = set["kernels"].as_array().unwrap();
    assert!(kernels
        .iter()
        .any(|k| k["label"].as_str().unwrap().starts_with("qk_")));
    assert!(kernels
        .iter()
        .all(|k| k["wgsl"].as_str().unwrap().contains("@compute")));
    let trace = &set["traces"][0][1];
    let outputs: Vec<&str> = trace["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["out", "lse", "probs"]);
    assert!(trace["commands"].as_array().unwrap().len() >= 4);
    assert!(std::fs::metadata(stem.with_extension("bin")).unwrap().len() > 0);
    let bad = bench()
        .args(["trace", &golden("tiny_self_attention"), "--config", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("staged"));
    std::fs::remove_file(stem.with_extension("json")).ok();
    std::fs::remove_file(stem.with_extension("bin")).ok();
}
