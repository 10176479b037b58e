// Checks, on the device at hand, the promise the fused kernel's subgroup form is built on: a
// workgroup of SG invocations runs as one full subgroup whose lanes are 0..SG-1, and
// subgroupBroadcast from lane l returns lane l's value. Run once per context (src/subgroups.rs)
// before the form is ever picked, because drivers may break it without an error: lavapipe, asked
// for width 1024, reports subgroups of 32 but runs subgroups of 16 (docs/CONFORMANCE.md).
//
// Each invocation writes 4 words: its lane, the number of active lanes in its subgroup, the
// subgroup_size builtin, and how many of the SG broadcasts returned something else than the
// broadcasting lane's value. The host reads them and decides.
//
// Specialization constants (header): SG (the size to check = the workgroup size).

@group(0) @binding(0) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(SG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_invocation_id) sli: u32,
    @builtin(subgroup_size) sgs: u32,
) {
    let live = subgroupAdd(1u);
    // Each lane broadcasts a value of its own; lane l's is l * 7 + 3.
    let mine = sli * 7u + 3u;
    var wrong = 0u;
    //@gen broadcasts
    let at = (wid.x * SG + li) * 4u;
    out[at] = sli;
    out[at + 1u] = live;
    out[at + 2u] = sgs;
    out[at + 3u] = wrong;
}
