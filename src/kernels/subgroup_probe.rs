//! Host side of `shaders/subgroup_probe.wgsl`: the kernel that checks a subgroup size on the
//! device before the fused kernel's subgroup form uses it (see [`crate::subgroups`]).

use super::KernelSource;
use crate::pipeline::{Binding, PipelineKey};

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    prelude: super::COMMON_WGSL,
    name: "subgroup_probe",
    source: include_str!("../../shaders/subgroup_probe.wgsl"),
    entry: "main",
    bindings: &[Binding::ReadWrite],
    expand: Some(expand),
};

/// Workgroups one probe dispatches: more than one, so that a driver that forms subgroups
/// differently in later workgroups is seen too.
pub(crate) const WORKGROUPS: u32 = 4;

pub(crate) fn key(sg: u32) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![("SG", sg)],
    }
}

/// One broadcast per lane, each from a literal lane (as the fused kernel does them).
fn expand(source: &str, constants: &[(&'static str, u32)]) -> String {
    let sg = constants
        .iter()
        .find(|(n, _)| *n == "SG")
        .map_or(1, |(_, v)| *v);
    let mut out = String::with_capacity(source.len() + 80 * sg as usize);
    for line in source.lines() {
        if line.trim() == "//@gen broadcasts" {
            for l in 0..sg {
                out += &format!(
                    "    wrong += select(1u, 0u, subgroupBroadcast(mine, {l}u) == {}u);\n",
                    l * 7 + 3
                );
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
