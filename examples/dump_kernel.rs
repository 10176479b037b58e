fn main() {
    let f = std::env::args().nth(1).unwrap_or_default();
    for (label, src) in wgpu_attention::kernels::all_sources() {
        if label.contains(&f) {
            println!("// {label}\n{src}");
            break;
        }
    }
}
