//! Traces: everything one attention call does on the GPU, recorded so that another WebGPU
//! implementation can replay it (`tests/dawn/replay.mjs` replays traces on Dawn, the engine of
//! Chrome's WebGPU, whose WGSL compiler is Tint rather than naga).
//!
//! [`record`] runs a closure (an attention call) with a recorder on the calling thread and returns
//! what the library did on the GPU meanwhile:
//! - each pipeline's final WGSL source, entry point and binding kinds ([`TraceKernel`]);
//! - every buffer the work touched, with its size and its contents when the work first touched it
//!   (buffers made during the call are recorded as made: zeros, or the bytes written into them;
//!   buffers made before, such as the inputs and the poisoned outputs, are read back from the GPU
//!   at that moment);
//! - the uniform parameter blocks (as the contents of their buffers) and dynamic offsets;
//! - dispatches with their bindings and sizes, buffer copies and submissions, in order.
//!
//! The library records through a few hooks (buffer creation, bind groups, dispatches, copies,
//! submissions) that cost one thread-local check when no recorder is active; the dispatch logic
//! itself is the library's own, not a copy of it. The recorder is per thread, like wgpu's error
//! scopes, so calls on other threads are not recorded.
//!
//! [`TraceSet::save`] (feature `serde`) writes traces as a JSON manifest and a binary file of buffer
//! contents; the format is described there.

use std::cell::RefCell;
use std::collections::HashMap;

/// How a kernel binds one slot of its bind group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum BindingKind {
    /// A uniform buffer with a dynamic offset (the parameter block).
    Uniform,
    /// A read-only storage buffer.
    Read,
    /// A read-write storage buffer.
    ReadWrite,
}

/// One compiled pipeline as it was built.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TraceKernel {
    /// The specialization's label (kernel name and constants).
    pub label: String,
    /// The final WGSL source given to the device.
    pub wgsl: String,
    /// The specialization constants baked into it (also in the source, as `const` lines).
    pub constants: Vec<(String, u32)>,
    /// The entry point.
    pub entry: String,
    /// The bind group layout: one kind per binding, at bindings 0, 1, 2, ...
    pub bindings: Vec<BindingKind>,
}

/// A buffer's initial contents.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Init {
    /// All zero (a buffer made during the call and never written by the host).
    Zero,
    /// These bytes, at `offset` in the trace's data, `len` long (the buffer's size).
    Data {
        /// Byte offset in the trace's data.
        offset: u64,
        /// Byte count.
        len: u64,
    },
}

/// One buffer.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TraceBuffer {
    /// Its label.
    pub label: String,
    /// Its size in bytes (a multiple of 4).
    pub size: u64,
    /// Whether it is bound as a uniform buffer anywhere.
    pub uniform: bool,
    /// Its contents before the call's work.
    pub init: Init,
}

/// A byte range of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Region {
    /// Index into [`Trace::buffers`].
    pub buffer: usize,
    /// Byte offset.
    pub offset: u64,
    /// Byte count.
    pub size: u64,
}

/// One step of the work, in the order the library recorded it.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "op", rename_all = "snake_case"))]
pub enum Command {
    /// A compute dispatch.
    Dispatch {
        /// Index into [`Trace::kernels`].
        kernel: usize,
        /// The bind group: the region bound at each binding.
        bindings: Vec<Region>,
        /// The dynamic offset of the uniform binding, where the kernel has one.
        dynamic_offsets: Vec<u32>,
        /// Workgroups in x, y and z.
        groups: [u32; 3],
    },
    /// A buffer-to-buffer copy.
    Copy {
        /// Source range.
        src: Region,
        /// Destination buffer.
        dst: usize,
        /// Destination offset.
        dst_offset: u64,
    },
    /// The recorded commands so far were submitted to the queue.
    Submit,
}

/// A named region whose contents after the work are the call's results.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Output {
    /// What it is (`out`, `lse`, `probs`).
    pub name: String,
    /// Where it is.
    pub region: Region,
}

/// Everything one call did on the GPU (see the module documentation).
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Trace {
    /// Pipelines, in the order first used.
    pub kernels: Vec<TraceKernel>,
    /// Buffers, in the order first touched.
    pub buffers: Vec<TraceBuffer>,
    /// The work.
    pub commands: Vec<Command>,
    /// The regions that hold the results ([`output`] adds them).
    pub outputs: Vec<Output>,
    /// Buffer contents ([`Init::Data`] ranges point into this).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub data: Vec<u8>,
    /// Why the recording is incomplete, if it is (a buffer that could not be read back, say).
    pub errors: Vec<String>,
}

#[derive(Default)]
struct Recorder {
    trace: Trace,
    buffers: HashMap<wgpu::Buffer, usize>,
    kernels: HashMap<String, usize>,
    groups: HashMap<wgpu::BindGroup, Vec<Region>>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Runs `f` with a recorder on this thread and returns its result and the trace of the GPU work
/// it did. Nested calls record into the outermost recorder only.
pub fn record<T>(f: impl FnOnce() -> T) -> (T, Trace) {
    let outer = RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        let outer = r.is_some();
        if !outer {
            *r = Some(Recorder::default());
        }
        outer
    });
    let out = f();
    let trace = if outer {
        Trace::default()
    } else {
        RECORDER
            .with(|r| r.borrow_mut().take())
            .map(|r| r.trace)
            .unwrap_or_default()
    };
    (out, trace)
}

/// Whether a recorder is active on this thread.
pub(crate) fn active() -> bool {
    RECORDER.with(|r| r.borrow().is_some())
}

fn with<R>(f: impl FnOnce(&mut Recorder) -> R) -> Option<R> {
    RECORDER.with(|r| r.borrow_mut().as_mut().map(f))
}

/// Hook: a buffer made during the call, with the bytes written into it at once (or none: zeros).
pub(crate) fn made(buffer: &wgpu::Buffer, label: &str, bytes: Option<&[u8]>) {
    with(|r| {
        let init = match bytes {
            Some(b) if b.iter().any(|&x| x != 0) => {
                let offset = r.trace.data.len() as u64;
                r.trace.data.extend_from_slice(b);
                r.trace.data.resize((offset + buffer.size()) as usize, 0);
                Init::Data {
                    offset,
                    len: buffer.size(),
                }
            }
            _ => Init::Zero,
        };
        let n = r.trace.buffers.len();
        r.trace.buffers.push(TraceBuffer {
            label: label.to_string(),
            size: buffer.size(),
            uniform: false,
            init,
        });
        r.buffers.insert(buffer.clone(), n);
    });
}

/// The buffer's index, reading its contents back from the GPU if the call did not make it (its
/// contents as of now: nothing the call recorded has run yet).
fn buffer_index(
    r: &mut Recorder,
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    buffer: &wgpu::Buffer,
) -> usize {
    if let Some(&n) = r.buffers.get(buffer) {
        return n;
    }
    let n = r.trace.buffers.len();
    let init = match read_back(device, queue, buffer) {
        Ok(bytes) if bytes.iter().all(|&x| x == 0) => Init::Zero,
        Ok(bytes) => {
            let offset = r.trace.data.len() as u64;
            r.trace.data.extend_from_slice(&bytes);
            Init::Data {
                offset,
                len: bytes.len() as u64,
            }
        }
        Err(e) => {
            r.trace
                .errors
                .push(format!("buffer {n} ({} bytes): {e}", buffer.size()));
            Init::Zero
        }
    };
    r.trace.buffers.push(TraceBuffer {
        label: "made before the call".into(),
        size: buffer.size(),
        uniform: false,
        init,
    });
    r.buffers.insert(buffer.clone(), n);
    n
}

fn read_back(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    buffer: &wgpu::Buffer,
) -> std::result::Result<Vec<u8>, String> {
    if !buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
        return Err("made before the call without COPY_SRC: its contents cannot be read".into());
    }
    let size = buffer.size();
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("wgpu-attention trace snapshot"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("wgpu-attention trace snapshot"),
    });
    enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
    queue.submit([enc.finish()]);
    let slice = staging.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |res| {
        let _ = tx.send(res);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| e.to_string())?;
    match rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(e.to_string()),
    }
    let bytes = slice
        .get_mapped_range()
        .map_err(|e| e.to_string())?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}

/// Hook: a bind group made from these (buffer, offset, size) entries at bindings 0, 1, ...
pub(crate) fn bind_group(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    group: &wgpu::BindGroup,
    entries: &[(wgpu::Buffer, u64, u64)],
) {
    with(|r| {
        let regions = entries
            .iter()
            .map(|(b, offset, size)| Region {
                buffer: buffer_index(r, device, queue, b),
                offset: *offset,
                size: *size,
            })
            .collect();
        r.groups.insert(group.clone(), regions);
    });
}

/// Hook: a dispatch of the kernel `label` (built from `wgsl`) with this bind group.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch(
    label: &str,
    wgsl: &str,
    constants: &[(&'static str, u32)],
    entry: &str,
    bindings: &[BindingKind],
    group: &wgpu::BindGroup,
    dynamic_offsets: &[u32],
    groups: [u32; 3],
) {
    with(|r| {
        let kernel = match r.kernels.get(label) {
            Some(&k) => k,
            None => {
                let k = r.trace.kernels.len();
                r.trace.kernels.push(TraceKernel {
                    label: label.to_string(),
                    wgsl: wgsl.to_string(),
                    constants: constants.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                    entry: entry.to_string(),
                    bindings: bindings.to_vec(),
                });
                r.kernels.insert(label.to_string(), k);
                k
            }
        };
        let Some(regions) = r.groups.get(group).cloned() else {
            r.trace
                .errors
                .push(format!("dispatch of {label} with an unrecorded bind group"));
            return;
        };
        for (kind, region) in bindings.iter().zip(&regions) {
            if *kind == BindingKind::Uniform {
                r.trace.buffers[region.buffer].uniform = true;
            }
        }
        r.trace.commands.push(Command::Dispatch {
            kernel,
            bindings: regions,
            dynamic_offsets: dynamic_offsets.to_vec(),
            groups,
        });
    });
}

/// Hook: a buffer-to-buffer copy.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    src: &wgpu::Buffer,
    src_offset: u64,
    dst: &wgpu::Buffer,
    dst_offset: u64,
    size: u64,
) {
    with(|r| {
        let s = buffer_index(r, device, queue, src);
        let d = buffer_index(r, device, queue, dst);
        r.trace.commands.push(Command::Copy {
            src: Region {
                buffer: s,
                offset: src_offset,
                size,
            },
            dst: d,
            dst_offset,
        });
    });
}

/// Hook: the recorded commands were submitted.
pub(crate) fn submit() {
    with(|r| r.trace.commands.push(Command::Submit));
}

/// Names a region whose contents after the work are results (`out`, `lse`, `probs`): called
/// inside [`record`]'s closure, after the work was recorded. Does nothing without a recorder.
pub fn output(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    name: &str,
    buffer: &wgpu::Buffer,
    offset: u64,
    size: u64,
) {
    with(|r| {
        let buffer = buffer_index(r, device, queue, buffer);
        r.trace.outputs.push(Output {
            name: name.to_string(),
            region: Region {
                buffer,
                offset,
                size,
            },
        });
    });
}

/// WGSL as Tint takes it, and the WebGPU features the kernel needs. naga 30 enables subgroup
/// operations through the device feature alone and rejects `enable subgroups;` (not implemented
/// there: <https://github.com/gfx-rs/wgpu/issues/5555>), while WebGPU requires the directive: it
/// is added here, once, for kernels that use subgroup builtins. This is the only change made to a
/// kernel's source for Dawn.
pub fn for_tint(wgsl: &str) -> (String, Vec<&'static str>) {
    let uses_subgroups = wgsl.lines().any(|l| {
        let code = l.split("//").next().unwrap_or("");
        code.contains("subgroup_size")
            || code.contains("subgroup_invocation_id")
            || code.contains("subgroup_id")
            || code.contains("subgroupAdd")
            || code.contains("subgroupMax")
            || code.contains("subgroupMin")
            || code.contains("subgroupBroadcast")
            || code.contains("subgroupShuffle")
            || code.contains("subgroupElect")
    });
    if uses_subgroups && !wgsl.contains("enable subgroups;") {
        (format!("enable subgroups;\n{wgsl}"), vec!["subgroups"])
    } else {
        (wgsl.to_string(), Vec::new())
    }
}

/// Many traces with one table of kernels and one data file: what `tests/dawn/replay.mjs` reads.
/// Kernels are shared by label (a label names every constant of the specialization, so equal
/// labels are equal sources), so a replay compiles each once.
#[derive(Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TraceSet {
    /// Every kernel of every trace, once.
    pub kernels: Vec<TraceKernel>,
    /// The traces, with kernel indices into [`TraceSet::kernels`] and data offsets into the set's
    /// data, each with its name.
    pub traces: Vec<(String, Trace)>,
    #[cfg_attr(feature = "serde", serde(skip))]
    index: HashMap<String, usize>,
    #[cfg_attr(feature = "serde", serde(skip))]
    data: Vec<u8>,
}

impl TraceSet {
    /// Adds a trace under `name`; returns its index.
    pub fn add(&mut self, name: impl Into<String>, mut trace: Trace) -> usize {
        let remap: Vec<usize> = trace
            .kernels
            .drain(..)
            .map(|k| match self.index.get(&k.label) {
                Some(&n) => n,
                None => {
                    let n = self.kernels.len();
                    self.index.insert(k.label.clone(), n);
                    self.kernels.push(k);
                    n
                }
            })
            .collect();
        for c in &mut trace.commands {
            if let Command::Dispatch { kernel, .. } = c {
                *kernel = remap[*kernel];
            }
        }
        let base = self.data.len() as u64;
        for b in &mut trace.buffers {
            if let Init::Data { offset, .. } = &mut b.init {
                *offset += base;
            }
        }
        self.data.append(&mut trace.data);
        self.traces.push((name.into(), trace));
        self.traces.len() - 1
    }

    /// Adds a kernel that no trace runs (to be compiled only).
    pub fn add_kernel(&mut self, kernel: TraceKernel) {
        if !self.index.contains_key(&kernel.label) {
            self.index.insert(kernel.label.clone(), self.kernels.len());
            self.kernels.push(kernel);
        }
    }

    /// Writes `stem.json` (the manifest) and `stem.bin` (buffer contents).
    ///
    /// The manifest: `{"version": 1, "data": "stem.bin", "kernels": [{"label", "constants",
    /// "wgsl", "entry",
    /// "bindings": ["uniform" | "read" | "read_write"], "features": [...]}], "traces": [[name,
    /// {"buffers": [{"label", "size", "uniform", "init": "zero" | {"data": {"offset", "len"}}}],
    /// "commands": [{"op": "dispatch", "kernel", "bindings": [{"buffer", "offset", "size"}],
    /// "dynamic_offsets", "groups"} | {"op": "copy", "src", "dst", "dst_offset"} | {"op":
    /// "submit"}], "outputs": [{"name", "region"}], "errors": [...]}]]}`. WGSL is given as Tint
    /// takes it ([`for_tint`]).
    #[cfg(feature = "serde")]
    pub fn save(&self, stem: &std::path::Path) -> std::io::Result<()> {
        let bin = stem.with_extension("bin");
        std::fs::write(&bin, &self.data)?;
        let kernels: Vec<serde_json::Value> = self
            .kernels
            .iter()
            .map(|k| {
                let (wgsl, features) = for_tint(&k.wgsl);
                serde_json::json!({
                    "label": k.label,
                    "constants": k.constants,
                    "wgsl": wgsl,
                    "entry": k.entry,
                    "bindings": k.bindings,
                    "features": features,
                })
            })
            .collect();
        let manifest = serde_json::json!({
            "version": 1,
            "data": bin.file_name().map(|f| f.to_string_lossy().to_string()),
            "kernels": kernels,
            "traces": self.traces,
        });
        let f = std::io::BufWriter::new(std::fs::File::create(stem.with_extension("json"))?);
        serde_json::to_writer(f, &manifest).map_err(std::io::Error::other)
    }
}
