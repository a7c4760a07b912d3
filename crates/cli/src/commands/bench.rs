//! `byzadam bench`: medians of interleaved timings of the robust kernels, with ratios to the
//! baselines measured in the same run (the plain average for coordinate-wise rules, the
//! pairwise distance matrix for distance-based ones).

use crate::options::Threads;
use anyhow::{bail, Result};
use byzadam_robust::aggregators::*;
use byzadam_robust::preaggregators::NearestNeighborMixing;
use byzadam_robust::{pairwise_squared_distances, Aggregator, PreAggregator, Submissions};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::time::Instant;

/// What `byzadam bench` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Number of vectors.
    #[arg(long, default_value_t = 15)]
    pub n: usize,
    /// Byzantine vectors tolerated.
    #[arg(long, default_value_t = 5)]
    pub f: usize,
    /// Dimensions, comma-separated (the thesis's MNIST CNN, CIFAR-10 CNN, ResNet-18 scale).
    #[arg(long, value_delimiter = ',', default_value = "176050,1310922,11000000")]
    pub dims: Vec<usize>,
    /// Timed repetitions of each kernel (the median is reported).
    #[arg(long, default_value_t = 9)]
    pub repeats: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub threads: Threads,
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
        (Box::new(TrimmedMean::new(f)), Baseline::Average),
        (Box::new(Median {}), Baseline::Average),
        (Box::new(MeanAroundMedian { f }), Baseline::Average),
        (
            Box::new(MinimumDiameterAveraging::new(f)),
            Baseline::Distances,
        ),
        (Box::new(Krum::new(f)), Baseline::Distances),
        (
            Box::new(MultiKrum {
                f,
                m: None,
                byzfl: false,
            }),
            Baseline::Distances,
        ),
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
            NearestNeighborMixing::new(f)
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
    args.threads.set_global()?;
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
        "n = {}, f = {}, {} repeats (median), {} threads, CPU level {} ({})",
        args.n,
        args.f,
        args.repeats,
        rayon::current_num_threads(),
        byzadam_cpu::level(),
        byzadam_cpu::level().describe(),
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

/// What `byzadam bench-engine` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Workers per round.
    #[arg(long, default_value_t = 15)]
    pub workers: usize,
    /// Mini-batch per worker.
    #[arg(long, default_value_t = 25)]
    pub batch: usize,
    /// Timed rounds (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Models, comma-separated: mnist, cifar10.
    #[arg(long, value_delimiter = ',', default_value = "mnist,cifar10")]
    pub models: Vec<String>,
    /// Compute every convolution by im2col + SGEMM, with Winograd's algorithm for 3 × 3
    /// convolutions turned off (to measure what it gains).
    #[arg(long)]
    pub im2col: bool,
    /// Evaluate image by image, as training's forward pass does, instead of sixteen
    /// images abreast (to measure what that gains; the results are the same bits).
    #[arg(long)]
    pub per_image_eval: bool,
    /// Workers per pass: each group of this many workers computes its gradients as one
    /// batch (`Network::loss_and_grad_batched`, the same bits); 1 = each worker its own pass.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub group: u32,
    /// Also measure our SGEMM's rate on one thread (1024 × 1024 × 1024 products, median of
    /// 9) and give each round's FLOP floor: its products' operations (direct convolutions,
    /// two per multiply-add) at that rate, and the round's time as a multiple of it.
    #[arg(long)]
    pub sgemm_peak: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub threads: Threads,
}

/// Times one round of `workers` gradients (workers in parallel over the rayon pool, each with
/// its own batch-norm state and dropout stream; as in `Simulation::step`, the passes run on one
/// scratch network per thread, whose buffers stay in cache), and evaluation throughput, for
/// each model; one line each.
pub fn bench_engine(args: &EngineArgs, w: &mut dyn Write) -> Result<()> {
    args.threads.set_global()?;
    use byzadam_model::ModelKind;
    use rayon::prelude::*;
    writeln!(
        w,
        "{} workers × batch {} ({} per pass), {} rounds (median), {} threads, 3 × 3 \
         convolutions by {}, evaluation {}, CPU level {} ({})",
        args.workers,
        args.batch,
        args.group,
        args.repeats,
        rayon::current_num_threads(),
        if args.im2col { "im2col" } else { "Winograd" },
        if args.per_image_eval {
            "image by image"
        } else {
            "sixteen images abreast"
        },
        byzadam_model::cpu_level(),
        byzadam_model::cpu_level().describe(),
    )?;
    let peak = args.sgemm_peak.then(|| byzadam_model::sgemm_rate(1024, 9));
    if let Some(rate) = peak {
        writeln!(
            w,
            "SGEMM, 1024 × 1024 × 1024, one thread: {rate:.1} GFLOP/s"
        )?;
    }
    writeln!(w)?;
    if peak.is_some() {
        writeln!(
            w,
            "| model | parameters | round ms | evaluation img/s | round GFLOP | FLOP floor ms | × floor |"
        )?;
        writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")?;
    } else {
        writeln!(w, "| model | parameters | round ms | evaluation img/s |")?;
        writeln!(w, "| --- | ---: | ---: | ---: |")?;
    }
    for name in &args.models {
        let kind = match name.as_str() {
            "mnist" => ModelKind::MnistCnn,
            "cifar10" => ModelKind::Cifar10Cnn { dropout: 0.25 },
            other => bail!("unknown model {other:?}: use mnist or cifar10"),
        };
        let mut net = kind.build();
        net.set_winograd(!args.im2col);
        net.set_lanes(!args.per_image_eval);
        let mut params = vec![0.0; net.num_params()];
        let mut state = vec![0.0; net.num_state()];
        net.init(
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(1),
            &mut params,
            &mut state,
        );
        let per = net.input().len();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let x: Vec<f32> = (0..args.batch * per)
            .map(|_| rng.gen_range(-1.0f32..1.0))
            .collect();
        let y: Vec<u8> = (0..args.batch).map(|i| (i % 10) as u8).collect();
        struct Worker {
            state: Vec<f32>,
            grad: Vec<f32>,
            rng: rand_chacha::ChaCha8Rng,
        }
        let mut workers: Vec<Worker> = (0..args.workers)
            .map(|i| Worker {
                state: state.clone(),
                grad: vec![0.0; net.num_params()],
                rng: rand_chacha::ChaCha8Rng::seed_from_u64(i as u64),
            })
            .collect();
        // One scratch network per thread, as `Simulation::step` has.
        let scratch = byzadam_model::ThreadNetworks::new(&net, rayon::current_num_threads());
        let on_this_thread = || scratch.this_thread();
        let group = args.group as usize;
        let mut round = || {
            if group == 1 {
                workers.par_iter_mut().for_each(|wk| {
                    on_this_thread().loss_and_grad(
                        &params,
                        &mut wk.state,
                        &x,
                        &y,
                        &mut wk.rng,
                        &mut wk.grad,
                    );
                });
                return;
            }
            // Each group's pass on its thread's scratch network.
            workers.par_chunks_mut(group).for_each(|ws| {
                let (first, rest) = ws.split_first_mut().expect("chunks are not empty");
                let job = |state, rng, grad| byzadam_model::Job {
                    images: &x,
                    labels: &y,
                    state,
                    rng,
                    grad,
                    loss: 0.0,
                };
                let mut jobs: Vec<byzadam_model::Job<'_>> =
                    std::iter::once(job(&mut first.state, &mut first.rng, &mut first.grad))
                        .chain(
                            rest.iter_mut()
                                .map(|wk| job(&mut wk.state, &mut wk.rng, &mut wk.grad)),
                        )
                        .collect();
                on_this_thread().loss_and_grad_batched(&params, &mut jobs);
            })
        };
        round();
        let mut times: Vec<f64> = (0..args.repeats)
            .map(|_| {
                let t = Instant::now();
                round();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let n_eval = if name == "mnist" { 10_000 } else { 1_000 };
        let xe: Vec<f32> = (0..n_eval * per)
            .map(|_| rng.gen_range(-1.0f32..1.0))
            .collect();
        let ye: Vec<u8> = (0..n_eval).map(|i| (i % 10) as u8).collect();
        let mut eval_net = net.clone();
        eval_net.evaluate(&params, &state, &xe[..500 * per], &ye[..500], 500);
        let t = Instant::now();
        eval_net.evaluate(&params, &state, &xe, &ye, 500);
        let ips = n_eval as f64 / t.elapsed().as_secs_f64();
        let round = median(&mut times);
        write!(
            w,
            "| {name} | {} | {round:.1} | {ips:.0} |",
            net.num_params()
        )?;
        if let Some(rate) = peak {
            // The round's products spread over the threads: the floor is per thread.
            let threads = rayon::current_num_threads().min(args.workers).max(1) as f64;
            let gflop =
                net.train_flops_per_image() as f64 * (args.workers * args.batch) as f64 / 1e9;
            let floor = gflop / rate / threads * 1e3;
            write!(w, " {gflop:.2} | {floor:.1} | {:.2} |", round / floor)?;
        }
        writeln!(w)?;
    }
    Ok(())
}
