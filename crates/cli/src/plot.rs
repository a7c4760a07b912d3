//! Figures, drawn with plotters as SVG or PNG (by the path's extension). Text uses DejaVu Sans,
//! bundled in `assets/` (Bitstream Vera licence, beside it), so no system fonts are needed.

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// Registers the bundled font (once) for every figure.
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let font: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            // A bundled, valid TrueType file: registration cannot fail.
            let _ = plotters::style::register_font("sans-serif", style, font);
        }
    });
}

/// Draws with `draw` into an SVG or a PNG of `size` pixels, by `path`'s extension.
pub(crate) fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl Fn(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
    draw_png: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(&root)?;
            root.present()
                .map_err(|e| anyhow!("writing {}: {e}", path.display()))
        }
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw_png(&root)?;
            root.present()
                .map_err(|e| anyhow!("writing {}: {e}", path.display()))
        }
        _ => bail!("{}: plots are written as .svg or .png", path.display()),
    }
}

fn partition_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    counts: &[Vec<usize>],
    width: u32,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e:?}");
    let workers = counts.len();
    let classes = counts.first().map_or(0, Vec::len);
    let tallest = counts
        .iter()
        .map(|c| c.iter().sum::<usize>())
        .max()
        .unwrap_or(0)
        .max(1);
    root.fill(&WHITE).map_err(err)?;
    // The chart on the left, the legend in its own column on the right (never over a bar).
    let (left, right) = root.split_horizontally(width - 100);
    for c in 0..classes {
        let color = Palette99::pick(c).to_rgba();
        let y = 60 + 22 * c as i32;
        right
            .draw(&Rectangle::new([(10, y), (24, y + 14)], color.filled()))
            .map_err(err)?;
        right
            .draw(&Text::new(
                format!("label {c}"),
                (30, y),
                ("sans-serif", 14),
            ))
            .map_err(err)?;
    }
    let mut chart = ChartBuilder::on(&left)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..workers as f64 - 0.5, 0f64..tallest as f64 * 1.05)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("worker")
        .y_desc("samples")
        .x_labels(workers.min(30))
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(err)?;
    let mut bottom = vec![0usize; workers];
    #[allow(clippy::needless_range_loop)] // `c` indexes the inner vectors, not `counts`
    for c in 0..classes {
        let color = Palette99::pick(c).to_rgba();
        let bars: Vec<_> = (0..workers)
            .map(|w| {
                let (lo, hi) = (bottom[w], bottom[w] + counts[w][c]);
                bottom[w] = hi;
                Rectangle::new(
                    [(w as f64 - 0.4, lo as f64), (w as f64 + 0.4, hi as f64)],
                    color.filled(),
                )
            })
            .collect();
        chart.draw_series(bars).map_err(err)?;
    }
    Ok(())
}

/// A stacked bar per worker: how many samples of each class it holds (SVG or PNG).
pub fn partition(path: &Path, title: &str, counts: &[Vec<usize>]) -> Result<()> {
    let width = 240 + 36 * counts.len().max(10) as u32;
    render(
        path,
        (width, 480),
        |r| partition_chart(r, title, counts, width),
        |r| partition_chart(r, title, counts, width),
    )
}

fn accuracy_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    points: &[(u64, f64)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let last = points.last().map_or(1, |p| p.0).max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0u64..last, 0f64..1f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("test accuracy")
        .draw()
        .map_err(err)?;
    let finite: Vec<(u64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
    chart
        .draw_series(LineSeries::new(
            finite.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?;
    chart
        .draw_series(finite.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
        .map_err(err)?;
    Ok(())
}

/// Test accuracy against round, one line (SVG or PNG).
pub fn accuracy(path: &Path, title: &str, points: &[(u64, f64)]) -> Result<()> {
    render(
        path,
        (720, 440),
        |r| accuracy_chart(r, title, points),
        |r| accuracy_chart(r, title, points),
    )
}
