//! Prints the assembled WGSL of the first kernel specialization (of `kernels::all_sources`) whose
//! label contains the argument, e.g. `cargo run --release -p attn-bench --example dump_kernel -- flash_subgroup`:
//! to read generated code or feed it to `attn-bench/examples/probe.rs`-style experiments.

fn main() {
    let f = std::env::args().nth(1).unwrap_or_default();
    for (label, src) in wgpu_attention::kernels::all_sources() {
        if label.contains(&f) {
            println!("// {label}\n{src}");
            break;
        }
    }
}
