//! Known driver issues, as data. The conformance suite consults the table (skipping a case or
//! expecting it to fail, and reporting an expected failure that passes), and so does the
//! automatic kernel choice, which never picks a variant the table marks on the adapter at hand.
//!
//! Rows are added when a conformance run finds a driver computing a variant wrongly; each carries
//! the reason and a link to the evidence. The table is empty today: on lavapipe (Mesa 22.3.6,
//! LLVM 15) every variant passes the whole suite, the loop limiter being avoided by design
//! (bounded loops per invocation) rather than listed here. See docs/CONFORMANCE.md.

use crate::options::Variant;
use crate::tuning::AdapterPattern;

/// What the suite does with a matching case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not run: the driver hangs, crashes or loses the device on it.
    Skip,
    /// Run, and expected to give wrong results; passing is reported as an unexpected pass.
    ExpectFail,
}

/// One known issue: a variant (or every variant, `None`) that a driver gets wrong.
#[derive(Debug, Clone, Copy)]
pub struct KnownIssue {
    pub adapter: AdapterPattern,
    pub variant: Option<Variant>,
    /// Only the subgroup form (`Some(true)`), only the workgroup-memory form (`Some(false)`), or
    /// both (`None`).
    pub subgroups: Option<bool>,
    pub action: Action,
    pub reason: &'static str,
    pub link: &'static str,
}

impl KnownIssue {
    pub fn applies(&self, info: &wgpu::AdapterInfo, variant: Variant, subgroups: bool) -> bool {
        self.adapter.matches(info)
            && self.variant.is_none_or(|v| v == variant)
            && self.subgroups.is_none_or(|s| s == subgroups)
    }
}

/// The table (empty: nothing has been found wrong yet; see the module documentation).
pub const TABLE: &[KnownIssue] = &[];

/// The first issue of `table` for this adapter, variant and form.
pub fn find<'a>(
    table: &'a [KnownIssue],
    info: &wgpu::AdapterInfo,
    variant: Variant,
    subgroups: bool,
) -> Option<&'a KnownIssue> {
    table.iter().find(|k| k.applies(info, variant, subgroups))
}

/// Whether the automatic choice must avoid a variant on this adapter: any row, skip or
/// expect-fail, for it in either form.
pub fn avoid(table: &[KnownIssue], info: &wgpu::AdapterInfo, variant: Variant) -> bool {
    table
        .iter()
        .any(|k| k.adapter.matches(info) && k.variant.is_none_or(|v| v == variant))
}
