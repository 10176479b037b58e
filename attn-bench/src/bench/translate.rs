//! `attn-bench translate TEXT`: the trained date translator (translator/) on this adapter. Prints
//! the translation of each decoding method and writes the cross-attention weights of the greedy
//! translation as a heatmap, output tokens against source characters.

use wgpu_attention::{Context, DType};
use wgpu_attention_translator::search::{self, Beam, Sampling};
use wgpu_attention_translator::{Gpu, Model, Session, BOS, EOS};

/// What to run.
pub struct Settings {
    pub text: String,
    pub weights: String,
    pub beam: usize,
    pub length_penalty: f64,
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub seed: u64,
    pub heatmap: Option<String>,
    pub f16: bool,
}

/// Runs the translations; returns the report's lines.
pub fn run(ctx: &Context, set: &Settings) -> Result<Vec<String>, String> {
    let model = Model::load(&set.weights).map_err(|e| e.to_string())?;
    let c = &model.cfg;
    let dtype = if set.f16 { DType::F16 } else { DType::F32 };
    let mut gpu = Gpu::new(ctx, c.dec_layers, c.tgt_len, dtype);
    let mut lines = Vec::new();
    // Greedy, keeping the cross-attention weights of its steps.
    let (greedy, weights) = {
        let mut s =
            Session::new(&model, &mut gpu, &[set.text.as_str()]).map_err(|e| e.to_string())?;
        let steps = s.max_steps();
        let out = search::greedy(&mut s, 1, BOS, EOS, steps).map_err(|e| e.to_string())?;
        let text = s.text(&out[0]);
        // One row per output token (and the end token), over the source characters.
        let rows: Vec<Vec<f32>> = s
            .cross
            .iter()
            .take(out[0].len() + 1)
            .map(|w| w[0].clone())
            .collect();
        (text, rows)
    };
    lines.push(format!("greedy:   {greedy}"));
    let beam = wgpu_attention_translator::translate_beam(
        &model,
        &mut gpu,
        &set.text,
        Beam {
            width: set.beam,
            length_penalty: set.length_penalty,
        },
    )
    .map_err(|e| e.to_string())?;
    lines.push(format!("beam {}:   {beam}", set.beam));
    let sampled = wgpu_attention_translator::translate_sample(
        &model,
        &mut gpu,
        &[set.text.as_str()],
        Sampling {
            temperature: set.temperature,
            top_k: set.top_k,
            top_p: set.top_p,
            seed: set.seed,
        },
    )
    .map_err(|e| e.to_string())?;
    lines.push(format!(
        "sampled:  {} (temperature {}, top-k {}, top-p {}, seed {})",
        sampled[0], set.temperature, set.top_k, set.top_p, set.seed
    ));
    if let Some(path) = &set.heatmap {
        let src: Vec<char> = set.text.to_lowercase().chars().collect();
        let mut out: Vec<String> = greedy.chars().map(|c| c.to_string()).collect();
        out.push("</s>".into());
        if path.to_lowercase().ends_with(".png") {
            heatmap_png(path, src.len(), &weights)?;
        } else {
            std::fs::write(path, heatmap_svg(&src, &out, &weights, &set.text))
                .map_err(|e| format!("cannot write {path}: {e}"))?;
        }
        lines.push(format!(
            "heatmap:  {path} (rows: output tokens, columns: source characters)"
        ));
    }
    Ok(lines)
}

/// The heatmap as PNG: the same cells as the SVG, 24 pixels each with a 1-pixel grid, no labels
/// (rows are the output tokens in order, columns the source characters; the SVG names them).
pub fn heatmap_png(path: &str, cols: usize, w: &[Vec<f32>]) -> Result<(), String> {
    let cell = 24usize;
    let (width, height) = (cols * cell + 1, w.len() * cell + 1);
    let mut rgb = vec![221u8; width * height * 3];
    for (i, row) in w.iter().enumerate() {
        for (j, &v) in row.iter().take(cols).enumerate() {
            let shade = (255.0 * (1.0 - v.clamp(0.0, 1.0) as f64).powf(1.5)) as u8;
            for y in i * cell + 1..(i + 1) * cell {
                for x in j * cell + 1..(j + 1) * cell {
                    let p = (y * width + x) * 3;
                    rgb[p..p + 3].copy_from_slice(&[shade, shade, 255]);
                }
            }
        }
    }
    let file = std::fs::File::create(path).map_err(|e| format!("cannot write {path}: {e}"))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&rgb).map_err(|e| e.to_string())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG heatmap: one cell per (output token, source character), darker for more weight.
pub fn heatmap_svg(src: &[char], out: &[String], w: &[Vec<f32>], title: &str) -> String {
    let (cell, left, top) = (22.0, 60.0, 80.0);
    let width = left + cell * src.len() as f64 + 20.0;
    let height = top + cell * out.len() as f64 + 40.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"monospace\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"14\">cross-attention of \"{}\" (greedy, last decoder layer, mean of heads)</text>\n",
        escape(title)
    );
    for (j, ch) in src.iter().enumerate() {
        let x = left + cell * j as f64 + cell / 2.0;
        let label = if *ch == ' ' {
            "␣".to_string()
        } else {
            escape(&ch.to_string())
        };
        s += &format!(
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
            top - 8.0
        );
    }
    for (i, row) in w.iter().enumerate() {
        let y = top + cell * i as f64;
        let label = out.get(i).map(|t| escape(t)).unwrap_or_default();
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>\n",
            left - 8.0,
            y + cell * 0.7
        );
        for (j, &v) in row.iter().take(src.len()).enumerate() {
            let shade = (255.0 * (1.0 - v.clamp(0.0, 1.0) as f64).powf(1.5)) as u8;
            s += &format!(
                "<rect x=\"{}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb({shade},{shade},255)\" stroke=\"#ddd\"><title>{:.3}</title></rect>\n",
                left + cell * j as f64,
                v
            );
        }
    }
    s += "</svg>\n";
    s
}
