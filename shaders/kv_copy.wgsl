// Copies runs of elements between buffers of one dtype, bit for bit: the KV cache's append (new
// keys and values into the cache's blocks), copy-on-write of a shared block, and the gather of a
// sequence into a contiguous tensor.
//
// A run is (source element, destination element, length). One invocation per destination word of
// a run (workgroup y + z·65535 picks the run, x and the lane the word), so no two invocations of
// one run write one word. Runs of one dispatch write disjoint elements, but with 16-bit data two
// runs may share a word at their ends (a row of odd length): such a word is written with
// atomicAnd (clear this run's half) and atomicOr (set it), which commute with the other run's
// pair, so neither half is lost. Whole words are plain atomic stores.
//
// SAME = 1 reads the source from the destination binding (a copy inside the cache's pool: WebGPU
// does not let one buffer be bound read-only and read-write in one dispatch); the runs never
// overlap.
//
// Specialization constants (header): WG, DT (0 f32, 1 f16, 2 bf16: 16-bit elements are the halves
// of a word, element 2w in the low half), SAME.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> runs: array<vec4<u32>>;

fn src_word(w: u32) -> u32 {
    if (SAME != 0u) {
        return atomicLoad(&dst[w]);
    }
    return src[w];
}

// The 16 bits of element e of the source.
fn src_half(e: u32) -> u32 {
    return (src_word(e >> 1u) >> (16u * (e & 1u))) & 0xffffu;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let r = wid.y + wid.z * 65535u;
    if (r >= p.count) {
        return;
    }
    let run = runs[r];
    let s0 = run.x;
    let d0 = run.y;
    let n = run.z;
    if (n == 0u) {
        return;
    }
    if (DT == 0u) {
        let i = wid.x * WG + li;
        if (i < n) {
            atomicStore(&dst[d0 + i], src_word(s0 + i));
        }
        return;
    }
    // 16-bit: destination words d0/2 ..= (d0+n-1)/2.
    let w = (d0 >> 1u) + wid.x * WG + li;
    if (w > ((d0 + n - 1u) >> 1u)) {
        return;
    }
    let e0 = 2u * w;
    let lo_in = e0 >= d0 && e0 < d0 + n;
    let hi_in = e0 + 1u >= d0 && e0 + 1u < d0 + n;
    var lo = 0u;
    var hi = 0u;
    if (lo_in) {
        lo = src_half(s0 + e0 - d0);
    }
    if (hi_in) {
        hi = src_half(s0 + e0 + 1u - d0);
    }
    if (lo_in && hi_in) {
        atomicStore(&dst[w], lo | (hi << 16u));
    } else if (lo_in) {
        atomicAnd(&dst[w], 0xffff0000u);
        atomicOr(&dst[w], lo);
    } else {
        atomicAnd(&dst[w], 0x0000ffffu);
        atomicOr(&dst[w], hi << 16u);
    }
}
