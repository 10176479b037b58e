//! Timing of recorded GPU work: timestamps around it when the adapter has TIMESTAMP_QUERY, the
//! wall time of submit-and-wait always (reported when there are no timestamps, and used for
//! comparisons with peers that only have wall time). No readback happens inside the timed region.

use std::time::Instant;

use wgpu_attention::Context;
use wgpu_attention::{Error, Result};

/// Where a reported time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingSource {
    /// GPU timestamp queries written before and after the work.
    Gpu,
    /// Wall clock around submit and wait.
    Wall,
}

impl TimingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TimingSource::Gpu => "gpu",
            TimingSource::Wall => "wall",
        }
    }
}

/// One timed run, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub gpu: Option<f64>,
    pub wall: f64,
}

impl Sample {
    /// The GPU time when there is one, else the wall time.
    pub fn best(&self) -> f64 {
        self.gpu.unwrap_or(self.wall)
    }
}

pub struct Timer {
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
    period_ns: f64,
}

impl Timer {
    pub fn new(ctx: &Context) -> Result<Timer> {
        let queries = if ctx.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            Some(ctx.scoped("timer setup", || {
                let d = ctx.device();
                let set = d.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("wgpu-attention timer"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                });
                let resolve = d.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgpu-attention timer resolve"),
                    size: 16,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                let read = d.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgpu-attention timer readback"),
                    size: 16,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                (set, resolve, read)
            })?)
        } else {
            None
        };
        Ok(Timer {
            queries,
            period_ns: ctx.queue().get_timestamp_period() as f64,
        })
    }

    pub fn source(&self) -> TimingSource {
        if self.queries.is_some() {
            TimingSource::Gpu
        } else {
            TimingSource::Wall
        }
    }

    /// Records `work`, brackets it with timestamps (empty passes before and after: the queue runs
    /// in order, so the interval covers all of the work), submits and waits.
    pub fn time(
        &self,
        ctx: &Context,
        work: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<Sample> {
        self.time_inner(ctx, work, 1)
    }

    /// Records `work` `runs` times back to back in one timed submission; the sample is per run.
    pub fn time_runs(
        &self,
        ctx: &Context,
        runs: usize,
        mut work: impl FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<Sample> {
        let runs = runs.max(1);
        self.time_inner(ctx, |enc| (0..runs).try_for_each(|_| work(enc)), runs)
    }

    fn time_inner(
        &self,
        ctx: &Context,
        work: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
        runs: usize,
    ) -> Result<Sample> {
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-attention timed"),
            });
        let mark = |enc: &mut wgpu::CommandEncoder, index: u32| {
            if let Some((set, _, _)) = &self.queries {
                let _ = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("timestamp"),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: set,
                        beginning_of_pass_write_index: (index == 0).then_some(0),
                        end_of_pass_write_index: (index == 1).then_some(1),
                    }),
                });
            }
        };
        mark(&mut enc, 0);
        work(&mut enc)?;
        mark(&mut enc, 1);
        if let Some((set, resolve, read)) = &self.queries {
            enc.resolve_query_set(set, 0..2, resolve, 0);
            enc.copy_buffer_to_buffer(resolve, 0, read, 0, 16);
        }
        let cmd = ctx.scoped("timed submit", || enc.finish())?;
        let t0 = Instant::now();
        ctx.queue().submit([cmd]);
        ctx.wait_idle(None)?;
        let wall = t0.elapsed().as_secs_f64();
        let gpu = match &self.queries {
            None => None,
            Some((_, _, read)) => {
                let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
                read.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                    let _ = tx.send(r);
                });
                ctx.wait_idle(None)?;
                match pollster::block_on(rx.receive()) {
                    Some(Ok(())) => {}
                    other => return Err(Error::Map(format!("timestamp readback: {other:?}"))),
                }
                let ticks: [u64; 2] = {
                    let view = read
                        .slice(..)
                        .get_mapped_range()
                        .map_err(|e| Error::Map(e.to_string()))?;
                    let t: &[u64] = bytemuck::cast_slice(&view);
                    [t[0], t[1]]
                };
                read.unmap();
                Some(ticks[1].saturating_sub(ticks[0]) as f64 * self.period_ns * 1e-9)
            }
        };
        let n = runs as f64;
        Ok(Sample {
            gpu: gpu.map(|g| g / n),
            wall: wall / n,
        })
    }
}

/// Median, min and max of a non-empty list.
pub fn stats(xs: &[f64]) -> (f64, f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}
