//! `--plot FILE.svg`: GFLOP/s against sequence length (kv_len, log scale), one line per variant
//! and causal mode (and head dim and q_len kind when the sweep has several), the adapter in the title.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::sweep::Row;

pub fn write_svg(path: &str, rows: &[Row], adapter: &str) -> Result<(), String> {
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let dims: std::collections::BTreeSet<usize> = rows.iter().map(|r| r.head_dim).collect();
    for r in rows {
        let kind = if r.q_len == 1 {
            "decode"
        } else if r.q_len == r.kv_len {
            "prefill"
        } else {
            "cross"
        };
        let mut label = format!("{} {} {kind}", r.ran, r.causal);
        if dims.len() > 1 {
            label.push_str(&format!(" D={}", r.head_dim));
        }
        lines
            .entry(label)
            .or_default()
            .push((r.kv_len as f64, r.gflops));
    }
    for pts in lines.values_mut() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let xmin = rows
        .iter()
        .map(|r| r.kv_len as f64)
        .fold(f64::INFINITY, f64::min)
        .max(1.0);
    let xmax = rows
        .iter()
        .map(|r| r.kv_len as f64)
        .fold(1.0, f64::max)
        .max(xmin * 2.0);
    let ymax = rows.iter().map(|r| r.gflops).fold(0.0, f64::max).max(1e-3) * 1.15;

    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("wgpu-attention GFLOP/s on {adapter}"),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((xmin..xmax).log_scale(), 0.0..ymax)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("sequence length (keys, kv_len)")
        .y_desc("GFLOP/s (4·B·Hq·D per kept query–key pair)")
        .draw()
        .map_err(|e| err(&e))?;
    for (n, (label, pts)) in lines.iter().enumerate() {
        let color = Palette99::pick(n).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
