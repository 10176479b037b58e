// Row reduction of softmax statistics with subgroup operations, for adapters with SUBGROUP.
// Prepended to softmax.wgsl; defines `Lane` and `reduce_stats`.
//
// Correct for any subgroup size, fixed or varying, from 1 to the workgroup size and beyond, and
// for partial subgroups: the subgroup's index and the subgroup count are read from builtins,
// never assumed, and nothing depends on how many lanes a subgroup has or which are active. Each
// subgroup reduces its lanes with subgroupMax / subgroupAdd (no barrier), its lowest active lane
// (not lane 0, which a partial subgroup may lack; naga 30 has no subgroupElect) writes its slot,
// and after a single barrier every invocation folds the num_subgroups slots in index order, so
// the result does not depend on scheduling.

struct Lane {
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_invocation_id) sli: u32,
    @builtin(subgroup_id) sid: u32,
    @builtin(num_subgroups) nsg: u32,
}

// One slot per subgroup: at most WG of them (subgroups of one invocation).
var<workgroup> red: array<vec2<f32>, WG>;

fn reduce_stats(x: vec2<f32>, lane: Lane) -> vec2<f32> {
    // Lanes without a kept key carry l = 0 and the sentinel max; they join the max (which stays
    // the sentinel only when no lane has a key) but add nothing to the sum.
    let m = subgroupMax(x.x);
    let l = subgroupAdd(select(0.0, x.y * exp(x.x - m), x.y > 0.0));
    if (lane.sli == subgroupMin(lane.sli)) {
        red[lane.sid] = vec2<f32>(m, l);
    }
    workgroupBarrier();
    var out = red[0];
    for (var g = 1u; g < lane.nsg; g++) {
        out = merge_stats(out, red[g]);
    }
    workgroupBarrier();
    return out;
}
