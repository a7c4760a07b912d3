//! Figures, drawn with plotters' SVG backend.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// A stacked bar per worker: how many samples of each class it holds.
pub fn partition_svg(path: &Path, title: &str, counts: &[Vec<usize>]) -> Result<()> {
    let workers = counts.len();
    let classes = counts.first().map_or(0, Vec::len);
    let tallest = counts
        .iter()
        .map(|c| c.iter().sum::<usize>())
        .max()
        .unwrap_or(0)
        .max(1);
    let width = 240 + 36 * workers.max(10) as u32;
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("drawing {}: {e}", path.display());
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
                format!("class {c}"),
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
    root.present().map_err(err)?;
    Ok(())
}

/// Test accuracy against round, one line.
pub fn accuracy_svg(path: &Path, title: &str, points: &[(u64, f64)]) -> Result<()> {
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(err)?;
    let last = points.last().map_or(1, |p| p.0).max(1);
    let mut chart = ChartBuilder::on(&root)
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
    root.present().map_err(err)?;
    Ok(())
}
