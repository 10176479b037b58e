//! The conformance suite on Dawn (`attn-bench conformance --dawn BACKEND`): every case is run
//! once through the library on a wgpu device that uses no more than Dawn's adapter offers, with
//! its GPU work recorded (`wgpu_attention::trace`); `tests/dawn/replay.mjs` compiles every kernel
//! under Tint and replays the traces on Dawn; the outputs it returns are compared here with the
//! float64 reference under the same rules as on wgpu.

use std::path::{Path, PathBuf};
use std::process::Command;

use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::conformance::{self, AdapterReport, Job, JobResult, Outcome, Settings};
use wgpu_attention::known_issues::{self, Action, Implementation};
use wgpu_attention::trace::TraceSet;
use wgpu_attention::{Context, ContextOptions, Error};

/// Where the harness lives: `WGPU_ATTENTION_DAWN_DIR`, else `tests/dawn` of this workspace.
pub fn harness_dir() -> PathBuf {
    std::env::var_os("WGPU_ATTENTION_DAWN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/dawn"))
}

/// Dawn's adapter as the harness reports it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DawnAdapter {
    pub vendor: String,
    pub architecture: String,
    pub device: String,
    pub description: String,
    pub subgroup_min_size: Option<u32>,
    pub subgroup_max_size: Option<u32>,
    pub feature_level: String,
    pub features: Vec<String>,
    pub limits: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, serde::Deserialize)]
struct KernelResult {
    label: String,
    ok: bool,
    #[serde(default)]
    skipped: bool,
    error: Option<String>,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    ms: Option<f64>,
}

#[derive(Debug, serde::Deserialize, serde::Serialize, Clone)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    line: Option<u64>,
    column: Option<u64>,
    message: String,
}

#[derive(Debug, serde::Deserialize)]
struct Region {
    offset: usize,
    len: usize,
}

#[derive(Debug, serde::Deserialize)]
struct TraceResult {
    ok: bool,
    error: Option<String>,
    outputs: Vec<Region>,
}

#[derive(Debug, serde::Deserialize)]
struct Results {
    adapter: Option<DawnAdapter>,
    #[serde(default)]
    kernels: Vec<KernelResult>,
    #[serde(default)]
    traces: Vec<TraceResult>,
    error: Option<String>,
}

/// Runs the harness on a saved trace set (or none: the adapter only).
fn harness(backend: &str, set: Option<&Path>, out: &Path) -> Result<(Results, Vec<u8>), String> {
    let dir = harness_dir();
    let script = dir.join("replay.mjs");
    if !dir.join("node_modules/webgpu").exists() {
        return Err(format!(
            "the Dawn harness is not installed: {} has no node_modules/webgpu (run `npm ci` \
             there, or scripts/dawn.sh, which also installs Node.js)",
            dir.display()
        ));
    }
    let mut cmd = Command::new("node");
    cmd.arg(&script);
    if let Some(s) = set {
        cmd.arg(s);
    }
    cmd.args(["--backend", backend, "--out"]).arg(out);
    // Dawn's GLES backend without a display: EGL's surfaceless platform.
    if std::env::var_os("EGL_PLATFORM").is_none() {
        cmd.env("EGL_PLATFORM", "surfaceless");
    }
    // The Vulkan shim (scripts/dawn-vulkan-shim.c) goes in front of the loader for Dawn only.
    if backend == "vulkan" {
        if let Some(shim) = std::env::var_os("WGPU_ATTENTION_DAWN_SHIM") {
            let mut path = shim;
            if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
                path.push(":");
                path.push(old);
            }
            cmd.env("LD_LIBRARY_PATH", path);
        }
    }
    let status = cmd
        .status()
        .map_err(|e| format!("could not start node ({e}); scripts/dawn.sh installs Node.js"))?;
    let json = out.with_extension("json");
    let text = std::fs::read_to_string(&json)
        .map_err(|e| format!("the harness ({status}) wrote no {}: {e}", json.display()))?;
    let results: Results =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    if let Some(e) = &results.error {
        return Err(e.clone());
    }
    if !status.success() {
        return Err(format!("the harness failed ({status})"));
    }
    let bin = std::fs::read(out.with_extension("bin")).unwrap_or_default();
    Ok((results, bin))
}

/// Dawn's adapter on `backend`, or why there is none.
pub fn probe(backend: &str, work: &Path) -> Result<DawnAdapter, String> {
    let (r, _) = harness(backend, None, &work.join("probe"))?;
    r.adapter
        .ok_or_else(|| format!("Dawn reported no adapter on backend={backend}"))
}

/// A wgpu context that uses no more than Dawn's adapter offers: its optional features (subgroups,
/// shader-f16; never SHADER_INT64, which WebGPU lacks) and its limits, so that the library makes
/// the same choices it would make on Dawn and its traces are valid there.
pub fn recording_context(base: ContextOptions, a: &DawnAdapter) -> Result<Context, Error> {
    let mut features = wgpu::Features::empty();
    if a.features.iter().any(|f| f == "subgroups") {
        features |= wgpu::Features::SUBGROUP;
    }
    if a.features.iter().any(|f| f == "shader-f16") {
        features |= wgpu::Features::SHADER_F16;
    }
    let l = |k: &str, default: u64| a.limits.get(k).map_or(default, |v| *v as u64);
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: l("maxStorageBufferBindingSize", 1 << 27),
        max_buffer_size: l("maxBufferSize", 1 << 28),
        max_uniform_buffer_binding_size: l("maxUniformBufferBindingSize", 65536),
        max_storage_buffers_per_shader_stage: l("maxStorageBuffersPerShaderStage", 8) as u32,
        max_compute_workgroup_storage_size: l("maxComputeWorkgroupStorageSize", 16384) as u32,
        max_compute_invocations_per_workgroup: l("maxComputeInvocationsPerWorkgroup", 256) as u32,
        max_compute_workgroup_size_x: l("maxComputeWorkgroupSizeX", 256) as u32,
        max_compute_workgroup_size_y: l("maxComputeWorkgroupSizeY", 256) as u32,
        max_compute_workgroup_size_z: l("maxComputeWorkgroupSizeZ", 64) as u32,
        max_compute_workgroups_per_dimension: l("maxComputeWorkgroupsPerDimension", 65535) as u32,
        min_storage_buffer_offset_alignment: l("minStorageBufferOffsetAlignment", 256) as u32,
        min_uniform_buffer_offset_alignment: l("minUniformBufferOffsetAlignment", 256) as u32,
        ..Default::default()
    };
    // Limits wgpu::Limits::default() sets lower than any adapter here has, which the library
    // does not use, are raised so that they do not cap the device.
    let unlimited = wgpu::Limits {
        max_texture_dimension_1d: u32::MAX,
        max_texture_dimension_2d: u32::MAX,
        max_texture_dimension_3d: u32::MAX,
        max_texture_array_layers: u32::MAX,
        max_bind_groups: u32::MAX,
        max_bind_groups_plus_vertex_buffers: u32::MAX,
        max_bindings_per_bind_group: u32::MAX,
        max_dynamic_uniform_buffers_per_pipeline_layout: u32::MAX,
        max_dynamic_storage_buffers_per_pipeline_layout: u32::MAX,
        max_sampled_textures_per_shader_stage: u32::MAX,
        max_samplers_per_shader_stage: u32::MAX,
        max_storage_textures_per_shader_stage: u32::MAX,
        max_uniform_buffers_per_shader_stage: u32::MAX,
        max_vertex_buffers: u32::MAX,
        max_vertex_attributes: u32::MAX,
        max_vertex_buffer_array_stride: u32::MAX,
        max_inter_stage_shader_variables: u32::MAX,
        max_color_attachments: u32::MAX,
        max_color_attachment_bytes_per_sample: u32::MAX,
        max_immediate_size: u32::MAX,
        max_non_sampler_bindings: u32::MAX,
        ..limits
    };
    Context::new_blocking(ContextOptions {
        features: Some(features),
        limits: Some(unlimited),
        ..base
    })
}

/// Runs the conformance suite on Dawn's `backend`: prints the kernel compilation table and the
/// report, and returns them with whether everything held.
pub fn conformance(
    ctx: &Context,
    adapter: &DawnAdapter,
    backend: &str,
    set: &Settings,
    work: &Path,
) -> Result<(AdapterReport, Vec<KernelRow>, bool), String> {
    let mut set = set.clone();
    set.implementation = Implementation::Dawn;
    set.repro_flags = format!("--dawn {backend}");
    let mut compile_rows = Vec::new();
    let mut harness_error = None;
    let bar = progress_bar(format!("Dawn {backend}: recording"));
    let report = conformance::run_with(ctx, &set, |jobs: &[Job]| {
        // 1. Record every case on the wgpu device (in parallel, as the suite runs).
        let recorded = conformance::parallel(
            jobs.len(),
            set.threads,
            |n| {
                let j = &jobs[n];
                let opts = wgpu_attention::AttentionOptions {
                    return_probs: j.probs,
                    ..j.config.options()
                };
                check::record(ctx, j.case, &opts, Some(j.sample))
            },
            &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            },
        );
        bar.finish_and_clear();
        // 2. One trace set: the recorded calls and every kernel specialization of the library.
        let mut traces = TraceSet::default();
        let mut index = vec![None; jobs.len()];
        for (n, r) in recorded.iter().enumerate() {
            if let Ok(r) = r {
                index[n] = Some(traces.add(jobs[n].name.clone(), r.trace.clone()));
            }
        }
        for k in wgpu_attention::kernels::all_kernels() {
            traces.add_kernel(k);
        }
        let stem = work.join("traces");
        let replay = traces
            .save(&stem)
            .map_err(|e| format!("saving {}: {e}", stem.display()))
            .and_then(|_| {
                eprintln!(
                    "Dawn {backend}: compiling {} kernels and replaying {} traces",
                    traces.kernels.len(),
                    traces.traces.len()
                );
                harness(
                    backend,
                    Some(&stem.with_extension("json")),
                    &work.join("results"),
                )
            });
        let (results, bin) = match replay {
            Ok(r) => r,
            Err(e) => {
                harness_error = Some(e.clone());
                return jobs
                    .iter()
                    .map(|_| (Outcome::Error, None, format!("Dawn replay: {e}")))
                    .collect();
            }
        };
        compile_rows = kernel_rows(ctx, &traces, &results.kernels);
        // 3. Compare each replay's outputs with the reference.
        recorded
            .iter()
            .zip(&index)
            .map(|(r, i)| -> JobResult {
                let r = match r {
                    Ok(r) => r,
                    Err(e @ Error::Unsupported { .. }) => {
                        return (Outcome::Unsupported, None, e.to_string())
                    }
                    Err(e) => return (Outcome::Error, None, format!("recording: {e}")),
                };
                let Some(t) = i.and_then(|i| results.traces.get(i)) else {
                    return (Outcome::Error, None, "no replay result".into());
                };
                if !t.ok {
                    let e = t.error.clone().unwrap_or_default();
                    return (Outcome::Error, None, format!("Dawn: {e}"));
                }
                let regions: Vec<Vec<u8>> = t
                    .outputs
                    .iter()
                    .map(|o| bin.get(o.offset..o.offset + o.len).unwrap_or(&[]).to_vec())
                    .collect();
                let rep = r.compare(&regions, Tolerance::CONTRACT);
                if rep.passed {
                    (Outcome::Pass, Some(rep), String::new())
                } else {
                    let d = rep.failures.join("; ");
                    (Outcome::Fail, Some(rep), d)
                }
            })
            .collect()
    });
    if let Some(e) = harness_error {
        return Err(e);
    }
    let mut report = report;
    describe(&mut report, adapter, backend, ctx);
    let compile_ok = compile_rows
        .iter()
        .all(|k| k.ok || k.skipped || k.known.is_some());
    let ok = report.ok() && compile_ok;
    Ok((report, compile_rows, ok))
}

fn progress_bar(msg: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(msg);
    bar
}

/// The report's adapter lines describe Dawn's adapter (the traces were recorded on `ctx`).
fn describe(r: &mut AdapterReport, a: &DawnAdapter, backend: &str, ctx: &Context) {
    r.adapter = format!(
        "Dawn {backend} ({}): {}",
        a.feature_level,
        if a.description.is_empty() {
            &a.device
        } else {
            &a.description
        }
    );
    r.backend = format!("dawn-{backend}");
    let vendor = [&a.vendor, &a.architecture]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    r.driver = format!(
        "npm webgpu {}{}; traces recorded on {} ({})",
        harness_version(),
        if vendor.is_empty() {
            String::new()
        } else {
            format!(" ({vendor})")
        },
        ctx.adapter_info().name,
        ctx.adapter_info().backend.to_str()
    );
    r.features = if a.features.is_empty() {
        "none of subgroups, shader-f16".into()
    } else {
        a.features.join(", ")
    };
    r.subgroup_size = match (a.subgroup_min_size, a.subgroup_max_size) {
        (Some(lo), Some(hi)) if a.features.iter().any(|f| f == "subgroups") => {
            format!("{lo}..{hi} reported by Dawn; {}", r.subgroup_size)
        }
        _ => format!("no subgroups on Dawn; {}", r.subgroup_size),
    };
    const USED: [&str; 7] = [
        "maxStorageBufferBindingSize",
        "maxBufferSize",
        "maxComputeWorkgroupStorageSize",
        "maxComputeInvocationsPerWorkgroup",
        "maxStorageBuffersPerShaderStage",
        "minStorageBufferOffsetAlignment",
        "minUniformBufferOffsetAlignment",
    ];
    r.limits = USED
        .iter()
        .filter_map(|k| a.limits.get(*k).map(|v| (*k, *v as u64)))
        .collect();
}

/// The pinned version of the npm package `webgpu` (tests/dawn/package.json).
pub fn harness_version() -> String {
    std::fs::read_to_string(harness_dir().join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["dependencies"]["webgpu"].as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// One kernel's compilation under Tint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelRow {
    /// The specialization's label.
    pub label: String,
    /// Compiled and made a pipeline with no error.
    pub ok: bool,
    /// Not compiled (a feature the adapter lacks, or a known issue).
    pub skipped: bool,
    /// The error, or why it was not compiled.
    pub error: Option<String>,
    /// Warnings (and errors) of getCompilationInfo.
    pub messages: Vec<String>,
    /// The known-issue row that explains a failure or a skip.
    pub known: Option<String>,
    /// Milliseconds to compile and make the pipeline.
    pub ms: Option<f64>,
}

fn kernel_rows(ctx: &Context, set: &TraceSet, results: &[KernelResult]) -> Vec<KernelRow> {
    set.kernels
        .iter()
        .zip(results)
        .map(|(k, r)| {
            debug_assert_eq!(k.label, r.label);
            let known = known_issues::for_kernel(ctx.known_issues(), Implementation::Dawn, &k.wgsl)
                .filter(|_| !r.ok)
                .map(|i| {
                    format!(
                        "{} ({}; {})",
                        i.reason,
                        i.link,
                        match i.action {
                            Action::Skip => "skip",
                            Action::ExpectFail => "expected failure",
                            Action::WorkedAround => "worked around",
                        }
                    )
                });
            KernelRow {
                label: r.label.clone(),
                ok: r.ok,
                skipped: r.skipped,
                error: r.error.clone(),
                messages: r
                    .messages
                    .iter()
                    .map(|m| {
                        format!(
                            "{} at {}:{}: {}",
                            m.kind,
                            m.line.unwrap_or(0),
                            m.column.unwrap_or(0),
                            m.message
                        )
                    })
                    .collect(),
                known,
                ms: r.ms,
            }
        })
        .collect()
}

/// The compilation table as Markdown: counts, then every kernel that failed or warned, then the
/// kernels not compiled, one line per reason.
pub fn kernels_markdown(backend: &str, rows: &[KernelRow]) -> String {
    let ok = rows.iter().filter(|r| r.ok).count();
    let warned = rows
        .iter()
        .filter(|r| r.ok && !r.messages.is_empty())
        .count();
    let skipped = rows.iter().filter(|r| !r.ok && r.skipped).count();
    let failed = rows.iter().filter(|r| !r.ok && !r.skipped).count();
    let mut m = format!(
        "#### Kernels under Tint (Dawn {backend})\n\n{} specializations (every one the traces use, \
         and the library's representative set of every kernel, form and dtype): {ok} compiled \
         into pipelines ({warned} with warnings), {failed} failed, {skipped} not compiled.\n\n",
        rows.len()
    );
    let listed: Vec<&KernelRow> = rows
        .iter()
        .filter(|r| (!r.ok && !r.skipped) || (r.ok && !r.messages.is_empty()))
        .collect();
    if !listed.is_empty() {
        m.push_str("| kernel | result | detail | known issue |\n|---|---|---|---|\n");
        for r in listed {
            let result = if r.ok { "warnings" } else { "FAILED" };
            let mut detail: Vec<String> = r.error.iter().cloned().collect();
            detail.extend(r.messages.iter().cloned());
            m.push_str(&format!(
                "| {} | {result} | {} | {} |\n",
                r.label,
                detail.join("; ").replace('|', "/").replace('\n', " "),
                r.known.as_deref().unwrap_or("none").replace('|', "/"),
            ));
        }
    }
    // Not compiled: grouped by reason (on GLES every subgroup kernel, for want of subgroups).
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in rows.iter().filter(|r| !r.ok && r.skipped) {
        let reason = r.error.as_deref().unwrap_or("no reason given");
        match reasons.iter_mut().find(|(x, _)| *x == reason) {
            Some((_, labels)) => labels.push(&r.label),
            None => reasons.push((reason, vec![&r.label])),
        }
    }
    if !reasons.is_empty() {
        m.push('\n');
        for (reason, labels) in reasons {
            m.push_str(&format!(
                "- {} {reason}: {}\n",
                labels.len(),
                labels.join(", ")
            ));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, ok: bool, skipped: bool, error: Option<&str>) -> KernelRow {
        KernelRow {
            label: label.into(),
            ok,
            skipped,
            error: error.map(Into::into),
            messages: Vec::new(),
            known: None,
            ms: None,
        }
    }

    /// Failures get a table row each; kernels not compiled are one line per reason, with the
    /// count and their labels.
    #[test]
    fn kernel_table_lists_failures_and_groups_kernels_not_compiled() {
        let needs = "not compiled: needs subgroups, which this adapter lacks";
        let rows = [
            row("flash_a", true, false, None),
            row("flash_u64", false, false, Some("u64 is not a type")),
            row("sg_a", false, true, Some(needs)),
            row("sg_b", false, true, Some(needs)),
        ];
        let m = kernels_markdown("opengles", &rows);
        assert!(m.contains("1 compiled into pipelines (0 with warnings), 1 failed, 2 not compiled"));
        assert!(
            m.contains("| flash_u64 | FAILED | u64 is not a type | none |"),
            "{m}"
        );
        assert!(m.contains(&format!("- 2 {needs}: sg_a, sg_b\n")), "{m}");
        assert!(!m.contains("| sg_a"), "{m}");
        assert!(!m.contains("flash_a"), "{m}");
    }
}
