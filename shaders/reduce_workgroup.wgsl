// Row reduction of softmax statistics through workgroup memory: the fallback for adapters
// without SUBGROUP, and selectable everywhere (`subgroups: Some(false)`,
// WGPU_ATTENTION_SUBGROUPS=0). Prepended to softmax.wgsl; defines `Lane` and `reduce_stats`.
// A tree of log2(WG) steps, each behind a barrier; merge order is fixed, so results are
// deterministic.

struct Lane {
    @builtin(local_invocation_index) li: u32,
}

var<workgroup> red: array<vec2<f32>, WG>;

fn reduce_stats(x: vec2<f32>, lane: Lane) -> vec2<f32> {
    let li = lane.li;
    red[li] = x;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (li < stride) {
            red[li] = merge_stats(red[li], red[li + stride]);
        }
        workgroupBarrier();
    }
    let out = red[0];
    workgroupBarrier();
    return out;
}
