//! `curves.png`: loss and top-1 accuracy per epoch, train and validation (or any panels of series),
//! drawn with plotters; picture grids; benchmark ratio bars.

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

/// Writes `image` as a PNG at `path` atomically (encoded in memory, then
/// [`crate::checkpoint::write_atomically`]): a full disk leaves no 0-byte picture behind.
pub fn save_png(image: &image::RgbImage, path: &Path) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .context("encoding a PNG")?;
    crate::checkpoint::write_atomically(path, bytes.get_ref())
        .with_context(|| format!("writing {}", path.display()))
}

/// One chart of [`draw_panels`]: a title and named series of `(epoch, value)` points.
pub struct Panel {
    pub name: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Draws the two panels of a run's `metrics.csv` rows into a PNG at `path`.
pub fn draw_curves(rows: &[EpochRow], title: &str, path: &Path) -> Result<()> {
    let series = |pick: fn(&EpochRow) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.epoch as f64, pick(r))).collect()
    };
    type Pick = fn(&EpochRow) -> f64;
    let specs: [(&str, Pick, Pick); 2] = [
        ("loss", |r| r.train_loss, |r| r.valid_loss),
        ("top-1 accuracy (%)", |r| r.train_top1, |r| r.valid_top1),
    ];
    let panels: Vec<Panel> = specs
        .into_iter()
        .map(|(name, train, valid)| Panel {
            name: name.into(),
            series: vec![
                ("train".into(), series(train)),
                ("valid".into(), series(valid)),
            ],
        })
        .collect();
    draw_panels(&panels, title, path)
}

/// Line charts side by side, one per panel, x = epoch; non-finite points are left out.
pub fn draw_panels(panels: &[Panel], title: &str, path: &Path) -> Result<()> {
    draw_xy(panels, title, "epoch", path)
}

/// [`draw_panels`] with another x axis (`x_desc`, e.g. "recall"): x spans the data's range
/// (epochs start at 0).
pub fn draw_xy(panels: &[Panel], title: &str, x_desc: &str, path: &Path) -> Result<()> {
    register_font();
    let (width, height) = (600 * panels.len().max(1) as u32, 480u32);
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 22))?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        const COLOURS: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];
        for (area, panel) in areas.iter().zip(panels) {
            let series: Vec<(&str, Vec<(f64, f64)>)> = panel
                .series
                .iter()
                .map(|(label, points)| {
                    let finite = points
                        .iter()
                        .copied()
                        .filter(|(x, y)| x.is_finite() && y.is_finite());
                    (label.as_str(), finite.collect())
                })
                .collect();
            let points = series.iter().flat_map(|(_, p)| p.iter());
            let x_max = points.clone().map(|p| p.0).fold(1.0f64, f64::max);
            let x_min = match x_desc {
                "epoch" => 0.0,
                _ => points
                    .clone()
                    .map(|p| p.0)
                    .fold(f64::INFINITY, f64::min)
                    .min(x_max),
            };
            // Epochs: 0 .. last + ½ as before; other axes: the data's range, padded 3 %.
            let (x_lo, x_hi) = match x_desc {
                "epoch" => (0.0, x_max + 0.5),
                _ => {
                    let pad = (x_max - x_min) * 0.03;
                    (x_min - pad, x_max + pad)
                }
            };
            let (lo, hi) = points.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p.1), hi.max(p.1))
            });
            let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
            let pad = ((hi - lo) * 0.08).max(1e-3);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.name, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(x_lo..x_hi, (lo - pad)..(hi + pad))?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .label_style(("sans-serif", 14))
                .draw()?;
            for (k, (label, points)) in series.into_iter().enumerate() {
                let colour = COLOURS[k % COLOURS.len()];
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
    let image = image::RgbImage::from_raw(width, height, buffer).context("plot buffer size")?;
    save_png(&image, path)
}

/// A grid of captioned pictures (dataset previews, predictions next to ground truth) as one PNG.
/// Tiles keep their pixels (no resampling); each cell is as large as the largest tile.
pub fn draw_tile_grid(
    tiles: &[(&image::RgbImage, &str)],
    columns: usize,
    title: &str,
    path: &Path,
) -> Result<()> {
    register_font();
    let columns = columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns).max(1);
    let cell_w = tiles.iter().map(|t| t.0.width()).max().unwrap_or(64);
    let cell_h = tiles.iter().map(|t| t.0.height()).max().unwrap_or(64);
    let (pad, caption_h, title_h) = (8u32, 20u32, 34u32);
    let width = columns as u32 * (cell_w + pad) + pad;
    let height = title_h + rows as u32 * (cell_h + caption_h + pad) + pad;
    let mut canvas = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let origin = |k: usize| {
        let (r, c) = ((k / columns) as u32, (k % columns) as u32);
        (
            pad + c * (cell_w + pad),
            title_h + r * (cell_h + caption_h + pad),
        )
    };
    for (k, (tile, _)) in tiles.iter().enumerate() {
        let (x, y) = origin(k);
        image::imageops::replace(&mut canvas, *tile, x as i64, y as i64);
    }
    let mut buffer = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.draw_text(
            title,
            &("sans-serif", 22).into_text_style(&root),
            (pad as i32, 6),
        )?;
        let style = ("sans-serif", 13).into_text_style(&root);
        for (k, (tile, caption)) in tiles.iter().enumerate() {
            let (x, y) = origin(k);
            // Captions are cut to the cell width (about 7 px per character at this size).
            let fit = (cell_w as usize / 7).max(4);
            let text: String = if caption.chars().count() > fit {
                caption.chars().take(fit - 1).chain(['…']).collect()
            } else {
                caption.to_string()
            };
            root.draw_text(&text, &style, (x as i32, (y + tile.height() + 3) as i32))?;
        }
        root.present()?;
    }
    let image = image::RgbImage::from_raw(width, height, buffer).context("grid buffer size")?;
    save_png(&image, path)
}

/// Horizontal bars of `(label, ratio)` with the parity line at 1 (benchmark ratios).
pub fn draw_ratio_bars(bars: &[(String, f64)], title: &str, path: &Path) -> Result<()> {
    register_font();
    let (width, height) = (1000u32, 120 + 34 * bars.len().max(1) as u32);
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let top = bars.iter().map(|b| b.1).fold(1.0f64, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(34)
            .y_label_area_size(260)
            .build_cartesian_2d(0.0..top, (0..bars.len()).into_segmented())?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                bars.get(*i).map(|b| b.0.clone()).unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .y_label_formatter(&label)
            .y_labels(bars.len())
            .x_desc("vireo / PyTorch (throughput; > 1: vireo faster)")
            .label_style(("sans-serif", 13))
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, ratio))| {
            let colour = if *ratio >= 1.0 {
                GREEN.mix(0.7)
            } else {
                RED.mix(0.6)
            };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*ratio, SegmentValue::Exact(i + 1)),
                ],
                colour.filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bar
        }))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Last)],
            BLACK.stroke_width(2),
        )))?;
        root.present()?;
    }
    let image = image::RgbImage::from_raw(width, height, buffer).context("plot buffer size")?;
    save_png(&image, path)
}

/// Points `(x, y, group)` coloured by group, with a legend of `names[group]` (embeddings by
/// class).
pub fn draw_scatter(
    points: &[(f64, f64, usize)],
    names: &[String],
    title: &str,
    axes: [&str; 2],
    path: &Path,
) -> Result<()> {
    register_font();
    let (width, height) = (760u32, 620u32);
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let bounds = |pick: fn(&(f64, f64, usize)) -> f64| {
            let (lo, hi) = points
                .iter()
                .map(pick)
                .filter(|v| v.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                });
            if lo.is_finite() {
                let pad = ((hi - lo) * 0.05).max(1e-6);
                (lo - pad)..(hi + pad)
            } else {
                -1.0..1.0
            }
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(bounds(|p| p.0), bounds(|p| p.1))?;
        chart
            .configure_mesh()
            .x_desc(axes[0])
            .y_desc(axes[1])
            .label_style(("sans-serif", 13))
            .draw()?;
        for (group, name) in names.iter().enumerate() {
            let colour = Palette99::pick(group).to_rgba();
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| p.2 == group && p.0.is_finite() && p.1.is_finite())
                        .map(|p| Circle::new((p.0, p.1), 3, colour.filled())),
                )?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
        root.present()?;
    }
    let image = image::RgbImage::from_raw(width, height, buffer).context("plot buffer size")?;
    save_png(&image, path)
}

/// Overlaid histograms of `series` over `range` in `bins` bins, as fractions of each series (the
/// positive and negative similarities of a contrastive model).
pub fn draw_histograms(
    series: &[(String, Vec<f64>)],
    range: (f64, f64),
    bins: usize,
    title: &str,
    x_desc: &str,
    path: &Path,
) -> Result<()> {
    register_font();
    let bins = bins.max(1);
    let width_of_bin = (range.1 - range.0) / bins as f64;
    let fractions: Vec<Vec<f64>> = series
        .iter()
        .map(|(_, values)| {
            let mut counts = vec![0f64; bins];
            let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            for v in &finite {
                let bin = (((v - range.0) / width_of_bin).floor().max(0.0) as usize).min(bins - 1);
                counts[bin] += 1.0;
            }
            counts
                .iter()
                .map(|c| c / finite.len().max(1) as f64)
                .collect()
        })
        .collect();
    let top = fractions
        .iter()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let (width, height) = (760u32, 480u32);
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(range.0..range.1, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("fraction")
            .label_style(("sans-serif", 13))
            .draw()?;
        const COLOURS: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];
        for (k, ((name, _), fraction)) in series.iter().zip(&fractions).enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            chart
                .draw_series(fraction.iter().enumerate().map(|(i, &f)| {
                    let x0 = range.0 + i as f64 * width_of_bin;
                    Rectangle::new(
                        [(x0, 0.0), (x0 + width_of_bin, f)],
                        colour.mix(0.35).filled(),
                    )
                }))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
        root.present()?;
    }
    let image = image::RgbImage::from_raw(width, height, buffer).context("plot buffer size")?;
    save_png(&image, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_and_scatters_draw_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("similarities.png");
        let series = vec![
            ("positive".to_string(), vec![0.8, 0.9, 0.85, 0.95]),
            ("negative".to_string(), vec![-0.1, 0.0, 0.1, 0.05, f64::NAN]),
        ];
        draw_histograms(&series, (-1.0, 1.0), 40, "similarities", "cosine", &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // The blue and red bars were drawn.
        assert!(
            img.pixels()
                .any(|p| p.0[2] > 200 && p.0[0] < 200 && p.0[1] < 200)
        );
        assert!(
            img.pixels()
                .any(|p| p.0[0] > 200 && p.0[1] < 200 && p.0[2] < 200)
        );
        let path = dir.path().join("scatter.png");
        let points = vec![(0.0, 1.0, 0), (1.0, 0.0, 1), (0.5, 0.5, 1)];
        draw_scatter(&points, &["a".into(), "b".into()], "s", ["x", "y"], &path).unwrap();
        assert!(image::open(&path).is_ok());
    }

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

    #[test]
    fn ratio_bars_draw_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ratios.png");
        let bars = vec![("conv".to_string(), 0.4), ("data".to_string(), 1.6)];
        draw_ratio_bars(&bars, "ratios", &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1000, 120 + 34 * 2));
        let coloured = img
            .pixels()
            .filter(|p| p.0[0] != p.0[1] || p.0[1] != p.0[2])
            .count();
        assert!(coloured > 2000, "bars were drawn: {coloured}");
    }

    #[test]
    fn grids_keep_tile_pixels_and_captions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let red = image::RgbImage::from_pixel(40, 30, image::Rgb([255, 0, 0]));
        let blue = image::RgbImage::from_pixel(40, 30, image::Rgb([0, 0, 255]));
        let tiles = [(&red, "red"), (&blue, "blue"), (&red, "red again")];
        draw_tile_grid(&tiles, 2, "grid", &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // 2 columns x 2 rows of 40x30 cells plus padding, captions and title.
        assert_eq!(img.dimensions(), (2 * 48 + 8, 34 + 2 * (30 + 20 + 8) + 8));
        assert_eq!(img.get_pixel(8 + 20, 34 + 15).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(8 + 48 + 20, 34 + 15).0, [0, 0, 255]);
        let caption_ink = (34 + 30..34 + 50)
            .flat_map(|y| (8..48).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0 != [255, 255, 255])
            .count();
        assert!(caption_ink > 10, "the caption was drawn");
    }
}
