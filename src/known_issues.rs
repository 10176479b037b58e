//! Known driver issues, as data. The conformance suite consults the table (skipping a case or
//! expecting it to fail, and reporting an expected failure that passes), and so does the
//! automatic kernel choice, which never picks a variant the table marks on the adapter at hand.
//!
//! Rows are added when a conformance run finds a driver computing a variant wrongly; each carries
//! the reason and a link to the evidence. No variant is marked wrong today: on lavapipe (Mesa
//! 22.3.6, LLVM 15) every variant passes the whole suite, the loop limiter being avoided by design
//! (bounded loops per invocation) rather than listed here. The rows that are here are driver
//! problems the library detects and works around ([`Action::WorkedAround`]): listed so that the
//! conformance report names them on the adapters they concern. See docs/CONFORMANCE.md.

use crate::kinds::Variant;
use crate::tuning::AdapterPattern;

/// What the suite does with a matching case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Action {
    /// Not run: the driver hangs, crashes or loses the device on it.
    Skip,
    /// Run, and expected to give wrong results; passing is reported as an unexpected pass.
    ExpectFail,
    /// A driver problem the library detects and works around: every case runs and must pass;
    /// the report lists the row. The automatic choice does not avoid the variant for it.
    WorkedAround,
}

/// The WebGPU implementation that compiles and runs the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Implementation {
    /// wgpu, whose WGSL compiler is naga: the library's own.
    Wgpu,
    /// Dawn, the engine of Chrome's WebGPU, whose WGSL compiler is Tint (the replay suite,
    /// `tests/dawn/replay.mjs`).
    Dawn,
}

/// One known issue: a variant (or every variant, `None`) that a driver gets wrong, or a difference
/// between WebGPU implementations.
#[derive(Debug, Clone, Copy)]
pub struct KnownIssue {
    /// The implementation it concerns (`None`: any).
    pub implementation: Option<Implementation>,
    /// For rows about compiling kernels: a piece of WGSL that the kernels it concerns contain
    /// (empty: every kernel, or a row about running cases).
    pub kernel: &'static str,
    /// The adapters it concerns.
    pub adapter: AdapterPattern,
    /// The variant it concerns (every variant: `None`).
    pub variant: Option<Variant>,
    /// Only the subgroup form (`Some(true)`), only the workgroup-memory form (`Some(false)`), or
    /// both (`None`).
    pub subgroups: Option<bool>,
    /// What the suite and the automatic choice do about it.
    pub action: Action,
    /// What goes wrong, in words.
    pub reason: &'static str,
    /// Where the evidence is.
    pub link: &'static str,
}

impl KnownIssue {
    /// Whether the row concerns this adapter, variant and form.
    pub fn applies(&self, info: &wgpu::AdapterInfo, variant: Variant, subgroups: bool) -> bool {
        self.implementation
            .is_none_or(|i| i == Implementation::Wgpu)
            && self.applies_on(Implementation::Wgpu, info, variant, subgroups)
    }

    /// Whether the row concerns this implementation, adapter, variant and form.
    pub fn applies_on(
        &self,
        implementation: Implementation,
        info: &wgpu::AdapterInfo,
        variant: Variant,
        subgroups: bool,
    ) -> bool {
        self.implementation.is_none_or(|i| i == implementation)
            && self.kernel.is_empty()
            && self.adapter.matches(info)
            && self.variant.is_none_or(|v| v == variant)
            && self.subgroups.is_none_or(|s| s == subgroups)
    }
}

/// lavapipe above `LP_NATIVE_VECTOR_WIDTH` 512 reports subgroups of width / 32 (32, 64, 128) but
/// runs every workgroup as subgroups of at most 16 lanes (its `subgroup_size` builtin still says
/// width / 32). Found with `shaders/subgroup_probe.wgsl`; Mesa 22.3.6 and 25.0.7 both do it.
const LAVAPIPE_WIDE_SUBGROUPS: &str = "lavapipe reports subgroups wider than 16 lanes but runs \
     subgroups of 16; the subgroup probe sees it and the fused and decode subgroup forms run at 16 \
     (their code for the reported size is checked in the emulated form)";
const LAVAPIPE_LINK: &str = "docs/CONFORMANCE.md#subgroup-sizes";

const fn lavapipe_wide(name: &'static str) -> KnownIssue {
    KnownIssue {
        implementation: None,
        kernel: "",
        adapter: AdapterPattern {
            backend: None,
            vendor: None,
            name,
            driver: "",
        },
        variant: None,
        subgroups: Some(true),
        action: Action::WorkedAround,
        reason: LAVAPIPE_WIDE_SUBGROUPS,
        link: LAVAPIPE_LINK,
    }
}

/// The table (no variant is marked wrong; see the module documentation). The rows for Dawn are
/// differences between naga and Tint found by the replay suite (docs/CONFORMANCE.md, "Dawn").
pub const TABLE: &[KnownIssue] = &[
    lavapipe_wide("llvmpipe (LLVM 15.0.6, 1024 bits)"),
    lavapipe_wide("llvmpipe (LLVM 15.0.6, 2048 bits)"),
    lavapipe_wide("llvmpipe (LLVM 15.0.6, 4096 bits)"),
    KnownIssue {
        implementation: Some(Implementation::Dawn),
        kernel: "",
        adapter: AdapterPattern::ANY,
        variant: None,
        subgroups: Some(true),
        action: Action::WorkedAround,
        reason: "naga 30 rejects `enable subgroups;` (not implemented there) and enables subgroup \
                 builtins through the device feature; WebGPU requires the directive, so a trace \
                 adds it to the kernels that use subgroup builtins (trace::for_tint)",
        link: "https://github.com/gfx-rs/wgpu/issues/5555",
    },
    KnownIssue {
        implementation: Some(Implementation::Dawn),
        kernel: "u64",
        adapter: AdapterPattern::ANY,
        variant: None,
        subgroups: Some(true),
        action: Action::Skip,
        reason: "64-bit integers (the subgroup form's wide loads, `vec4<u64>`) are a wgpu-native \
                 extension (Features::SHADER_INT64), not WebGPU: Tint has no u64, and the library \
                 builds these loads only on a device with SHADER_INT64, which no WebGPU \
                 implementation offers",
        link:
            "https://docs.rs/wgpu/30.0.1/wgpu/struct.Features.html#associatedconstant.SHADER_INT64",
    },
    KnownIssue {
        implementation: Some(Implementation::Dawn),
        kernel: "",
        adapter: AdapterPattern {
            backend: None,
            vendor: None,
            name: "llvmpipe",
            driver: "",
        },
        variant: None,
        subgroups: Some(true),
        action: Action::WorkedAround,
        reason: "llvmpipe compiles Tint's SPIR-V of the generated subgroup kernels several \
                 times slower than naga's (the d128 decode kernel 35 s against 1.3 s, a d64 \
                 fused one 12.9 s against 2.5 s); results are right, and the Dawn suite on \
                 Vulkan takes minutes longer for it",
        link: "docs/CONFORMANCE.md#what-the-suite-found",
    },
];

/// The first row of `table` about compiling kernels on `implementation` whose WGSL fragment
/// `wgsl` contains.
pub fn for_kernel<'a>(
    table: &'a [KnownIssue],
    implementation: Implementation,
    wgsl: &str,
) -> Option<&'a KnownIssue> {
    table.iter().find(|k| {
        !k.kernel.is_empty()
            && k.implementation.is_none_or(|i| i == implementation)
            && wgsl.contains(k.kernel)
    })
}

/// The first issue of `table` that changes what the suite does with a case of this adapter,
/// variant and form (a skip or an expected failure; worked-around rows change nothing).
pub fn find<'a>(
    table: &'a [KnownIssue],
    implementation: Implementation,
    info: &wgpu::AdapterInfo,
    variant: Variant,
    subgroups: bool,
) -> Option<&'a KnownIssue> {
    table.iter().find(|k| {
        k.action != Action::WorkedAround && k.applies_on(implementation, info, variant, subgroups)
    })
}

/// The worked-around problems of this adapter on `implementation`, for the report.
pub fn worked_around<'a>(
    table: &'a [KnownIssue],
    implementation: Implementation,
    info: &wgpu::AdapterInfo,
) -> Vec<&'a KnownIssue> {
    table
        .iter()
        .filter(|k| {
            k.action == Action::WorkedAround
                && k.implementation.is_none_or(|i| i == implementation)
                && k.adapter.matches(info)
        })
        .collect()
}

/// Whether the automatic choice must avoid a variant on this adapter: any skip or expect-fail
/// row for it in either form.
pub fn avoid(table: &[KnownIssue], info: &wgpu::AdapterInfo, variant: Variant) -> bool {
    table.iter().any(|k| {
        k.action != Action::WorkedAround
            && k.implementation.is_none_or(|i| i == Implementation::Wgpu)
            && k.kernel.is_empty()
            && k.adapter.matches(info)
            && k.variant.is_none_or(|v| v == variant)
    })
}
