//! `byzadam report STORE`: the thesis's tables (Markdown, LaTeX, CSV) and figures (accuracy
//! per round per attack and optimizer; aggregator × attack heatmaps), per grid in the store.

use super::store::open_existing;
use crate::matrix_io::write_atomically;
use anyhow::{anyhow, bail, Context, Result};
use byzadam_experiment::report::{parse_reference, sections, Format, Section};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `byzadam report` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The results store (written by `byzadam grid`).
    pub store: PathBuf,
    /// Only this grid (default: every grid in the store; `byzadam store list` names them).
    #[arg(long)]
    pub grid: Option<String>,
    /// Output directory (default: the store's path without .db, plus -report).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Tables only, no figures.
    #[arg(long)]
    pub no_figures: bool,
    /// A published table to put beside ours, cell by cell: CSV with the header
    /// optimizer,attack,accuracy,aggregator and the report's labels (SGD, Little, CWTM);
    /// configs/thesis/tables/ holds the thesis's Tables 4.1–4.4.
    #[arg(long, value_name = "CSV")]
    pub reference: Option<PathBuf>,
}

/// The thesis's colours for its five rules (AVG dark green, CWTM light green, MEAMED blue,
/// CWM pink, MDA red), a palette for the others.
fn aggregator_color(label: &str, index: usize) -> RGBColor {
    match label {
        "AVG" => RGBColor(0, 100, 0),
        "CWTM" => RGBColor(110, 200, 80),
        "MEAMED" => RGBColor(30, 90, 220),
        "CWM" => RGBColor(230, 90, 180),
        "MDA" => RGBColor(220, 30, 30),
        _ => {
            let c = Palette99::pick(index + 5).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

/// Red (0) → yellow (0.5) → green (1) for accuracies.
fn heat(v: f64) -> RGBColor {
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let lerp = |a: f64, b: f64, t: f64| (a + (b - a) * t).round() as u8;
    if v < 0.5 {
        let t = v / 0.5;
        RGBColor(
            lerp(215.0, 250.0, t),
            lerp(48.0, 220.0, t),
            lerp(39.0, 90.0, t),
        )
    } else {
        let t = (v - 0.5) / 0.5;
        RGBColor(
            lerp(250.0, 26.0, t),
            lerp(220.0, 150.0, t),
            lerp(90.0, 65.0, t),
        )
    }
}

fn curves_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    s: &Section,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let (header, rest) = root.split_vertically(80);
    header
        .draw(&Text::new(title.to_string(), (20, 10), ("sans-serif", 24)))
        .map_err(err)?;
    for (a, label) in s.aggregators.iter().enumerate() {
        let x = 20 + 130 * a as i32;
        let color = aggregator_color(label, a);
        header
            .draw(&Rectangle::new([(x, 52), (x + 28, 56)], color.filled()))
            .map_err(err)?;
        header
            .draw(&Text::new(label.clone(), (x + 34, 45), ("sans-serif", 16)))
            .map_err(err)?;
    }
    let seeds = s
        .cells
        .values()
        .map(|c| c.final_accuracy.n)
        .max()
        .unwrap_or(1);
    if seeds > 1 {
        let x = 20 + 130 * s.aggregators.len() as i32;
        header
            .draw(&Text::new(
                format!("mean over {seeds} seeds, band ± one standard deviation"),
                (x, 45),
                ("sans-serif", 16),
            ))
            .map_err(err)?;
    }
    let rounds = s
        .cells
        .values()
        .flat_map(|c| c.curve.last().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let panels = rest.split_evenly((s.attacks.len(), s.optimizers.len()));
    for (t, attack) in s.attacks.iter().enumerate() {
        for (o, optimizer) in s.optimizers.iter().enumerate() {
            let area = &panels[t * s.optimizers.len() + o];
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{optimizer} · {attack}"), ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(44)
                .build_cartesian_2d(0f64..rounds as f64, 0f64..1f64)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("round")
                .y_desc("test accuracy")
                .x_labels(5)
                .y_labels(6)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.1}"))
                .label_style(("sans-serif", 11))
                .axis_desc_style(("sans-serif", 12))
                .draw()
                .map_err(err)?;
            for (a, label) in s.aggregators.iter().enumerate() {
                let Some(cell) = s.cells.get(&(o, a, t)) else {
                    continue;
                };
                let color = aggregator_color(label, a);
                let pts: Vec<(f64, f64, f64)> = cell
                    .curve
                    .iter()
                    .filter(|(_, st)| st.mean.is_finite())
                    .map(|(r, st)| (*r as f64, st.mean, st.sd))
                    .collect();
                if pts.iter().any(|p| p.2 > 0.0) {
                    let mut band: Vec<(f64, f64)> =
                        pts.iter().map(|p| (p.0, (p.1 + p.2).min(1.0))).collect();
                    band.extend(pts.iter().rev().map(|p| (p.0, (p.1 - p.2).max(0.0))));
                    chart
                        .draw_series(std::iter::once(Polygon::new(band, color.mix(0.18))))
                        .map_err(err)?;
                }
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|p| (p.0, p.1)),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

fn heatmap_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    s: &Section,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let (header, rest) = root.split_vertically(50);
    header
        .draw(&Text::new(title.to_string(), (20, 12), ("sans-serif", 22)))
        .map_err(err)?;
    let (na, nt) = (s.aggregators.len(), s.attacks.len());
    let cols = s.optimizers.len().clamp(1, 2);
    let panels = rest.split_evenly((s.optimizers.len().div_ceil(cols), cols));
    for (o, optimizer) in s.optimizers.iter().enumerate() {
        let mut chart = ChartBuilder::on(&panels[o])
            .caption(optimizer.clone(), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..nt as f64, 0f64..na as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nt * 2 + 1)
            .y_labels(na * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 1e-6 && i < nt {
                    s.attacks[i].clone()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| {
                let i = y.floor() as usize;
                if (y - y.floor() - 0.5).abs() < 1e-6 && i < na {
                    s.aggregators[na - 1 - i].clone()
                } else {
                    String::new()
                }
            })
            .x_label_style(("sans-serif", 12))
            .y_label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for a in 0..na {
            for t in 0..nt {
                let y = (na - 1 - a) as f64;
                let x = t as f64;
                match s.cells.get(&(o, a, t)) {
                    Some(c) => {
                        let v = c.final_accuracy.mean;
                        chart
                            .draw_series(std::iter::once(Rectangle::new(
                                [(x, y), (x + 1.0, y + 1.0)],
                                heat(v).filled(),
                            )))
                            .map_err(err)?;
                        chart
                            .draw_series(std::iter::once(Text::new(
                                format!("{v:.2}"),
                                (x + 0.28, y + 0.62),
                                ("sans-serif", 13),
                            )))
                            .map_err(err)?;
                    }
                    None => {
                        chart
                            .draw_series(std::iter::once(Rectangle::new(
                                [(x, y), (x + 1.0, y + 1.0)],
                                RGBColor(230, 230, 230).filled(),
                            )))
                            .map_err(err)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Draws the same figure as `<stem>.svg` and `<stem>.png`.
fn draw_both(
    stem: &Path,
    size: (u32, u32),
    svg: impl Fn(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
    png: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    let paths = vec![stem.with_extension("svg"), stem.with_extension("png")];
    for p in &paths {
        crate::plot::render(p, size, &svg, &png)?;
    }
    Ok(paths)
}

/// Writes the report of every grid (or `--grid`) in the store and prints a summary.
pub fn run(args: &ReportArgs, w: &mut dyn Write) -> Result<()> {
    let store = open_existing(&args.store)?;
    if let Some(warning) = store.mixed_versions_warning()? {
        writeln!(w, "warning: {warning}")?;
    }
    let reference = match &args.reference {
        Some(p) => {
            let text = byzadam_sim::read_text(p).map_err(|e| anyhow!(e))?;
            Some(parse_reference(&text).map_err(|e| anyhow!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    // (name, runs in the grid, finished), read once.
    let in_store = store.grids()?;
    let grids: Vec<String> = match &args.grid {
        Some(g) => vec![g.clone()],
        None => in_store.iter().map(|g| g.0.clone()).collect(),
    };
    if grids.is_empty() {
        bail!("{}: no grid in this store", args.store.display());
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let mut s = args.store.with_extension("").into_os_string();
        s.push("-report");
        PathBuf::from(s)
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut markdown = String::new();
    let mut written: Vec<PathBuf> = Vec::new();
    for grid in &grids {
        let runs = store.runs(Some(grid))?;
        let total = in_store.iter().find(|g| g.0 == *grid).map_or(0, |g| g.1);
        if total == 0 {
            bail!(
                "{}: no grid named `{grid}` (byzadam store list {} shows them)",
                args.store.display(),
                args.store.display()
            );
        }
        if runs.is_empty() {
            writeln!(w, "grid {grid}: no finished run yet (0/{total})")?;
            continue;
        }
        let curve = |id: &str| store.curve(id).unwrap_or_default();
        let secs = sections(&runs, &curve);
        for (k, s) in secs.iter().enumerate() {
            let name = if secs.len() == 1 {
                grid.clone()
            } else {
                format!("{grid}-{}", k + 1)
            };
            let heading = if s.title.is_empty() {
                grid.clone()
            } else {
                format!("{grid} ({})", s.title)
            };
            let seeds = s
                .cells
                .values()
                .map(|c| c.final_accuracy.n)
                .max()
                .unwrap_or(1);
            let diverged: usize = s.cells.values().map(|c| c.diverged).sum();
            let nruns: usize = s.cells.values().map(|c| c.runs.len()).sum();
            let _ = std::fmt::Write::write_fmt(
                &mut markdown,
                format_args!(
                    "# {heading}\n\n{nruns} runs ({} of the grid's {total} finished), {} \
                     cells, up to {seeds} seed(s) per cell; {diverged} runs diverged.\n\n\
                     ## Best aggregator per optimizer and attack (final test accuracy)\n\n\
                     Best of each column in **bold**, worst in _italics_{}.\n\n{}\n",
                    runs.len(),
                    s.cells.len(),
                    if seeds > 1 {
                        "; mean ± sample standard deviation over seeds, best chosen on the mean"
                    } else {
                        ""
                    },
                    s.best_table(Format::Markdown)
                ),
            );
            if let Some(r) = &reference {
                let source = args
                    .reference
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string());
                let _ = std::fmt::Write::write_fmt(
                    &mut markdown,
                    format_args!(
                        "## Compared with the reference ({source})

{}
",
                        s.comparison(r, Format::Markdown)
                    ),
                );
                let p = out.join(format!("{name}-vs-reference.csv"));
                write_atomically(&p, s.comparison(r, Format::Csv).as_bytes())?;
                written.push(p);
            }
            let mut full_csv = String::new();
            let mut full_tex = String::new();
            for o in 0..s.optimizers.len() {
                let _ = std::fmt::Write::write_fmt(
                    &mut markdown,
                    format_args!(
                        "## {}: every aggregator (best per attack in **bold**)\n\n{}\n",
                        s.optimizers[o],
                        s.full_table(o, Format::Markdown)
                    ),
                );
                let csv = s.full_table(o, Format::Csv);
                if o == 0 {
                    full_csv.push_str(&csv);
                } else {
                    full_csv.extend(csv.lines().skip(1).map(|l| format!("{l}\n")));
                }
                full_tex.push_str(&s.full_table(o, Format::Latex));
                full_tex.push('\n');
            }
            for (file, text) in [
                (format!("{name}-best.csv"), s.best_table(Format::Csv)),
                (format!("{name}-best.tex"), s.best_table(Format::Latex)),
                (format!("{name}-full.csv"), full_csv),
                (format!("{name}-full.tex"), full_tex),
            ] {
                let p = out.join(file);
                write_atomically(&p, text.as_bytes())?;
                written.push(p);
            }
            if !args.no_figures {
                let title = format!("{heading}: test accuracy per round");
                let size = (
                    120 + 300 * s.optimizers.len() as u32,
                    80 + 230 * s.attacks.len() as u32,
                );
                let files = draw_both(
                    &out.join(format!("{name}-accuracy")),
                    size,
                    |r| curves_figure(r, &title, s),
                    |r| curves_figure(r, &title, s),
                )?;
                let _ = std::fmt::Write::write_fmt(
                    &mut markdown,
                    format_args!("![accuracy per round]({name}-accuracy.svg)\n\n"),
                );
                written.extend(files);
                let title = format!("{heading}: final test accuracy, aggregator × attack");
                let size = (
                    40 + (100 + 84 * s.attacks.len() as u32)
                        * s.optimizers.len().clamp(1, 2) as u32,
                    50 + (90 + 44 * s.aggregators.len() as u32)
                        * s.optimizers.len().div_ceil(2) as u32,
                );
                let files = draw_both(
                    &out.join(format!("{name}-heatmap")),
                    size,
                    |r| heatmap_figure(r, &title, s),
                    |r| heatmap_figure(r, &title, s),
                )?;
                let _ = std::fmt::Write::write_fmt(
                    &mut markdown,
                    format_args!("![heatmap]({name}-heatmap.svg)\n\n"),
                );
                written.extend(files);
            }
            writeln!(
                w,
                "{heading}: {nruns} runs ({}/{total} of the grid), {diverged} diverged; best final accuracy per optimizer and attack:\n",
                runs.len()
            )?;
            write!(w, "{}", s.best_table(Format::Markdown))?;
            writeln!(w)?;
            if let Some(r) = &reference {
                writeln!(w, "compared with the reference:\n")?;
                write!(w, "{}", s.comparison(r, Format::Markdown))?;
                writeln!(w)?;
            }
        }
    }
    let md = out.join("report.md");
    write_atomically(&md, markdown.as_bytes())?;
    written.insert(0, md);
    writeln!(w, "written to {}:", out.display())?;
    for p in &written {
        writeln!(
            w,
            "  {}",
            p.file_name()
                .map_or(String::new(), |f| f.to_string_lossy().into())
        )?;
    }
    Ok(())
}
