// Writes a 16-bit output: the f32 results of the attention kernels (which accumulate in f32)
// rounded to the nearest f16 or bf16, ties to even, packed two to a word.
//
// One invocation per 32-bit word of the destination, so no two invocations write one word (a
// 16-bit store is a read-modify-write of its word). With an odd element count the last word's
// upper half is not the tensor's: it is read and written back unchanged.
//
// The rounding (shaders/round16.wgsl, put in front by the host) is exact round-to-nearest-even in
// integer arithmetic, the same on every adapter.
//
// Specialization constants (header): WG, ODT (1 f16, 2 bf16).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let w = gid.x + gid.y * nwg.x * WG;
    let e = 2u * w;
    if (e >= p.count) {
        return;
    }
    let lo = to_bits16(src[e], ODT);
    var hi: u32;
    if (e + 1u < p.count) {
        hi = to_bits16(src[e + 1u], ODT);
    } else {
        hi = dst[w] >> 16u;
    }
    dst[w] = lo | (hi << 16u);
}
