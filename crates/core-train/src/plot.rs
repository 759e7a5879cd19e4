//! `curves.png`: loss and top-1 accuracy per epoch, train and validation, drawn with plotters.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::EpochRow;

/// DejaVu Sans (Bitstream Vera license, see `assets/`), embedded so plots need no system fonts.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("embedded DejaVuSans.ttf is not a valid font"));
    });
}

/// Draws the two panels of a run's `metrics.csv` rows into a PNG at `path`.
pub fn draw_curves(rows: &[EpochRow], title: &str, path: &Path) -> Result<()> {
    register_font();
    let (width, height) = (1200u32, 480u32);
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 22))?;
        let panels = root.split_evenly((1, 2));
        let epochs = rows.iter().map(|r| r.epoch).max().unwrap_or(1).max(1) as f64;
        let series = |pick: fn(&EpochRow) -> f64| -> Vec<(f64, f64)> {
            rows.iter()
                .map(|r| (r.epoch as f64, pick(r)))
                .filter(|(_, v)| v.is_finite())
                .collect()
        };
        type Pick = fn(&EpochRow) -> f64;
        let panel_specs: [(&str, Pick, Pick); 2] = [
            ("loss", |r| r.train_loss, |r| r.valid_loss),
            ("top-1 accuracy (%)", |r| r.train_top1, |r| r.valid_top1),
        ];
        for (area, (name, train, valid)) in panels.iter().zip(panel_specs) {
            let (train, valid) = (series(train), series(valid));
            let values = train.iter().chain(&valid).map(|p| p.1);
            let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
            let pad = ((hi - lo) * 0.08).max(1e-3);
            let mut chart = ChartBuilder::on(area)
                .caption(name, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..epochs + 0.5, (lo - pad)..(hi + pad))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .label_style(("sans-serif", 14))
                .draw()?;
            for (points, label, colour) in [(train, "train", BLUE), (valid, "valid", RED)] {
                chart
                    .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()?;
        }
        root.present()?;
    }
    image::RgbImage::from_raw(width, height, buffer)
        .context("plot buffer size")?
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        let rows: Vec<EpochRow> = (1..=3)
            .map(|e| EpochRow {
                epoch: e,
                train_loss: 2.0 / e as f64,
                valid_loss: 2.2 / e as f64,
                train_top1: 30.0 * e as f64,
                valid_top1: 25.0 * e as f64,
                ..EpochRow::default()
            })
            .collect();
        draw_curves(&rows, "test run", &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1200, 480));
        // Something other than the white background was drawn.
        assert!(img.pixels().filter(|p| p.0 != [255, 255, 255]).count() > 5000);
    }
}
