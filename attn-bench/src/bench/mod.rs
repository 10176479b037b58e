//! Benchmark support: GPU timing, sweeps, the adapter's measured ceilings, the CPU and peer
//! baselines. Used by `attn-bench` and the criterion benches.

#[cfg(feature = "burn")]
pub mod burn_peer;
pub mod cache;
pub mod cpu;
pub mod dawn;
pub mod peak;
pub mod plot;
pub mod sweep;
pub mod timer;
pub mod translate;
pub mod tune;
