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

/// A compiled kernel: its pipeline and the layout its bind groups follow.
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// A specialization: the kernel and the constants baked into it. Equal keys share one pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    pub name: &'static str,
    pub constants: Vec<(&'static str, u32)>,
}

impl PipelineKey {
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
        code.push('\n');
        match self.expand {
            Some(expand) => code.push_str(&expand(self.source, constants)),
            None => code.push_str(self.source),
        }
        code
    }
}
