//! The conformance suite: does this adapter and driver compute attention correctly?
//!
//! A built-in seeded case matrix (shapes × options, each run in every dtype on every
//! configuration the adapter has: each variant, and the subgroup forms where the adapter has them)
//! plus any golden-format files (each in its own dtype), compared with the f64 CPU reference (or
//! the files' own expected results) under the tolerance rules of [`crate::check`] (float32, and
//! half precision for 16-bit outputs). The known-issue table is consulted for every
//! case: a skipped case is not run, an expected failure that fails is counted as such, and one
//! that passes is reported as an unexpected pass.
//!
//! The matrix is a pure function of its size and seed, so a case is named by its index: every
//! failure comes with a command line that reruns exactly that case. `attn-bench conformance`
//! is the command-line face of [`run`].

use std::collections::BTreeMap;
use std::time::Instant;

use crate::rng::SeededRng;

use crate::case::Case;
use crate::check::{self, Tolerance};
use crate::context::Context;
use crate::dtype::DType;
use crate::error::Error;
use crate::fused;
use crate::known_issues::{self, Action, Implementation};
use crate::options::{AttentionOptions, Causal, MaskKind, Variant};
use crate::shape::Shape;

/// One way of running a case: a variant, in its subgroup form or not, and for the fused and
/// decode subgroup forms the subgroup size (native, or emulated through workgroup memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Config {
    /// The variant.
    pub variant: Variant,
    /// Subgroup forms allowed (`AttentionOptions::subgroups`).
    pub subgroups: bool,
    /// The fused or decode subgroup form's size: the probe-confirmed size of the device, or with
    /// `emulated` the size whose generated code runs with workgroup-memory broadcasts.
    pub subgroup_size: Option<u32>,
    /// The subgroup form emulated through workgroup memory at `subgroup_size`.
    pub emulated: bool,
}

impl Config {
    /// `staged`, `staged+sg`, `fused`, `fused+sg8`, `decode+sg8`, `fused+sg32emu`, ...: the
    /// subgroup size is in the label, so a failure names it.
    pub fn label(&self) -> String {
        let sg = match (self.subgroups, self.subgroup_size) {
            (false, _) => String::new(),
            (true, None) => "+sg".into(),
            (true, Some(n)) => format!("+sg{n}{}", if self.emulated { "emu" } else { "" }),
        };
        format!("{}{sg}", self.variant)
    }

    /// The options that run a case in this configuration.
    pub fn options(&self) -> AttentionOptions {
        self.apply(&AttentionOptions::default())
    }

    /// `base` with this configuration's variant and form.
    pub fn apply(&self, base: &AttentionOptions) -> AttentionOptions {
        AttentionOptions {
            variant: self.variant,
            subgroups: Some(self.subgroups),
            emulate_subgroups: self.subgroup_size.filter(|_| self.emulated),
            ..base.clone()
        }
    }
}

/// Every configuration the adapter can run: each variant in its workgroup-memory form; staged
/// with subgroup reductions where the adapter has SUBGROUP; the fused and decode subgroup forms
/// at the size the subgroup probe confirmed; and those two forms emulated at the adapter's
/// reported size where the probe did not confirm it (so the code for that size is checked even
/// though the device cannot run it).
pub fn configs(ctx: &Context) -> Vec<Config> {
    let support = crate::subgroups::support(ctx);
    let unconfirmed = support
        .reported
        .filter(|r| Some(*r) != support.size && crate::subgroups::FORM_SIZES.contains(r));
    configs_with(ctx, unconfirmed.as_slice())
}

/// [`configs`] with the fused and decode subgroup forms also emulated at each of `emulate`.
pub fn configs_with(ctx: &Context, emulate: &[u32]) -> Vec<Config> {
    let plain = |variant, subgroups, subgroup_size, emulated| Config {
        variant,
        subgroups,
        subgroup_size,
        emulated,
    };
    let mut c: Vec<Config> = Variant::CONCRETE
        .iter()
        .map(|&v| plain(v, false, None, false))
        .collect();
    if fused::subgroups_enabled(ctx, Some(true)) {
        c.push(plain(Variant::Staged, true, None, false));
    }
    if let Some(n) = fused::subgroup_size(ctx, Some(true)) {
        c.push(plain(Variant::Fused, true, Some(n), false));
        c.push(plain(Variant::Decode, true, Some(n), false));
    }
    let max = ctx.limits().max_compute_invocations_per_workgroup;
    for &n in emulate {
        if crate::subgroups::FORM_SIZES.contains(&n) && n <= max {
            for v in [Variant::Fused, Variant::Decode] {
                let cfg = plain(v, true, Some(n), true);
                if !c.contains(&cfg) {
                    c.push(cfg);
                }
            }
        }
    }
    c
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "quick" => Ok(Size::Quick),
            "full" => Ok(Size::Full),
            _ => Err(format!("unknown size {s:?}; expected quick or full")),
        }
    }
}

/// Size of the built-in matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Size {
    /// 72 problems (360 cases on lavapipe's five configurations), about a minute there.
    Quick,
    /// About 190 problems, long shapes (16,384 keys) and head dim 300 included.
    Full,
}

/// One problem of the matrix, before it is run on each configuration.
#[derive(Debug, Clone)]
pub struct Problem {
    /// What the problem covers, in words.
    pub what: String,
    /// The problem.
    pub case: Case,
    /// Whether P is asked for and compared too.
    pub probs: bool,
}

const ODD_DIMS: [usize; 9] = [1, 3, 8, 59, 63, 64, 65, 111, 128];
const ODD_LENS: [usize; 10] = [1, 2, 15, 16, 17, 63, 64, 65, 113, 129];

/// A length weighted toward 1, tile ± 1 and odd sizes.
fn pick_len(rng: &mut SeededRng) -> usize {
    if rng.random_bool(0.7) {
        ODD_LENS[rng.random_range(0..ODD_LENS.len())]
    } else {
        rng.random_range(1..300)
    }
}

/// A random problem: shape, GQA, causal mode, masks, key lengths, scale, fully masked rows.
pub fn random_problem(rng: &mut SeededRng, what: &str, seed: u64) -> Problem {
    let kv_heads = [1usize, 1, 2, 3][rng.random_range(0..4)];
    let group = [1usize, 1, 2, 4][rng.random_range(0..4)];
    let batch = [1usize, 1, 2][rng.random_range(0..3)];
    let d = if rng.random_bool(0.7) {
        ODD_DIMS[rng.random_range(0..ODD_DIMS.len())]
    } else {
        rng.random_range(1..=256)
    };
    let dv = if rng.random_bool(0.8) {
        d
    } else {
        ODD_DIMS[rng.random_range(0..ODD_DIMS.len())]
    };
    let (lq, lk) = (pick_len(rng), pick_len(rng));
    let shape = Shape::new(batch, kv_heads * group, kv_heads, lq, lk, d, dv);
    let mut case = Case::random(what, shape, seed).with_causal(Causal::ALL[rng.random_range(0..3)]);
    if rng.random_bool(0.3) {
        case = case.with_key_lengths(
            (0..batch)
                .map(|_| rng.random_range(0..=lk as u32))
                .collect(),
        );
    }
    let bool_mask = rng.random_bool(0.5);
    if rng.random_bool(0.4) {
        let kind = if bool_mask {
            MaskKind::Bool
        } else {
            MaskKind::Additive
        };
        let broadcast = [0, 1, 2, 3].map(|_| rng.random_bool(0.4));
        // Additive masks without the -1e9 "strong mask": a row whose every kept key carries
        // -1e9 is outside what f32 scores can resolve (README, "The contract"); hard masking is
        // what bool masks and key lengths are for.
        let keep = if bool_mask { 0.7 } else { 1.0 };
        case = case.with_random_mask(kind, broadcast, keep, seed);
    }
    if bool_mask && rng.random_bool(0.3) {
        let rows: Vec<(usize, usize, usize)> = (0..3)
            .map(|_| {
                (
                    rng.random_range(0..batch),
                    rng.random_range(0..kv_heads * group),
                    rng.random_range(0..lq),
                )
            })
            .collect();
        case = case.with_fully_masked_rows(&rows).expect("bool or no mask");
    }
    if rng.random_bool(0.2) {
        case = case.with_scale(rng.random_range(-2.0..2.0));
    }
    if rng.random_bool(0.1) {
        case = case.with_q_scaled(30.0);
    }
    Problem {
        what: format!(
            "random {}x{}({})x{}x{} d{}/{} {}{}{}",
            batch,
            kv_heads * group,
            kv_heads,
            lq,
            lk,
            d,
            dv,
            case.causal,
            if case.mask.is_some() { " mask" } else { "" },
            if case.key_lengths.is_some() {
                " key_lengths"
            } else {
                ""
            }
        ),
        case,
        probs: rng.random_bool(0.15),
    }
}

/// The built-in matrix: named problems covering each rule of the contract, then random ones.
pub fn matrix(size: Size, seed: u64) -> Vec<Problem> {
    let mut v: Vec<Problem> = Vec::new();
    let mut n = 0u64;
    let mut add = |v: &mut Vec<Problem>, what: String, case: Case, probs: bool| {
        n += 1;
        v.push(Problem { what, case, probs });
    };
    let s = |b, hq, hkv, lq, lk, d, dv| Shape::new(b, hq, hkv, lq, lk, d, dv);
    let seed_of = |k: u64| seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(k);

    // Odd sizes and head dims, Lq ≠ Lk both ways.
    for (k, (lq, lk, d)) in [
        (1, 1, 1),
        (1, 63, 3),
        (63, 64, 59),
        (65, 1, 64),
        (113, 113, 111),
        (17, 200, 128),
        (200, 17, 256),
        (64, 65, 8),
    ]
    .into_iter()
    .enumerate()
    {
        let sh = s(1, 2, 1, lq, lk, d, d);
        add(
            &mut v,
            format!("odd {lq}x{lk} d{d}"),
            Case::random("odd", sh, seed_of(k as u64)),
            false,
        );
    }
    // Both causal alignments, both ways round.
    for (k, c) in Causal::ALL.into_iter().enumerate() {
        for (lq, lk) in [(33, 70), (70, 33)] {
            let sh = s(2, 2, 2, lq, lk, 16, 16);
            add(
                &mut v,
                format!("causal {c} {lq}x{lk}"),
                Case::random("causal", sh, seed_of(100 + k as u64 + lq as u64)).with_causal(c),
                false,
            );
        }
    }
    // GQA ratios and MQA.
    for (hq, hkv) in [(4, 4), (8, 2), (8, 1), (6, 3)] {
        let sh = s(1, hq, hkv, 19, 47, 32, 32);
        add(
            &mut v,
            format!("gqa {hq}/{hkv}"),
            Case::random("gqa", sh, seed_of(200 + hq as u64 * 10 + hkv as u64)),
            false,
        );
    }
    // Masks of both kinds, full and broadcast.
    for kind in [MaskKind::Bool, MaskKind::Additive] {
        for bc in [
            [false; 4],
            [false, true, true, false],
            [true, true, false, false],
        ] {
            let sh = s(2, 2, 1, 21, 37, 24, 24);
            add(
                &mut v,
                format!("mask {kind:?} broadcast {bc:?}"),
                Case::random("mask", sh, seed_of(300)).with_random_mask(
                    kind,
                    bc,
                    0.6,
                    seed_of(301),
                ),
                false,
            );
        }
    }
    // Key lengths including 0 and full; fully masked rows (bool mask and causal offsets).
    add(
        &mut v,
        "key_lengths 0 and full".into(),
        Case::random("kl", s(3, 2, 2, 9, 40, 16, 16), seed_of(400))
            .with_key_lengths(vec![0, 40, 7]),
        false,
    );
    add(
        &mut v,
        "fully masked rows (bool mask)".into(),
        Case::random("fm", s(2, 2, 2, 8, 30, 16, 16), seed_of(401))
            .with_fully_masked_rows(&[(0, 0, 0), (1, 1, 7), (0, 1, 3)])
            .expect("no mask yet"),
        true,
    );
    add(
        &mut v,
        "fully masked rows (bottom_right, lq > lk)".into(),
        Case::random("fm", s(1, 2, 2, 40, 9, 16, 16), seed_of(402))
            .with_causal(Causal::BottomRight),
        false,
    );
    // Large logits, negative and tiny scales, Dk ≠ Dv.
    add(
        &mut v,
        "large logits (q x 100)".into(),
        Case::random("big", s(1, 2, 2, 31, 77, 64, 64), seed_of(500)).with_q_scaled(100.0),
        true,
    );
    add(
        &mut v,
        "negative scale".into(),
        Case::random("neg", s(1, 2, 2, 12, 30, 16, 16), seed_of(501)).with_scale(-0.7),
        false,
    );
    add(
        &mut v,
        "dk 40, dv 72".into(),
        Case::random("dkdv", s(1, 4, 2, 20, 50, 40, 72), seed_of(502)),
        true,
    );
    // Long key sequences (lavapipe's loop limiter), decode shapes.
    add(
        &mut v,
        "long keys 1x4100 gqa 8/2 d64".into(),
        Case::random("long", s(1, 8, 2, 1, 4100, 64, 64), seed_of(600)),
        false,
    );
    add(
        &mut v,
        "long keys 3x2100 causal bottom_right".into(),
        Case::random("long", s(1, 2, 1, 3, 2100, 32, 32), seed_of(601))
            .with_causal(Causal::BottomRight),
        false,
    );
    if size == Size::Full {
        add(
            &mut v,
            "long keys 1x16384 d128".into(),
            Case::random("long", s(1, 4, 1, 1, 16384, 128, 128), seed_of(602)),
            false,
        );
        add(
            &mut v,
            "long 300x3000 d64 top_left".into(),
            Case::random("long", s(1, 2, 2, 300, 3000, 64, 64), seed_of(603))
                .with_causal(Causal::TopLeft),
            false,
        );
        add(
            &mut v,
            "head dim 300 (staged only)".into(),
            Case::random("d300", s(1, 1, 1, 9, 20, 300, 300), seed_of(604)),
            false,
        );
    }
    let randoms = match size {
        Size::Quick => 40,
        Size::Full => 160,
    };
    let mut rng = SeededRng::seed_from_u64(seed_of(1000));
    for k in 0..randoms {
        v.push(random_problem(&mut rng, "random", seed_of(2000 + k)));
    }
    v
}

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Outcome {
    /// Within tolerance.
    Pass,
    /// Outside tolerance, or NaN.
    Fail,
    /// The call returned an error other than the contract's `Unsupported`.
    Error,
    /// Outside the variant's contract (e.g. head dims above 256 on fused): a typed error, as
    /// documented.
    Unsupported,
    /// Not run: a known issue says the driver cannot.
    Skipped,
    /// Failed, as a known issue says it does.
    ExpectedFail,
    /// Passed although a known issue says it fails (the row may be obsolete).
    UnexpectedPass,
}

/// One case's result.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CaseResult {
    /// Index in the matrix, or the file name.
    pub id: String,
    /// What the problem covers, in words.
    pub what: String,
    /// The configuration's label.
    pub config: String,
    /// The dtype of the inputs (and the output).
    pub dtype: DType,
    /// What happened.
    pub outcome: Outcome,
    /// Largest absolute error, when compared.
    pub max_abs_err: Option<f64>,
    /// Relative L2 error, when compared.
    pub rel_l2: Option<f64>,
    /// Failures, errors or the known issue's reason.
    pub detail: String,
    /// A command that reruns this case alone.
    pub repro: String,
}

/// Counts of one configuration.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Counts {
    /// Cases within tolerance.
    pub pass: usize,
    /// Cases outside tolerance.
    pub fail: usize,
    /// Cases that returned an error.
    pub error: usize,
    /// Cases the configuration cannot run (a typed `Unsupported`).
    pub unsupported: usize,
    /// Cases skipped by a known issue.
    pub skipped: usize,
    /// Expected failures.
    pub expected_fail: usize,
    /// Unexpected passes.
    pub unexpected_pass: usize,
    /// Worst relative L2 error over the passing and failing cases, and its case.
    pub worst_rel_l2: f64,
    /// The case with the worst relative L2 error.
    pub worst_rel_l2_case: String,
    /// Largest absolute error over the compared cases.
    pub worst_abs_err: f64,
}

/// The report of one adapter.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AdapterReport {
    /// The adapter's name.
    pub adapter: String,
    /// Its backend.
    pub backend: String,
    /// Its device type.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
    /// The features the device has enabled.
    pub features: String,
    /// The reported subgroup size, the one the probe confirmed, and why.
    pub subgroup_size: String,
    /// The limits the kernels use.
    pub limits: BTreeMap<&'static str, u64>,
    /// The matrix size.
    pub size: Size,
    /// The matrix seed.
    pub seed: u64,
    /// Cases run (matrix problems × dtypes × configurations, plus files × configurations).
    pub cases: usize,
    /// The dtypes the matrix ran in.
    pub dtypes: Vec<DType>,
    /// Wall time of the run.
    pub seconds: f64,
    /// Counts per configuration label and dtype, keyed `"label dtype"` (`"fused+sg8 f16"`).
    pub counts: BTreeMap<String, Counts>,
    /// Failures, errors, unexpected passes (each with its repro command).
    pub problems: Vec<CaseResult>,
    /// Cases left out or expected to fail by the known-issue table, with the reason.
    pub known: Vec<CaseResult>,
    /// Driver problems of this adapter that the library works around (known-issue rows of
    /// [`Action::WorkedAround`]), with their evidence.
    pub worked_around: Vec<String>,
}

impl AdapterReport {
    /// Whether anything failed that the known-issue table did not expect.
    pub fn ok(&self) -> bool {
        self.counts.values().all(|c| c.fail == 0 && c.error == 0)
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        m.push_str(&format!(
            "### {} ({}, {})\n\n- driver: {}\n- features used: {}\n- subgroup size: {}\n",
            self.adapter,
            self.backend,
            self.device_type,
            self.driver,
            self.features,
            self.subgroup_size
        ));
        let limits: Vec<String> = self
            .limits
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        m.push_str(&format!("- limits used: {}\n", limits.join(", ")));
        let dtypes: Vec<&str> = self.dtypes.iter().map(|d| d.as_str()).collect();
        m.push_str(&format!(
            "- matrix: {:?}, seed {}, dtypes {}, {} cases, {:.1} s\n- verdict: **{}**\n\n",
            self.size,
            self.seed,
            dtypes.join(", "),
            self.cases,
            self.seconds,
            if self.ok() { "pass" } else { "FAIL" }
        ));
        m.push_str("| config | dtype | pass | fail | error | unsupported | skipped | expected fail | unexpected pass | worst rel L2 | worst abs err | worst case |\n");
        m.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for (k, c) in &self.counts {
            let (config, dtype) = k.split_once(' ').unwrap_or((k, ""));
            m.push_str(&format!(
                "| {config} | {dtype} | {} | {} | {} | {} | {} | {} | {} | {:.2e} | {:.2e} | {} |\n",
                c.pass,
                c.fail,
                c.error,
                c.unsupported,
                c.skipped,
                c.expected_fail,
                c.unexpected_pass,
                c.worst_rel_l2,
                c.worst_abs_err,
                c.worst_rel_l2_case
            ));
        }
        if self.problems.is_empty() {
            m.push_str("\nNo unexpected results.\n");
        } else {
            m.push_str(
                "\n| case | config | dtype | outcome | detail | reproduce |\n|---|---|---|---|---|---|\n",
            );
            for r in &self.problems {
                m.push_str(&format!(
                    "| {} ({}) | {} | {} | {:?} | {} | `{}` |\n",
                    r.id,
                    r.what,
                    r.config,
                    r.dtype,
                    r.outcome,
                    r.detail.replace('|', "/"),
                    r.repro
                ));
            }
        }
        if !self.worked_around.is_empty() {
            m.push_str("\nDriver problems worked around:\n\n");
            for w in &self.worked_around {
                m.push_str(&format!("- {w}\n"));
            }
        }
        if !self.known.is_empty() {
            m.push_str("\nKnown issues applied:\n\n");
            for r in &self.known {
                m.push_str(&format!(
                    "- {} {} {} {:?}: {}\n",
                    r.id, r.config, r.dtype, r.outcome, r.detail
                ));
            }
        }
        m
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The matrix size.
    pub size: Size,
    /// The matrix seed.
    pub seed: u64,
    /// Golden-format files, run on every configuration besides the matrix.
    pub files: Vec<String>,
    /// Only these matrix indices (all when empty); with `files` empty and this set, no files.
    pub only: Vec<usize>,
    /// Run the matrix (true by default); false runs the files only.
    pub matrix: bool,
    /// Only configurations with these labels (all when empty).
    pub configs: Vec<String>,
    /// The dtypes each matrix problem runs in (golden files run in their own).
    pub dtypes: Vec<DType>,
    /// Subgroup sizes at which to also run the fused and decode subgroup forms emulated (besides
    /// the adapter's reported size when the probe did not confirm it).
    pub emulate: Vec<u32>,
    /// Query rows compared with the reference per case (all rows when the case is smaller).
    pub sample_rows: usize,
    /// The command prefix of repro lines (e.g. `WGPU_BACKEND=vulkan attn-bench`).
    pub command: String,
    /// Cases run at once, on this many threads (the default: the machine's cores, at most 4).
    pub threads: usize,
    /// The implementation the cases run on: wgpu (the library itself), or Dawn through traces
    /// ([`run_with`]). Picks the known-issue rows that apply.
    pub implementation: Implementation,
    /// Flags that repro lines add after `conformance` (`--dawn opengles`, say).
    pub repro_flags: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            size: Size::Quick,
            seed: 1,
            files: Vec::new(),
            only: Vec::new(),
            matrix: true,
            configs: Vec::new(),
            dtypes: DType::ALL.to_vec(),
            emulate: Vec::new(),
            sample_rows: 48,
            command: "attn-bench".into(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            implementation: Implementation::Wgpu,
            repro_flags: String::new(),
        }
    }
}

fn run_case(
    ctx: &Context,
    case: &Case,
    cfg: Config,
    probs: bool,
    sample: usize,
) -> (Outcome, Option<check::Report>, String) {
    let opts = AttentionOptions {
        return_probs: probs,
        ..cfg.options()
    };
    match check::verify_blocking(ctx, case, &opts, Some(sample), Tolerance::CONTRACT) {
        Ok(r) if r.passed => (Outcome::Pass, Some(r), String::new()),
        Ok(r) => {
            let d = r.failures.join("; ");
            (Outcome::Fail, Some(r), d)
        }
        Err(e @ Error::Unsupported { .. }) => (Outcome::Unsupported, None, e.to_string()),
        Err(e) => (Outcome::Error, None, e.to_string()),
    }
}

/// Where a case comes from: the matrix (by index) or a golden-format file.
enum Source {
    Matrix(usize),
    File(String),
}

/// One problem to run on every configuration: its case (in its dtype), or why its file could not
/// be read.
struct Work {
    source: Source,
    what: String,
    case: std::result::Result<Case, String>,
    dtype: DType,
    probs: bool,
}

impl Work {
    fn id(&self) -> String {
        match &self.source {
            Source::Matrix(n) => n.to_string(),
            Source::File(f) => f.clone(),
        }
    }

    /// The command that reruns this case alone on this configuration.
    fn repro(&self, set: &Settings, info: &wgpu::AdapterInfo, cfg: Config) -> String {
        let prefix = format!(
            "WGPU_BACKEND={} {} --adapter {:?}",
            info.backend.to_str(),
            set.command,
            info.name
        );
        let flags = if set.repro_flags.is_empty() {
            String::new()
        } else {
            format!(" {}", set.repro_flags)
        };
        match &self.source {
            Source::Matrix(n) => format!(
                "{prefix} conformance{flags} --size {} --seed {} --only {n} --config {} --dtype {}",
                format!("{:?}", set.size).to_lowercase(),
                set.seed,
                cfg.label(),
                self.dtype
            ),
            Source::File(f) if !flags.is_empty() => format!(
                "{prefix} conformance{flags} {f} --no-matrix --config {}",
                cfg.label()
            ),
            // `check` takes the variant and any emulated size; the form comes from the
            // environment.
            Source::File(f) => format!(
                "WGPU_ATTENTION_SUBGROUPS={} {prefix} check {f} --variant {}{}",
                cfg.subgroups as u8,
                cfg.variant,
                match cfg.subgroup_size.filter(|_| cfg.emulated) {
                    Some(n) => format!(" --emulate-subgroups {n}"),
                    None => String::new(),
                }
            ),
        }
    }
}

/// One case on one configuration, as an executor of [`run_with`] gets it.
pub struct Job<'a> {
    /// The case (in its dtype).
    pub case: &'a Case,
    /// The configuration.
    pub config: Config,
    /// Whether the attention weights are requested and checked.
    pub probs: bool,
    /// Query rows compared with the reference.
    pub sample: usize,
    /// The case's id and configuration and dtype, unique in the run (`12 fused+sg8 f16`).
    pub name: String,
}

/// What an executor says of one job: its outcome (pass, fail, error or unsupported), the
/// comparison's report when one was made, and the failures or the error in words.
pub type JobResult = (Outcome, Option<check::Report>, String);

/// Runs each job on the library's device ([`check::verify`]), `threads` at a time: the executor
/// of [`run`].
pub fn run_here(
    ctx: &Context,
    jobs: &[Job],
    threads: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<JobResult> {
    parallel(
        jobs.len(),
        threads,
        |n| {
            run_case(
                ctx,
                jobs[n].case,
                jobs[n].config,
                jobs[n].probs,
                jobs[n].sample,
            )
        },
        progress,
    )
}

/// `f(0..n)` on `threads` threads, the results in index order; `progress` gets (done, n) after
/// each. On a driver that compiles pipelines on the calling thread (lavapipe), one thread
/// compiles while another runs. Error scopes and traces are per thread in wgpu and here, so each
/// item's errors stay its own.
pub fn parallel<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> T + Sync,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<T> {
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let threads = threads.clamp(1, n.max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, f) = (&next, &f);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n || tx.send((i, f(i))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (done, (i, r)) in rx.into_iter().enumerate() {
            results[i] = Some(r);
            progress(done + 1, n);
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every item reports before the threads end"))
        .collect()
}

/// Runs the suite on one context. `progress` is called after each case with (done, total).
pub fn run(ctx: &Context, set: &Settings, mut progress: impl FnMut(usize, usize)) -> AdapterReport {
    let threads = set.threads;
    run_with(ctx, set, |jobs: &[Job]| {
        run_here(ctx, jobs, threads, &mut progress)
    })
}

/// Runs the suite with `execute` running the cases: it gets every case the known-issue table
/// does not skip and returns one result per job, in order. The report is built as [`run`]'s
/// (which executes on `ctx`); the Dawn replay (`attn-bench conformance --dawn`) records traces on
/// `ctx` and replays them elsewhere.
pub fn run_with(
    ctx: &Context,
    set: &Settings,
    execute: impl FnOnce(&[Job]) -> Vec<JobResult>,
) -> AdapterReport {
    let t0 = Instant::now();
    let info = ctx.adapter_info().clone();
    let mut cfgs = configs(ctx);
    for c in configs_with(ctx, &set.emulate) {
        if !cfgs.contains(&c) {
            cfgs.push(c);
        }
    }
    let cfgs: Vec<Config> = cfgs
        .into_iter()
        .filter(|c| set.configs.is_empty() || set.configs.contains(&c.label()))
        .collect();
    let matrix = matrix(set.size, set.seed);
    let mut work: Vec<Work> = Vec::new();
    for (n, p) in matrix.into_iter().enumerate() {
        if set.matrix && (set.only.is_empty() || set.only.contains(&n)) {
            for &dtype in &set.dtypes {
                work.push(Work {
                    source: Source::Matrix(n),
                    what: p.what.clone(),
                    case: Ok(p.case.clone().with_dtype(dtype)),
                    dtype,
                    probs: p.probs,
                });
            }
        }
    }
    for f in &set.files {
        // An unreadable file is an error of the run, reported like a failing case.
        #[cfg(feature = "serde")]
        let case = Case::load(f).map_err(|e| format!("unreadable: {e}"));
        #[cfg(not(feature = "serde"))]
        let case: std::result::Result<Case, String> =
            Err("reading case files needs the library's `serde` feature".into());
        work.push(Work {
            source: Source::File(f.clone()),
            what: case.as_ref().map_or_else(|e| e.clone(), |c| c.name.clone()),
            dtype: case.as_ref().map_or(DType::F32, |c| c.dtype),
            case,
            probs: false,
        });
    }

    let total = work.len() * cfgs.len();
    let key = |cfg: &Config, dtype: DType| format!("{} {dtype}", cfg.label());
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut known = Vec::new();

    // Every (problem, configuration); the executor gets those the table does not skip. Results
    // are gathered by index, so the report does not depend on the order they finish in.
    let imp = set.implementation;
    let find = |cfg: &Config| {
        known_issues::find(ctx.known_issues(), imp, &info, cfg.variant, cfg.subgroups)
    };
    let pairs: Vec<(usize, usize)> = (0..work.len())
        .flat_map(|w| (0..cfgs.len()).map(move |c| (w, c)))
        .collect();
    let mut results: Vec<Option<JobResult>> = Vec::with_capacity(pairs.len());
    let mut jobs = Vec::new();
    let mut job_of = Vec::new();
    for (n, &(wi, ci)) in pairs.iter().enumerate() {
        let (w, cfg) = (&work[wi], cfgs[ci]);
        results.push(match &w.case {
            Err(e) => Some((Outcome::Error, None, e.clone())),
            Ok(_) if find(&cfg).is_some_and(|k| k.action == Action::Skip) => {
                Some((Outcome::Skipped, None, String::new()))
            }
            Ok(case) => {
                jobs.push(Job {
                    case,
                    config: cfg,
                    probs: w.probs,
                    sample: set.sample_rows,
                    name: format!("{} {} {}", w.id(), cfg.label(), w.dtype),
                });
                job_of.push(n);
                None
            }
        });
    }
    let executed = execute(&jobs);
    assert_eq!(executed.len(), jobs.len(), "one result per job");
    for (n, r) in job_of.into_iter().zip(executed) {
        results[n] = Some(r);
    }

    for (&(wi, ci), result) in pairs.iter().zip(results) {
        let (w, cfg) = (&work[wi], &cfgs[ci]);
        let id = w.id();
        let label = cfg.label();
        let issue = find(cfg);
        let (mut outcome, report, mut detail) = result.expect("every job has a result");
        if let Some(k) = issue {
            outcome = match outcome {
                Outcome::Fail | Outcome::Error if k.action == Action::ExpectFail => {
                    Outcome::ExpectedFail
                }
                Outcome::Pass if k.action == Action::ExpectFail => Outcome::UnexpectedPass,
                o => o,
            };
            detail = format!("{} ({}) {detail}", k.reason, k.link);
        }
        let c = counts.entry(key(cfg, w.dtype)).or_default();
        match outcome {
            Outcome::Pass => c.pass += 1,
            Outcome::Fail => c.fail += 1,
            Outcome::Error => c.error += 1,
            Outcome::Unsupported => c.unsupported += 1,
            Outcome::Skipped => c.skipped += 1,
            Outcome::ExpectedFail => c.expected_fail += 1,
            Outcome::UnexpectedPass => c.unexpected_pass += 1,
        }
        if let Some(r) = &report {
            if r.rel_l2 > c.worst_rel_l2 || c.worst_rel_l2_case.is_empty() {
                c.worst_rel_l2 = r.rel_l2;
                c.worst_rel_l2_case = id.clone();
            }
            c.worst_abs_err = c.worst_abs_err.max(r.max_abs_err);
        }
        let result = CaseResult {
            id: id.clone(),
            what: w.what.clone(),
            config: label,
            dtype: w.dtype,
            outcome,
            max_abs_err: report.as_ref().map(|r| r.max_abs_err),
            rel_l2: report.as_ref().map(|r| r.rel_l2),
            detail,
            repro: w.repro(set, &info, *cfg),
        };
        match outcome {
            Outcome::Fail | Outcome::Error | Outcome::UnexpectedPass => problems.push(result),
            Outcome::Skipped | Outcome::ExpectedFail => known.push(result),
            _ => {}
        }
    }

    let l = ctx.limits();
    let limits = BTreeMap::from([
        (
            "max_storage_buffer_binding_size",
            l.max_storage_buffer_binding_size,
        ),
        ("max_buffer_size", l.max_buffer_size),
        (
            "max_compute_workgroup_storage_size",
            l.max_compute_workgroup_storage_size as u64,
        ),
        (
            "max_compute_invocations_per_workgroup",
            l.max_compute_invocations_per_workgroup as u64,
        ),
        (
            "max_compute_workgroups_per_dimension",
            l.max_compute_workgroups_per_dimension as u64,
        ),
    ]);
    AdapterReport {
        adapter: info.name.clone(),
        backend: info.backend.to_str().into(),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info),
        features: format!("{:?}", ctx.features()),
        subgroup_size: {
            let reported = if info.subgroup_min_size == info.subgroup_max_size {
                info.subgroup_min_size.to_string()
            } else {
                format!("{}..{}", info.subgroup_min_size, info.subgroup_max_size)
            };
            let support = crate::subgroups::support(ctx);
            format!(
                "{reported} reported; subgroup form at {} ({})",
                support
                    .size
                    .map_or_else(|| "none".to_string(), |n| n.to_string()),
                support.note
            )
        },
        limits,
        size: set.size,
        seed: set.seed,
        cases: total,
        dtypes: set.dtypes.clone(),
        seconds: t0.elapsed().as_secs_f64(),
        counts,
        problems,
        known,
        worked_around: known_issues::worked_around(ctx.known_issues(), imp, &info)
            .iter()
            .map(|k| format!("{} ({})", k.reason, k.link))
            .collect(),
    }
}

/// Every adapter wgpu can see on `backends`, each opened as a context (or the error opening it).
pub async fn all_adapters(
    backends: wgpu::Backends,
) -> Vec<(String, crate::error::Result<Context>)> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let mut out = Vec::new();
    for a in instance.enumerate_adapters(backends).await {
        let i = a.get_info();
        let name = format!("{} ({:?})", i.name, i.backend);
        out.push((name, Context::open(&a).await));
    }
    out
}
