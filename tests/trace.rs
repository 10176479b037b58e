//! Traces (`wgpu_attention::trace`) hold everything a call does on the GPU: replayed here by a
//! small independent replayer on a second wgpu device (kernels compiled from the trace's WGSL,
//! buffers made from the trace's contents, the commands in order), every configuration's outputs
//! equal the reference within the contract. A trace that missed a buffer's contents, a dispatch,
//! a copy or a dynamic offset would not. (The Dawn replayer, tests/dawn/replay.mjs, does the same
//! on Dawn; `attn-bench conformance --dawn` runs it.)

mod common;

use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::trace::{BindingKind, Command, Init, Trace};
use wgpu_attention::{AttentionOptions, Causal, DType, MaskKind};

/// Replays `trace` on the context's device from scratch; returns the output regions' bytes.
fn replay(trace: &Trace) -> Vec<Vec<u8>> {
    let ctx = common::ctx();
    let (d, q) = (ctx.device(), ctx.queue());
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let buffers: Vec<wgpu::Buffer> = trace
        .buffers
        .iter()
        .map(|b| {
            let buf = d.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&b.label),
                size: b.size,
                usage: usage
                    | if b.uniform {
                        wgpu::BufferUsages::UNIFORM
                    } else {
                        wgpu::BufferUsages::empty()
                    },
                mapped_at_creation: false,
            });
            if let Init::Data { offset, len } = b.init {
                q.write_buffer(
                    &buf,
                    0,
                    &trace.data[offset as usize..(offset + len) as usize],
                );
            }
            buf
        })
        .collect();
    let kernels: Vec<(wgpu::ComputePipeline, wgpu::BindGroupLayout)> = trace
        .kernels
        .iter()
        .map(|k| {
            let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&k.label),
                source: wgpu::ShaderSource::Wgsl(k.wgsl.as_str().into()),
            });
            let entries: Vec<wgpu::BindGroupLayoutEntry> = k
                .bindings
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: match b {
                            BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                            BindingKind::Read => {
                                wgpu::BufferBindingType::Storage { read_only: true }
                            }
                            BindingKind::ReadWrite => {
                                wgpu::BufferBindingType::Storage { read_only: false }
                            }
                        },
                        has_dynamic_offset: *b == BindingKind::Uniform,
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            let layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &entries,
            });
            let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&k.label),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(&k.entry),
                compilation_options: Default::default(),
                cache: None,
            });
            (pipeline, layout)
        })
        .collect();
    let mut enc = d.create_command_encoder(&Default::default());
    for c in &trace.commands {
        match c {
            Command::Dispatch {
                kernel,
                bindings,
                dynamic_offsets,
                groups,
            } => {
                let (pipeline, layout) = &kernels[*kernel];
                let entries: Vec<wgpu::BindGroupEntry> = bindings
                    .iter()
                    .enumerate()
                    .map(|(i, r)| wgpu::BindGroupEntry {
                        binding: i as u32,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &buffers[r.buffer],
                            offset: r.offset,
                            size: std::num::NonZeroU64::new(r.size),
                        }),
                    })
                    .collect();
                let group = d.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout,
                    entries: &entries,
                });
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &group, dynamic_offsets);
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
            }
            Command::Copy {
                src,
                dst,
                dst_offset,
            } => enc.copy_buffer_to_buffer(
                &buffers[src.buffer],
                src.offset,
                &buffers[*dst],
                *dst_offset,
                src.size,
            ),
            Command::Submit => {
                let done =
                    std::mem::replace(&mut enc, d.create_command_encoder(&Default::default()));
                q.submit([done.finish()]);
            }
        }
    }
    q.submit([enc.finish()]);
    trace
        .outputs
        .iter()
        .map(|o| {
            let size = o.region.size.next_multiple_of(4);
            let staging = d.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut e = d.create_command_encoder(&Default::default());
            e.copy_buffer_to_buffer(
                &buffers[o.region.buffer],
                o.region.offset,
                &staging,
                0,
                size,
            );
            q.submit([e.finish()]);
            staging
                .slice(..)
                .map_async(wgpu::MapMode::Read, |r| r.unwrap());
            d.poll(wgpu::PollType::wait_indefinitely()).unwrap();
            let bytes =
                staging.slice(..).get_mapped_range().unwrap()[..o.region.size as usize].to_vec();
            bytes
        })
        .collect()
}

fn replays_right(case: &Case, probs: bool) -> usize {
    let ctx = common::ctx();
    let mut checked = 0;
    for cfg in common::configs() {
        if !case.supports(cfg.variant) {
            continue;
        }
        let opts = AttentionOptions {
            return_probs: probs,
            ..cfg.options()
        };
        let rec = match check::record(ctx, case, &opts, None) {
            Ok(r) => r,
            Err(wgpu_attention::Error::Unsupported { .. }) => continue,
            Err(e) => panic!("{} {}: recording failed: {e}", case.name, cfg.label()),
        };
        let t = &rec.trace;
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert!(!t.kernels.is_empty() && !t.commands.is_empty());
        let names: Vec<&str> = t.outputs.iter().map(|o| o.name.as_str()).collect();
        let want: &[&str] = if probs {
            &["out", "lse", "probs"]
        } else {
            &["out", "lse"]
        };
        assert_eq!(names, want);
        // The outputs start poisoned in the trace: what the replay does not write stays NaN.
        let out = &t.buffers[t.outputs[0].region.buffer];
        assert!(matches!(out.init, Init::Data { .. }), "poisoned O recorded");
        let report = rec.compare(&replay(t), Tolerance::CONTRACT);
        assert!(
            report.passed,
            "{} {}: the replayed trace is wrong: {}",
            case.name,
            cfg.label(),
            report.line()
        );
        // And without running it, nothing is right: the comparison can fail.
        let untouched: Vec<Vec<u8>> = t
            .outputs
            .iter()
            .map(|o| match t.buffers[o.region.buffer].init {
                Init::Data { offset, .. } => t.data[(offset + o.region.offset) as usize
                    ..(offset + o.region.offset + o.region.size) as usize]
                    .to_vec(),
                Init::Zero => vec![0; o.region.size as usize],
            })
            .collect();
        assert!(!rec.compare(&untouched, Tolerance::CONTRACT).passed);
        checked += 1;
    }
    checked
}

/// Shapes: odd dims (3, 59) with Lq ≠ Lk and GQA 4/2, a bool mask with P (staged copies P from
/// its scores buffer), 16-bit data (the packing kernel runs after the call), key lengths with
/// bottom-right causality, and 1,100 keys (several fused dispatches at one dynamic offset each).
#[test]
fn a_replayed_trace_computes_what_the_call_computed() {
    let mut n = 0;
    n += replays_right(
        &Case::random("odd gqa", common::shape(1, 4, 2, 7, 13, 59, 3), 11),
        false,
    );
    n += replays_right(
        &Case::random("mask", common::shape(2, 2, 1, 9, 21, 16, 16), 12).with_random_mask(
            MaskKind::Bool,
            [false, true, false, false],
            0.5,
            13,
        ),
        true,
    );
    n += replays_right(
        &Case::random("f16", common::shape(1, 2, 2, 5, 33, 24, 24), 14).with_dtype(DType::F16),
        false,
    );
    n += replays_right(
        &Case::random("bf16 kl", common::shape(2, 2, 2, 3, 40, 8, 8), 15)
            .with_dtype(DType::BF16)
            .with_key_lengths(vec![17, 40])
            .with_causal(Causal::BottomRight),
        false,
    );
    n += replays_right(
        &Case::random("long", common::shape(1, 2, 1, 2, 1100, 32, 32), 16),
        false,
    );
    assert!(n >= 5 * 3, "every variant of every case replayed ({n})");
}

/// Outside a recorder nothing is recorded, and inside one the work of this thread only.
#[test]
fn recording_is_per_thread_and_off_by_default() {
    let ctx = common::ctx();
    let case = Case::random("t", common::shape(1, 1, 1, 4, 8, 8, 8), 1);
    let ((), trace) = wgpu_attention::trace::record(|| {
        std::thread::scope(|s| {
            s.spawn(|| {
                check::verify_blocking(
                    ctx,
                    &case,
                    &AttentionOptions::default(),
                    None,
                    Tolerance::CONTRACT,
                )
                .unwrap();
            });
        });
    });
    assert!(trace.commands.is_empty() && trace.kernels.is_empty());
}
