//! `byzadam bench`: medians of interleaved timings of the robust kernels, with ratios to the
//! baselines measured in the same run (the plain average for coordinate-wise rules, the
//! pairwise distance matrix for distance-based ones).

use anyhow::{bail, Result};
use byzadam_robust::aggregators::*;
use byzadam_robust::preaggregators::NearestNeighborMixing;
use byzadam_robust::{pairwise_squared_distances, Aggregator, PreAggregator, Submissions};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::time::Instant;

/// Settings of a benchmark run.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    /// Number of vectors.
    pub n: usize,
    /// Byzantine vectors tolerated.
    pub f: usize,
    /// Dimensions to run.
    pub dims: Vec<usize>,
    /// Timed repetitions of each kernel (the median is reported).
    pub repeats: usize,
}

/// What a kernel is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Baseline {
    /// Is a baseline.
    None,
    /// Compared with the plain average.
    Average,
    /// Compared with the pairwise distance matrix.
    Distances,
}

struct Kernel {
    name: &'static str,
    baseline: Baseline,
    run: Box<dyn FnMut(&Submissions)>,
}

fn kernels(n: usize, f: usize, dim: usize) -> Vec<Kernel> {
    let mut out = vec![0.0f32; dim];
    let mut d2 = vec![0.0f64; n * n];
    let mut k = vec![Kernel {
        name: "pairwise_distances",
        baseline: Baseline::None,
        run: Box::new(move |s| pairwise_squared_distances(s, &mut d2).expect("valid input")),
    }];
    let rules: Vec<(Box<dyn Aggregator>, Baseline)> = vec![
        (Box::new(Average {}), Baseline::None),
        (Box::new(TrimmedMean { f }), Baseline::Average),
        (Box::new(Median {}), Baseline::Average),
        (Box::new(MeanAroundMedian { f }), Baseline::Average),
        (
            Box::new(MinimumDiameterAveraging::new(f)),
            Baseline::Distances,
        ),
        (Box::new(Krum { f }), Baseline::Distances),
        (Box::new(MultiKrum { f, m: None }), Baseline::Distances),
    ];
    for (mut rule, baseline) in rules {
        let mut out = out.clone();
        k.push(Kernel {
            name: rule.name(),
            baseline,
            run: Box::new(move |s| rule.aggregate_into(s, &mut out).expect("valid input")),
        });
    }
    let mut mixed = Submissions::default();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
    k.push(Kernel {
        name: "nearest_neighbor_mixing",
        baseline: Baseline::Distances,
        run: Box::new(move |s| {
            NearestNeighborMixing { f }
                .apply(s, &mut mixed, &mut rng)
                .expect("valid input");
        }),
    });
    out.clear();
    k
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// Runs the benchmark and writes a Markdown table to `w`.
pub fn bench(args: &BenchArgs, w: &mut dyn Write) -> Result<()> {
    if args.n <= 2 * args.f + 2 {
        bail!(
            "--n must exceed 2f + 2 (Krum's requirement), got n = {}, f = {}",
            args.n,
            args.f
        );
    }
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    writeln!(
        w,
        "n = {}, f = {}, {} repeats (median), {} threads, AVX2+FMA {}",
        args.n,
        args.f,
        args.repeats,
        rayon::current_num_threads(),
        if cfg!(target_arch = "x86_64") && std::is_x86_feature_detected!("avx2") {
            "on"
        } else {
            "off"
        }
    )?;
    writeln!(w)?;
    writeln!(w, "| d | kernel | median ms | ratio | to |")?;
    writeln!(w, "| ---: | --- | ---: | ---: | --- |")?;
    for &dim in &args.dims {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(dim as u64);
        let s = Submissions::from_flat(
            (0..args.n * dim)
                .map(|_| rng.gen_range(-1.0f32..1.0))
                .collect(),
            dim,
        )?;
        let mut ks = kernels(args.n, args.f, dim);
        // One warm-up call each, then interleaved repetitions so machine noise hits all alike.
        for k in ks.iter_mut() {
            (k.run)(&s);
        }
        let mut times = vec![Vec::with_capacity(args.repeats); ks.len()];
        for _ in 0..args.repeats {
            for (k, t) in ks.iter_mut().zip(times.iter_mut()) {
                let start = Instant::now();
                (k.run)(&s);
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        let medians: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
        let base = |name: &str| {
            ks.iter()
                .position(|k| k.name == name)
                .map(|i| medians[i])
                .expect("baseline present")
        };
        let (avg, dist) = (base("average"), base("pairwise_distances"));
        for (k, &m) in ks.iter().zip(&medians) {
            let (ratio, to) = match k.baseline {
                Baseline::None => (String::new(), ""),
                Baseline::Average => (format!("{:.2}", m / avg), "average"),
                Baseline::Distances => (format!("{:.2}", m / dist), "distances"),
            };
            writeln!(w, "| {dim} | {} | {m:.3} | {ratio} | {to} |", k.name)?;
        }
    }
    Ok(())
}
