//! The GPU context: adapter choice, device, loss tracking, error capture and the pipeline cache.

use crate::known_issues::KnownIssue;
use crate::tuning::Tuning;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pipeline::{Binding, Kernel, KernelSource, PipelineKey};

/// How [`Context::new`] picks an adapter.
#[derive(Debug, Clone)]
pub struct ContextOptions {
    /// Backends to consider. `None` reads `WGPU_BACKEND` (e.g. `vulkan`, `metal`, `dx12`, `gl`) and
    /// falls back to every backend wgpu was built with.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring an adapter's name must contain. `None` reads `WGPU_ADAPTER_NAME`.
    pub adapter_name: Option<String>,
    /// High performance by default: a discrete GPU before an integrated one before a CPU driver.
    pub power_preference: wgpu::PowerPreference,
    /// Tile sizes and choice thresholds; `None` takes the adapter's row of
    /// [`tuning::TABLE`](crate::tuning::TABLE).
    pub tuning: Option<Tuning>,
    /// Known driver issues to honour besides [`known_issues::TABLE`](crate::known_issues::TABLE)
    /// (consulted first): the automatic choice avoids the variants they name.
    pub known_issues: Vec<KnownIssue>,
    /// Skip the subgroup probe and trust the adapter's reported subgroup size (see
    /// [`subgroups`](crate::subgroups)). Off by default; for testing the fused kernel's in-kernel
    /// check on a driver that breaks the promise (it then writes NaN, never wrong numbers).
    pub trust_subgroup_size: bool,
    /// How kernels unpack f16 data: `Some(true)` with WGSL's `unpack2x16float`, `Some(false)`
    /// with an integer decode that needs no capability. `None` (the default) uses
    /// `unpack2x16float` where a probe finds that the device compiles it (wgpu gates it on
    /// SHADER_F16_IN_F32, which it sets only with SHADER_F16; lavapipe has both), unless
    /// `WGPU_ATTENTION_F16_UNPACK` says `native` or `integer`.
    pub f16_unpack: Option<bool>,
    /// The optional features ([`OPTIONAL_FEATURES`]) the device may enable: `None` enables every
    /// one the adapter has; `Some(f)` only those also in `f`. With [`ContextOptions::limits`],
    /// makes a device that uses no more than another implementation offers (the Dawn replay
    /// records on such a device, so that its traces run there).
    pub features: Option<wgpu::Features>,
    /// Limits no better than these: each maximum is the lower of the adapter's and this one, each
    /// alignment the larger. `None`: the adapter's own limits.
    pub limits: Option<wgpu::Limits>,
}

impl Default for ContextOptions {
    fn default() -> Self {
        Self {
            backends: None,
            adapter_name: None,
            power_preference: wgpu::PowerPreference::HighPerformance,
            tuning: None,
            known_issues: Vec::new(),
            trust_subgroup_size: false,
            f16_unpack: None,
            features: None,
            limits: None,
        }
    }
}

/// What a context knows of subgroups (found by `subgroups::support`, which probes the device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgroupSupport {
    /// The adapter's subgroup size when it reports a fixed one (min = max), else `None`.
    pub reported: Option<u32>,
    /// The size the fused and decode subgroup forms run at: one of `subgroups::FORM_SIZES` that the probe
    /// confirmed on this device. `None`: those variants run their workgroup-memory form.
    pub size: Option<u32>,
    /// What was reported, what the probe saw and what was decided, in one line.
    pub note: String,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    features: wgpu::Features,
    limits: wgpu::Limits,
    lost: Arc<Mutex<Option<String>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Kernel>>>,
    compiled: AtomicUsize,
    tuning: Tuning,
    tuning_source: &'static str,
    known_issues: Vec<KnownIssue>,
    /// What the subgroup probe found, on first use (`subgroups::support`).
    subgroups: std::sync::OnceLock<SubgroupSupport>,
    trust_subgroup_size: bool,
    f16_unpack_option: Option<bool>,
    /// Whether kernels unpack f16 with `unpack2x16float`, found on first use.
    f16_unpack: std::sync::OnceLock<bool>,
    /// A small buffer bound in place of an absent optional input (mask, key lengths).
    dummy: wgpu::Buffer,
}

/// A GPU device and queue with the library's pipelines. Cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("adapter", &self.inner.info.name)
            .field("backend", &self.inner.info.backend)
            .finish()
    }
}

/// Features the kernels can use; requested only where the adapter has them.
pub const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::SHADER_INT64);

fn rank_device_type(t: wgpu::DeviceType, pref: wgpu::PowerPreference) -> u32 {
    use wgpu::DeviceType::*;
    match pref {
        wgpu::PowerPreference::LowPower => match t {
            IntegratedGpu => 0,
            DiscreteGpu => 1,
            VirtualGpu => 2,
            Other => 3,
            Cpu => 4,
        },
        _ => match t {
            DiscreteGpu => 0,
            IntegratedGpu => 1,
            VirtualGpu => 2,
            Other => 3,
            Cpu => 4,
        },
    }
}

impl Context {
    /// Picks an adapter (see [`ContextOptions`]) and opens a device with the adapter's own limits.
    pub async fn new(options: ContextOptions) -> Result<Self> {
        let backends = options
            .backends
            .or_else(wgpu::Backends::from_env)
            .unwrap_or(wgpu::Backends::all());
        let filter = options
            .adapter_name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|s| !s.is_empty());
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = instance.enumerate_adapters(backends).await;
        let seen: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?})", i.name, i.backend)
            })
            .collect();
        let chosen = adapters
            .into_iter()
            .filter(|a| match &filter {
                Some(f) => a.get_info().name.to_lowercase().contains(&f.to_lowercase()),
                None => true,
            })
            .min_by_key(|a| rank_device_type(a.get_info().device_type, options.power_preference));
        let Some(adapter) = chosen else {
            return Err(Error::NoAdapter {
                backends: format!("{backends:?}"),
                filter,
                seen: seen.join(", "),
            });
        };
        Self::open_with(&adapter, options).await
    }

    /// Blocking form of [`Context::new`].
    pub fn new_blocking(options: ContextOptions) -> Result<Self> {
        pollster::block_on(Self::new(options))
    }

    /// Opens a device on a given adapter, with the optional features it has and its own limits.
    pub async fn open(adapter: &wgpu::Adapter) -> Result<Self> {
        Self::open_with(adapter, ContextOptions::default()).await
    }

    async fn open_with(adapter: &wgpu::Adapter, options: ContextOptions) -> Result<Self> {
        let features =
            adapter.features() & OPTIONAL_FEATURES & options.features.unwrap_or(OPTIONAL_FEATURES);
        // The adapter's limits, not wgpu's defaults: bindings above 128 MiB and the full workgroup
        // memory are usable where the hardware has them.
        let limits = match &options.limits {
            Some(cap) => adapter.limits().or_worse_values_from(cap),
            None => adapter.limits(),
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpu-attention"),
                required_features: features,
                required_limits: limits,
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::RequestDevice(e.to_string()))?;
        let lost = Arc::new(Mutex::new(None::<String>));
        {
            let lost = lost.clone();
            device.set_device_lost_callback(move |reason, msg| {
                let mut l = lost.lock().unwrap_or_else(|p| p.into_inner());
                if l.is_none() {
                    *l = Some(format!("{reason:?}: {msg}"));
                }
            });
        }
        // This device is ours: errors outside our scopes must not reach wgpu's default handler,
        // which panics. They are rare (a scope covers every call) and are logged.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            eprintln!("wgpu-attention: uncaptured GPU error: {e}");
        }));
        Ok(Self::wrap(device, queue, adapter.get_info(), lost, options))
    }

    /// Wraps a caller's device and queue. The caller's uncaptured-error handler and device-lost
    /// callback are left alone: the library captures its own errors with error scopes and notices a
    /// lost device from those errors, or from [`Context::mark_lost`].
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let info = device.adapter_info();
        Self::wrap(
            device,
            queue,
            info,
            Arc::new(Mutex::new(None)),
            ContextOptions::default(),
        )
    }

    fn wrap(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        lost: Arc<Mutex<Option<String>>>,
        options: ContextOptions,
    ) -> Self {
        let mut known_issues = options.known_issues;
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-attention dummy"),
            size: 16,
            // COPY_SRC: a trace (`crate::trace`) reads the buffers a call binds.
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        // The caller's tuning, else the adapter's row; the caller's known issues before the table's.
        let (tuning, tuning_source) = match options.tuning {
            Some(t) => (t, "caller"),
            None => crate::tuning::for_adapter(&info),
        };
        known_issues.extend_from_slice(crate::known_issues::TABLE);
        Context {
            inner: Arc::new(Inner {
                tuning,
                tuning_source,
                known_issues,
                features: device.features(),
                limits: device.limits(),
                device,
                queue,
                info,
                lost,
                pipelines: Mutex::new(HashMap::new()),
                compiled: AtomicUsize::new(0),
                subgroups: std::sync::OnceLock::new(),
                trust_subgroup_size: options.trust_subgroup_size,
                f16_unpack_option: options.f16_unpack,
                f16_unpack: std::sync::OnceLock::new(),
                dummy,
            }),
        }
    }

    /// The device the kernels run on.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }
    /// Its queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }
    /// The adapter's name, vendor, backend, driver and subgroup sizes.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }
    /// Features enabled on the device.
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }
    /// Limits of the device (the adapter's own for a context made by [`Context::new`]).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }
    /// Tile sizes and thresholds in use, and where they come from (a table row's source, or
    /// "caller").
    pub fn tuning(&self) -> (&Tuning, &'static str) {
        (&self.inner.tuning, self.inner.tuning_source)
    }
    /// Known issues in force on this context: the caller's, then the built-in table's.
    pub fn known_issues(&self) -> &[KnownIssue] {
        &self.inner.known_issues
    }
    pub(crate) fn subgroup_cache(&self) -> &std::sync::OnceLock<SubgroupSupport> {
        &self.inner.subgroups
    }
    pub(crate) fn trusts_subgroup_size(&self) -> bool {
        self.inner.trust_subgroup_size
    }

    /// Whether kernels unpack f16 data with `unpack2x16float` (see
    /// [`ContextOptions::f16_unpack`]): the caller's choice, else
    /// `WGPU_ATTENTION_F16_UNPACK=native` or `integer` (for side-by-side measurements), else
    /// whether a one-line kernel using it compiles on this device (probed once).
    pub fn native_f16_unpack(&self) -> bool {
        *self.inner.f16_unpack.get_or_init(|| {
            let env = match std::env::var("WGPU_ATTENTION_F16_UNPACK").as_deref() {
                Ok("integer") => Some(false),
                Ok("native") => Some(true),
                _ => None,
            };
            self.inner.f16_unpack_option.or(env).unwrap_or_else(|| {
                self.scoped("f16 unpack probe", || {
                    self.inner
                        .device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some("wgpu-attention f16 unpack probe"),
                        source: wgpu::ShaderSource::Wgsl(
                            "@compute @workgroup_size(1) fn main() { _ = unpack2x16float(0u); }"
                                .into(),
                        ),
                    })
                })
                .is_ok()
            })
        })
    }
    /// Number of pipelines compiled so far; a repeated call with the same specialization adds none.
    pub fn pipelines_compiled(&self) -> usize {
        self.inner.compiled.load(Ordering::Relaxed)
    }

    /// A readable summary of the adapter, its features and the limits the kernels use.
    pub fn describe(&self) -> String {
        let i = &self.inner.info;
        let l = &self.inner.limits;
        format!(
            "adapter: {} ({:?}, {:?})\ndriver: {} {}\nfeatures: {:?}\nsubgroup size: {}..{}\nlimits: max_storage_buffer_binding_size={} max_buffer_size={} max_uniform_buffer_binding_size={} max_compute_workgroup_storage_size={} max_compute_invocations_per_workgroup={} max_compute_workgroups_per_dimension={} min_uniform_buffer_offset_alignment={}",
            i.name,
            i.backend,
            i.device_type,
            i.driver,
            i.driver_info,
            self.inner.features & OPTIONAL_FEATURES,
            i.subgroup_min_size,
            i.subgroup_max_size,
            l.max_storage_buffer_binding_size,
            l.max_buffer_size,
            l.max_uniform_buffer_binding_size,
            l.max_compute_workgroup_storage_size,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroups_per_dimension,
            l.min_uniform_buffer_offset_alignment,
        )
    }

    /// Records that the device was lost; every later call returns [`Error::DeviceLost`].
    pub fn mark_lost(&self, reason: impl Into<String>) {
        let mut l = self.inner.lost.lock().unwrap_or_else(|p| p.into_inner());
        if l.is_none() {
            *l = Some(reason.into());
        }
    }

    /// `Err(DeviceLost)` once the device is known to be lost.
    pub fn check_alive(&self) -> Result<()> {
        let l = self.inner.lost.lock().unwrap_or_else(|p| p.into_inner());
        match &*l {
            Some(r) => Err(Error::DeviceLost(r.clone())),
            None => Ok(()),
        }
    }

    /// Runs `f` inside error scopes for validation, out-of-memory and internal errors and returns
    /// the first error captured, typed ([`Error::Gpu`], [`Error::OutOfMemory`],
    /// [`Error::DeviceLost`]). Scopes are per thread, so concurrent callers do not see each
    /// other's. For GPU work of the caller's own on the context's device (the benchmark's probes).
    pub fn scoped<T>(&self, during: &'static str, f: impl FnOnce() -> T) -> Result<T> {
        self.check_alive()?;
        let d = &self.inner.device;
        let internal = d.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = d.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let errs = [
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
            pollster::block_on(internal.pop()),
        ];
        if let Some(e) = errs.into_iter().flatten().next() {
            let e = Error::from_wgpu(during, e);
            if let Error::DeviceLost(r) = &e {
                self.mark_lost(r.clone());
            }
            // A lost device shows first as "invalid" resources; a poll lets wgpu run the
            // device-lost callback, and a loss so reported wins over its symptom.
            let _ = d.poll(wgpu::PollType::Poll);
            self.check_alive()?;
            return Err(e);
        }
        self.check_alive()?;
        Ok(out)
    }

    /// Waits for all submitted work, bounded by `timeout` when given ([`Error::Timeout`] past it).
    pub fn wait_idle(&self, timeout: Option<Duration>) -> Result<()> {
        self.check_alive()?;
        let poll = match timeout {
            Some(t) => wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(t),
            },
            None => wgpu::PollType::wait_indefinitely(),
        };
        match self.inner.device.poll(poll) {
            Ok(_) => self.check_alive(),
            Err(wgpu::PollError::Timeout) => {
                self.check_alive()?;
                Err(Error::Timeout(timeout.unwrap_or_default()))
            }
            Err(e) => {
                self.check_alive()?;
                Err(Error::Gpu {
                    during: "poll",
                    message: e.to_string(),
                })
            }
        }
    }

    /// A buffer holding `bytes` (padded to 4). Not `create_buffer_init`: that panics when the
    /// device is lost, while `create_buffer` + `write_buffer` report errors to our scopes.
    pub(crate) fn buffer_with_data(
        &self,
        label: &str,
        usage: wgpu::BufferUsages,
        bytes: &[u8],
    ) -> wgpu::Buffer {
        let size = (bytes.len() as u64).max(4).next_multiple_of(4);
        let buf = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        crate::trace::made(&buf, label, Some(bytes));
        if !bytes.is_empty() {
            if bytes.len() % 4 == 0 {
                self.inner.queue.write_buffer(&buf, 0, bytes);
            } else {
                let mut padded = bytes.to_vec();
                padded.resize(size as usize, 0);
                self.inner.queue.write_buffer(&buf, 0, &padded);
            }
        }
        buf
    }

    /// A buffer for a call's intermediate results (zeros until written).
    pub(crate) fn scratch_buffer(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let buf = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        });
        crate::trace::made(&buf, label, None);
        buf
    }

    pub(crate) fn dummy_buffer(&self) -> &wgpu::Buffer {
        &self.inner.dummy
    }

    /// The kernel for `key`, compiled on first use and cached after.
    pub(crate) fn kernel(&self, src: &KernelSource, key: PipelineKey) -> Result<Arc<Kernel>> {
        if let Some(k) = self
            .inner
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(k.clone());
        }
        // Compile outside the lock; two threads racing on a new key both compile and one result wins.
        let label = key.label();
        let d = &self.inner.device;
        let kernel = self.scoped("shader compilation", || {
            let code = src.assemble(&key.constants);
            let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&label),
                source: wgpu::ShaderSource::Wgsl(code.as_str().into()),
            });
            let entries: Vec<wgpu::BindGroupLayoutEntry> = src
                .bindings
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: match b {
                        Binding::Params => wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Uniform,
                            has_dynamic_offset: true,
                            min_binding_size: None,
                        },
                        Binding::Read => wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: true },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        Binding::ReadWrite => wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: false },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                    },
                    count: None,
                })
                .collect();
            let layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&label),
                entries: &entries,
            });
            let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(src.entry),
                compilation_options: Default::default(),
                cache: None,
            });
            Kernel {
                pipeline,
                layout,
                label: label.clone(),
                code,
                constants: key.constants.clone(),
                entry: src.entry,
                bindings: src.bindings,
            }
        })?;
        let kernel = Arc::new(kernel);
        let mut map = self
            .inner
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(key).or_insert_with(|| {
            self.inner.compiled.fetch_add(1, Ordering::Relaxed);
            kernel
        });
        Ok(entry.clone())
    }
}
