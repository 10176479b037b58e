//! Subgroup sizes: what the adapter reports, what the device was seen to do, and the size the
//! fused kernel's subgroup form runs at.
//!
//! The subgroup form (`shaders/flash_subgroup.wgsl`) needs one promise: a workgroup of SG
//! invocations runs as one full subgroup with lanes 0..SG-1. An adapter's report of a fixed
//! subgroup size does not make that promise (Vulkan gives it only with REQUIRE_FULL_SUBGROUPS,
//! which wgpu does not set; WebGPU never), and lavapipe breaks it: at `LP_NATIVE_VECTOR_WIDTH`
//! 1024, 2048 or 4096 it reports 32, 64 or 128 but runs every workgroup as subgroups of 16, so a
//! kernel that trusts the report reads lanes that do not exist. So before the form is ever picked,
//! [`support`] runs `shaders/subgroup_probe.wgsl` at the reported size and keeps the size only if
//! the device did what the form needs; if the device ran smaller full subgroups, that size is
//! probed in turn and used instead. The result is cached per context and said in words
//! ([`SubgroupSupport::note`]), which `attn-bench info` and the conformance report print.

use crate::context::Context;
pub use crate::context::SubgroupSupport;
use crate::error::Result;
use crate::kernels::{bind_group, subgroup_probe, tensor_binding};
use crate::tensor::Tensor;

/// Subgroup sizes the fused kernel's subgroup form is generated and tested for (CI runs each:
/// 2, 4, 8 and 16 natively on lavapipe, 32, 64 and 128 in the emulated form; see README).
pub const FORM_SIZES: [u32; 7] = [2, 4, 8, 16, 32, 64, 128];

/// What one probe at a size saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The device kept the promise at this size; with a remark on what else it did oddly (the
    /// `subgroup_size` builtin disagreeing, which the form does not read).
    Holds(Option<String>),
    /// It did not. `ran`: the number of active lanes every subgroup had, when that was one
    /// number (a size worth probing in turn).
    Broken { why: String, ran: Option<u32> },
}

/// The context's subgroup support, probed on first use and cached.
pub fn support(ctx: &Context) -> SubgroupSupport {
    ctx.subgroup_cache()
        .get_or_init(|| {
            let info = ctx.adapter_info();
            let has = ctx.features().contains(wgpu::Features::SUBGROUP);
            let (min, max) = (info.subgroup_min_size, info.subgroup_max_size);
            let max_wg = ctx.limits().max_compute_invocations_per_workgroup;
            if ctx.trusts_subgroup_size() {
                let reported = (has && min == max).then_some(min);
                let size = reported.filter(|s| FORM_SIZES.contains(s) && *s <= max_wg);
                return SubgroupSupport {
                    reported,
                    size,
                    note: format!(
                        "{min}..{max} reported; not probed (ContextOptions::trust_subgroup_size)"
                    ),
                };
            }
            decide(has, min, max, max_wg, |sg| run_probe(ctx, sg))
        })
        .clone()
}

/// The decision, given the adapter's report and a way to probe a size (the device, or a test's
/// stand-in).
pub(crate) fn decide(
    has_subgroups: bool,
    min: u32,
    max: u32,
    max_workgroup: u32,
    mut probe: impl FnMut(u32) -> Result<Probe>,
) -> SubgroupSupport {
    let none = |reported, note: String| SubgroupSupport {
        reported,
        size: None,
        note,
    };
    if !has_subgroups {
        return none(None, "no SUBGROUP feature: workgroup-memory forms".into());
    }
    if min != max {
        return none(
            None,
            format!(
                "varying size {min}..{max}: the fused subgroup form needs one fixed size, so \
                 fused and decode run their workgroup-memory form"
            ),
        );
    }
    let usable = |s: u32| FORM_SIZES.contains(&s) && s <= max_workgroup;
    if !usable(min) {
        return none(
            Some(min),
            format!(
                "{min} reported: the fused subgroup form is generated for {FORM_SIZES:?} only, \
                 so fused and decode run their workgroup-memory form"
            ),
        );
    }
    let mut tried = Vec::new();
    let mut sg = min;
    loop {
        match probe(sg) {
            Ok(Probe::Holds(remark)) => {
                let remark = remark.map(|r| format!(" ({r})")).unwrap_or_default();
                let note = if sg == min {
                    format!("{min} reported and confirmed by the probe{remark}")
                } else {
                    format!(
                        "{min} reported, but {}; the probe confirmed full subgroups of {sg}{remark}, \
                         which the fused subgroup form runs at",
                        tried.join("; ")
                    )
                };
                return SubgroupSupport {
                    reported: Some(min),
                    size: Some(sg),
                    note,
                };
            }
            Ok(Probe::Broken { why, ran }) => {
                tried.push(format!("at {sg}: {why}"));
                match ran {
                    Some(r) if r < sg && usable(r) => sg = r,
                    _ => break,
                }
            }
            Err(e) => {
                let e = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                tried.push(format!("at {sg}: the probe failed to run ({e})"));
                break;
            }
        }
    }
    none(
        Some(min),
        format!(
            "{min} reported, but {}: fused and decode run their workgroup-memory form",
            tried.join("; ")
        ),
    )
}

/// The decision for an adapter that reports a fixed size `reported`, on a device where
/// `holds(size)` says whether the probe passes at a size: which size the fused and decode subgroup
/// forms would run at. Public so that a test can hold the automatic choice to the sizes CI runs.
pub fn decide_with(reported: u32, holds: impl Fn(u32) -> bool) -> SubgroupSupport {
    decide(true, reported, reported, u32::MAX, |sg| {
        Ok(if holds(sg) {
            Probe::Holds(None)
        } else {
            Probe::Broken {
                why: "does not hold".into(),
                ran: None,
            }
        })
    })
}

/// Runs `shaders/subgroup_probe.wgsl` at `sg` and reads what every invocation saw.
fn run_probe(ctx: &Context, sg: u32) -> Result<Probe> {
    let kernel = ctx.kernel(&subgroup_probe::SOURCE, subgroup_probe::key(sg))?;
    let words = (subgroup_probe::WORKGROUPS * sg * 4) as usize;
    let out = Tensor::filled(ctx, &[words], f32::from_bits(u32::MAX))?;
    ctx.scoped("subgroup probe", || {
        let bg = bind_group(ctx, &kernel.layout, vec![tensor_binding(&out)]);
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-attention subgroup probe"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wgpu-attention subgroup probe"),
                timestamp_writes: None,
            });
            kernel.dispatch(&mut pass, &bg, &[], [subgroup_probe::WORKGROUPS, 1, 1]);
        }
        ctx.queue().submit([enc.finish()]);
    })?;
    let words: Vec<u32> = out
        .read_blocking(ctx)?
        .into_iter()
        .map(f32::to_bits)
        .collect();
    Ok(judge(sg, &words))
}

/// Whether the words the probe wrote (lane, active lanes, subgroup_size, wrong broadcasts per
/// invocation) show the promise kept at `sg`.
pub(crate) fn judge(sg: u32, words: &[u32]) -> Probe {
    let mut problems = Vec::new();
    let mut active = std::collections::BTreeSet::new();
    let mut builtin = std::collections::BTreeSet::new();
    let mut wrong = 0u32;
    for (w, group) in words.chunks(4 * sg as usize).enumerate() {
        let mut lanes: Vec<u32> = group.chunks(4).map(|i| i[0]).collect();
        lanes.sort_unstable();
        for inv in group.chunks(4) {
            active.insert(inv[1]);
            builtin.insert(inv[2]);
            wrong += inv[3];
        }
        if lanes != (0..sg).collect::<Vec<_>>() && problems.is_empty() {
            let distinct: std::collections::BTreeSet<_> = lanes.iter().collect();
            problems.push(format!(
                "workgroup {w} has {} distinct lanes (lanes 0..{} expected)",
                distinct.len(),
                sg - 1
            ));
        }
    }
    if active != [sg].into() {
        problems.push(format!(
            "subgroups ran with {:?} active lanes",
            active.iter().collect::<Vec<_>>()
        ));
    }
    let builtin_says = (builtin != [sg].into()).then(|| {
        format!(
            "the subgroup_size builtin says {:?}",
            builtin.iter().collect::<Vec<_>>()
        )
    });
    if wrong > 0 {
        problems.push(format!("{wrong} broadcasts returned another lane's value"));
    }
    if problems.is_empty() {
        return Probe::Holds(builtin_says);
    }
    problems.extend(builtin_says);
    let ran = (active.len() == 1).then(|| *active.first().unwrap_or(&0));
    Probe::Broken {
        why: problems.join(", "),
        ran,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's words for a device that runs workgroups of `sg` as subgroups of `real`.
    fn words(sg: u32, real: u32, builtin: u32) -> Vec<u32> {
        (0..4 * sg)
            .flat_map(|i| {
                let lane = (i % sg) % real;
                let wrong = sg.saturating_sub(real);
                [lane, real.min(sg), builtin, wrong]
            })
            .collect()
    }

    #[test]
    fn an_honest_device_holds() {
        for sg in FORM_SIZES {
            assert_eq!(
                judge(sg, &words(sg, sg, sg)),
                Probe::Holds(None),
                "size {sg}"
            );
        }
    }

    #[test]
    fn lavapipe_at_width_1024_is_seen_and_16_is_used() {
        // Reports 32, runs subgroups of 16 (the subgroup_size builtin still says 32).
        let p = judge(32, &words(32, 16, 32));
        let Probe::Broken { why, ran } = &p else {
            panic!("{p:?}")
        };
        assert_eq!(*ran, Some(16));
        assert!(
            why.contains("16 distinct lanes") && why.contains("[16] active"),
            "{why}"
        );
        // At 16 the builtin still says 32, which the form does not read: a remark, not a failure.
        let s = decide(true, 32, 32, 1024, |sg| Ok(judge(sg, &words(sg, 16, 32))));
        assert_eq!(s.size, Some(16), "{}", s.note);
        assert_eq!(s.reported, Some(32));
        assert!(s.note.contains("32 reported, but at 32:"), "{}", s.note);
        assert!(s.note.contains("builtin says [32]"), "{}", s.note);
        // A device whose broadcasts are wrong at every size gets the workgroup-memory form.
        let s = decide(true, 32, 32, 1024, |sg| {
            let mut w = words(sg, sg.min(16), 32);
            w[3] = 1;
            Ok(judge(sg, &w))
        });
        assert_eq!(s.size, None, "{}", s.note);
    }

    #[test]
    fn varying_missing_and_odd_sizes_take_the_workgroup_form() {
        let never = |_| -> Result<Probe> { panic!("no probe expected") };
        assert_eq!(decide(false, 8, 8, 1024, never).size, None);
        assert_eq!(decide(true, 32, 64, 1024, never).size, None);
        assert_eq!(decide(true, 256, 256, 1024, never).size, None);
        assert_eq!(decide(true, 1, 1, 1024, never).size, None);
        assert_eq!(decide(true, 128, 128, 64, never).size, None);
        let failed = decide(true, 8, 8, 1024, |_| {
            Err(crate::Error::DeviceLost("test".into()))
        });
        assert_eq!(failed.size, None);
        assert!(failed.note.contains("failed to run"), "{}", failed.note);
    }
}
