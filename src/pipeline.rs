//! Pipelines without knowing the kernels: a kernel source (WGSL text, entry point, bindings and
//! an optional generator), the key of one specialization, and the compiled pipeline the context
//! caches per key. The kernels (`crate::kernels`) fill these in; the context only compiles them.

/// Kinds of binding a kernel declares, in binding order (group 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    /// The parameter block, a uniform buffer bound with a dynamic offset so that one buffer holds the
    /// parameters of every dispatch of a call.
    Params,
    Read,
    ReadWrite,
}

impl Binding {
    /// The binding as a trace names it.
    pub fn trace_kind(self) -> crate::trace::BindingKind {
        match self {
            Binding::Params => crate::trace::BindingKind::Uniform,
            Binding::Read => crate::trace::BindingKind::Read,
            Binding::ReadWrite => crate::trace::BindingKind::ReadWrite,
        }
    }
}

/// A compiled kernel: its pipeline and the layout its bind groups follow.
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// The specialization's label, final WGSL, entry point and bindings, kept for traces
    /// (`crate::trace`).
    pub label: String,
    pub code: String,
    pub constants: Vec<(&'static str, u32)>,
    pub entry: &'static str,
    pub bindings: &'static [Binding],
}

impl Kernel {
    /// Records one dispatch of this kernel into `pass` (and into the trace, when one is being
    /// recorded on this thread).
    pub fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass,
        group: &wgpu::BindGroup,
        dynamic_offsets: &[u32],
        groups: [u32; 3],
    ) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, group, dynamic_offsets);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        if crate::trace::active() {
            let kinds: Vec<crate::trace::BindingKind> =
                self.bindings.iter().map(|b| b.trace_kind()).collect();
            crate::trace::dispatch(
                &self.label,
                &self.code,
                &self.constants,
                self.entry,
                &kinds,
                group,
                dynamic_offsets,
                groups,
            );
        }
    }
}

/// A specialization: the kernel and the constants baked into it. Equal keys share one pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    pub name: &'static str,
    pub constants: Vec<(&'static str, u32)>,
}

impl PipelineKey {
    /// The key with more constants (the data types of a call, say) appended.
    pub fn with(mut self, extra: Vec<(&'static str, u32)>) -> Self {
        self.constants.extend(extra);
        self
    }

    /// A label naming the specialization, as GPU debuggers and validation messages show it.
    pub fn label(&self) -> String {
        let mut s = self.name.to_string();
        for (k, v) in &self.constants {
            s.push_str(&format!("_{k}{v}"));
        }
        s
    }
}

/// A WGSL kernel file and the entry point and bindings one pipeline uses.
pub(crate) struct KernelSource {
    /// WGSL `enable` directives, which must precede every declaration.
    pub enable: &'static str,
    /// WGSL every kernel of the family shares, put before the specialization header
    /// (`shaders/common.wgsl` for the library's kernels).
    pub prelude: &'static str,
    pub name: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    pub bindings: &'static [Binding],
    /// Code generation for kernels that spell out their hot loop: given the source and the
    /// pipeline key's constants, returns the source with its `//@gen NAME` lines replaced.
    pub expand: Option<Expand>,
}

/// A kernel's code generator: the source and the key's constants in, the expanded source out.
pub(crate) type Expand = fn(&str, &[(&'static str, u32)]) -> String;

impl KernelSource {
    /// Full WGSL text: the shared prelude, the specialization header, the kernel.
    pub fn assemble(&self, constants: &[(&'static str, u32)]) -> String {
        let mut code = String::with_capacity(self.prelude.len() + self.source.len() + 256);
        code.push_str(self.enable);
        code.push_str(self.prelude);
        code.push_str("\n// Specialization header, generated from the pipeline key.\n");
        for (name, value) in constants {
            code.push_str(&format!("const {name}: u32 = {value}u;\n"));
        }
        // Switches that most keys leave off are 0 where the key does not name them, so the keys
        // (and labels) of kernels that do not use them stay as they were.
        for name in OFF_BY_DEFAULT {
            let used = self.source.contains(name) || self.prelude.contains(name);
            if used && !constants.iter().any(|(n, _)| *n == name) {
                code.push_str(&format!("const {name}: u32 = 0u;\n"));
            }
        }
        code.push('\n');
        let body = match self.expand {
            Some(expand) => expand(self.source, constants),
            None => self.source.to_string(),
        };
        if constant(constants, "DT") != 0 || constant(constants, "MDT") != 0 {
            code.push_str(UNPACK_WGSL);
            code.push_str(if constant(constants, "F16N") != 0 {
                "fn unpack_f16(w: u32) -> vec2<f32> {\n    return unpack2x16float(w);\n}\n"
            } else {
                "fn unpack_f16(w: u32) -> vec2<f32> {\n    return f16x2_from_bits(w);\n}\n"
            });
        }
        let calls = |f: &str| body.contains(f) || self.prelude.contains(f);
        if calls("to_bits16(") || calls("pack4_16(") {
            code.push_str(ROUND16_WGSL);
        }
        code.push_str(&expand_inputs(&body, constants));
        code
    }
}

/// The 16-bit unpacking helpers (`shaders/unpack.wgsl`), put in front of kernels whose key reads
/// 16-bit data (DT or MDT nonzero) and only those: `unpack2x16float` needs a capability some
/// adapters lack, and f32 kernels must not depend on it. `unpack_f16` is generated next to it:
/// `unpack2x16float` where the key's F16N is 1, else the integer decode.
const UNPACK_WGSL: &str = include_str!("../shaders/unpack.wgsl");

/// The rounding of f32 results to 16-bit bits (`shaders/round16.wgsl`), put in front of kernels
/// whose code (prelude or body) calls it: those that can write a 16-bit O (their key's ODT: 1
/// f16, 2 bf16).
const ROUND16_WGSL: &str = include_str!("../shaders/round16.wgsl");

/// Constants that are 0 where a key does not name them: PAGED (K and V read from a KV cache's
/// blocks through a block table, `kv_cache.rs`) and ODT (the dtype of a 16-bit O the kernel
/// writes itself; 0: the kernel writes O in f32).
const OFF_BY_DEFAULT: [&str; 2] = ["PAGED", "ODT"];

/// A constant of a pipeline key, 0 when the key does not have it.
fn constant(constants: &[(&'static str, u32)], name: &str) -> u32 {
    constants
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, v)| *v)
}

/// Replaces each `//@input NAME BINDING DTYPE [EVEN]` line with the read-only storage binding
/// `NAME` at `BINDING` in the element type the key's constant `DTYPE` names (0 f32, 1 f16, 2
/// bf16; a missing constant means f32), and its accessors, which every kernel reads inputs through:
/// - `NAME_1(i) -> f32`: element i;
/// - `NAME_4(i) -> vec4<f32>`: elements i .. i+3.
///
/// 16-bit data is bound as `array<u32>`, two elements a word (element 2w in the low half of word
/// w), and unpacked to f32 on load: `unpack2x16float` for f16, a shift or mask and a bitcast for
/// bf16, both core WGSL. Where the key's constant `EVEN` is 1 the caller promises that `NAME_4`
/// is only asked for even i (a row of an even dim, at a multiple of 4 within it): two words and
/// no select. Otherwise i may start mid-word (odd dims), and three words are read.
fn expand_inputs(source: &str, constants: &[(&'static str, u32)]) -> String {
    let mut out = String::with_capacity(source.len() + 1024);
    for line in source.lines() {
        let Some(spec) = line.trim().strip_prefix("//@input ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let parts: Vec<&str> = spec.split_whitespace().collect();
        let (name, binding, dt) = match parts[..] {
            [name, binding, dt, ..] => (name, binding, constant(constants, dt)),
            _ => panic!("//@input needs NAME BINDING DTYPE, got {spec:?}"),
        };
        let even = parts.get(3).is_some_and(|c| constant(constants, c) != 0);
        out.push_str(&input_accessors(name, binding, dt, even));
    }
    out
}

/// The binding and accessors of one input (see [`expand_inputs`]).
fn input_accessors(name: &str, binding: &str, dt: u32, even: bool) -> String {
    if dt == 0 {
        return format!(
            "@group(0) @binding({binding}) var<storage, read> {name}: array<f32>;\n\
             fn {name}_1(i: u32) -> f32 {{\n    return {name}[i];\n}}\n\
             fn {name}_4(i: u32) -> vec4<f32> {{\n    \
             return vec4<f32>({name}[i], {name}[i + 1u], {name}[i + 2u], {name}[i + 3u]);\n}}\n"
        );
    }
    let unpack = if dt == 1 { "unpack_f16" } else { "unpack_bf16" };
    let mut c = format!(
        "@group(0) @binding({binding}) var<storage, read> {name}: array<u32>;\n\
         fn {name}_1(i: u32) -> f32 {{\n    return {unpack}({name}[i >> 1u])[i & 1u];\n}}\n"
    );
    if even {
        c += &format!(
            "fn {name}_4(i: u32) -> vec4<f32> {{\n    let w = i >> 1u;\n    \
             return vec4<f32>({unpack}({name}[w]), {unpack}({name}[w + 1u]));\n}}\n"
        );
    } else {
        // Branch-free: an odd start takes the high half of word w, word w+1 and the low half of
        // word w+2. (Reading w+2 past the binding's end is safe: WGSL bounds every access, and
        // the value is then not used.)
        c += &format!(
            "fn {name}_4(i: u32) -> vec4<f32> {{\n    let w = i >> 1u;\n    \
             let a = {unpack}({name}[w]);\n    let b = {unpack}({name}[w + 1u]);\n    \
             let c = {unpack}({name}[w + 2u]);\n    \
             return select(vec4<f32>(a.y, b, c.x), vec4<f32>(a, b), (i & 1u) == 0u);\n}}\n"
        );
    }
    c
}
