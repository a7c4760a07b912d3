//! `byzadam`: Byzantine-resilient distributed training, aggregation and attacks.

use anyhow::Result;
use byzadam_cli::commands::{self, AggregateArgs, AttackArgs};
use byzadam_cli::spec;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Byzantine-resilient distributed training: robust aggregation rules, pre-aggregation and
/// attacks, as the thesis "Investigating a Byzantine Resilient Framework for the Adam
/// Optimizer" defines them.
#[derive(Debug, Parser)]
#[command(name = "byzadam", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train under attack: one run of the thesis's loop (workers, Byzantine workers, robust
    /// pipeline, optimizer), from a TOML config or, without one, the quickstart (DRA with the
    /// trimmed mean against Little on homogeneous MNIST, 15 workers of which 5 Byzantine,
    /// 300 rounds). Results (config.toml, metrics.jsonl, summary.json, accuracy.svg and .png) go to
    /// --out or results/<time>-<optimizer>-<rule>-<attack>.
    ///
    /// Example: byzadam run --set rounds=100 --set 'attack={name="sign_flip"}'
    Run {
        /// A TOML run config (every key documented in docs/config.md).
        config: Option<PathBuf>,
        /// Override a key, KEY=VALUE with a dotted key and a TOML value (repeatable), e.g.
        /// --set aggregator.f=3, --set 'optimizer={name="sgd", lr={name="constant", value=0.75}}',
        /// --set attack=none.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// The data directory (default: $BYZADAM_DATA_DIR, else ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The results directory.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Run a grid of experiments into a results store: every combination of the grid file's
    /// axes (minus its exclusions), in parallel, skipping runs the store already holds.
    ///
    /// A grid file is a `[base]` run config (the keys of `byzadam run`'s config), `[axes]`
    /// (a list of values per key; `seed` and `data_seed` are the training and data-split seed
    /// axes) and optional `[[exclude]]` tables; see configs/thesis/ and docs/config.md. Each
    /// run's id is a hash of its complete config. Runs in flight checkpoint every
    /// --checkpoint-every seconds; after Ctrl-C, kill or power loss, the same command resumes
    /// them mid-run. Ctrl-C, SIGTERM (a scheduler's time limit) or SIGHUP checkpoint the runs
    /// in flight before exiting. Finished runs are never lost: each is one SQLite transaction.
    ///
    /// Example: byzadam grid configs/thesis/mnist-homogeneous.toml && byzadam report results/mnist-homogeneous.db
    Grid {
        /// The grid file (TOML).
        file: PathBuf,
        /// The results store, an SQLite file (default results/<grid name>.db).
        #[arg(long)]
        store: Option<PathBuf>,
        /// Run only slice I of N (I from 0 to N−1; every N-th run), e.g. --shard
        /// $SLURM_ARRAY_TASK_ID/8; merge the shards' stores with `byzadam store merge`.
        #[arg(long, value_name = "I/N")]
        shard: Option<byzadam_experiment::Shard>,
        /// Runs at once (default: one per core while there are enough runs).
        #[arg(long)]
        jobs: Option<usize>,
        /// Threads per run (default: the cores divided among the runs at once).
        #[arg(long)]
        threads: Option<usize>,
        /// Seconds between checkpoints of each run in flight (0: after every round).
        #[arg(long, default_value_t = 60)]
        checkpoint_every: u64,
        /// List the runs still to do, then stop.
        #[arg(long)]
        dry_run: bool,
        /// The data directory (default: $BYZADAM_DATA_DIR, else ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Tables and figures from a results store, per grid: the thesis's Tables 4.1–4.4 (per
    /// optimizer and attack, the best aggregator's final test accuracy; best and worst per
    /// column marked) and the full aggregator × attack table per optimizer, as Markdown,
    /// LaTeX and CSV; test accuracy per round (a panel per attack and optimizer, a line per
    /// aggregator, a band of ± one standard deviation over seeds) and aggregator × attack
    /// heatmaps, as SVG and PNG. With several seeds, cells are mean ± sample standard
    /// deviation and the best aggregator is chosen on the mean.
    ///
    /// Example: byzadam report results/mnist-homogeneous.db
    Report {
        /// The results store (written by `byzadam grid`).
        store: PathBuf,
        /// Only this grid (default: every grid in the store; `byzadam store list` names them).
        #[arg(long)]
        grid: Option<String>,
        /// Output directory (default: the store's path without .db, plus -report).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Tables only, no figures.
        #[arg(long)]
        no_figures: bool,
        /// A published table to put beside ours, cell by cell: CSV with the header
        /// optimizer,attack,accuracy,aggregator and the report's labels (SGD, Little, CWTM);
        /// configs/thesis/tables/ holds the thesis's Tables 4.1–4.4.
        #[arg(long, value_name = "CSV")]
        reference: Option<PathBuf>,
    },
    /// Inspect, merge and export results stores.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Combine n vectors (one per row of INPUT) into one with a robust rule.
    ///
    /// INPUT is a 2-D .npy (float32 or float64), a CSV with one vector per line, or a JSON
    /// array of arrays; ±∞ and NaN may be written inf, -inf, nan. Pre-aggregators run in the
    /// order given, then the rule. The result goes to --output (.npy, .csv or .json by
    /// extension) or, by default, to stdout as JSON.
    ///
    /// Example: byzadam aggregate examples/submissions.csv --rule trimmed_mean --f 5 --pre nnm:f=5
    Aggregate {
        /// The vectors, one per row (.npy, .csv or .json).
        input: PathBuf,
        /// The aggregation rule, by name or acronym (trimmed_mean/cwtm, median/cwm,
        /// mean_around_median/meamed, minimum_diameter_averaging/mda, krum, multi_krum,
        /// geometric_median/gm, centered_clipping/cc, bulyan, monna, caf, smea, average).
        /// `byzadam rules` lists them all.
        #[arg(long)]
        rule: String,
        /// Number of Byzantine vectors the rule must tolerate.
        #[arg(long)]
        f: Option<usize>,
        /// A setting of the rule, KEY=VALUE (repeatable), e.g. --set m=7 for multi_krum.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
        settings: Vec<(String, serde_json::Value)>,
        /// A pre-aggregator NAME[:KEY=VALUE,...] (repeatable, applied in order), e.g.
        /// nnm:f=5, bucketing:s=2, clipping:c=1.5, arc:f=5.
        #[arg(long = "pre", value_name = "SPEC")]
        pre: Vec<String>,
        /// Output file (.npy, .csv or .json); JSON on stdout when absent.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Seed for randomised pre-aggregators (bucketing).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Forge the Byzantine vectors an attack sends, from the honest vectors in INPUT.
    ///
    /// Attacks that start from the Byzantine workers' own genuine vectors (little, sign_flip,
    /// empire with the default base) read them from --own. Adaptive attacks (optimal_alie,
    /// optimal_empire) probe the server pipeline given by --server-rule/--server-f/--server-pre.
    ///
    /// Example: byzadam attack honest.npy --attack alie --byzantine 5 -o byzantine.npy
    Attack {
        /// The honest vectors, one per row (.npy, .csv or .json).
        input: PathBuf,
        /// The attack, by name or alias (`byzadam rules` lists them).
        #[arg(long)]
        attack: String,
        /// Number of Byzantine vectors to forge.
        #[arg(long)]
        byzantine: usize,
        /// A setting of the attack, KEY=VALUE (repeatable), e.g. --set z=1.5 or --set base=honest_mean.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
        settings: Vec<(String, serde_json::Value)>,
        /// The Byzantine workers' genuine vectors, one per row.
        #[arg(long)]
        own: Option<PathBuf>,
        /// The server's aggregation rule (adaptive attacks).
        #[arg(long)]
        server_rule: Option<String>,
        /// The server rule's f.
        #[arg(long)]
        server_f: Option<usize>,
        /// A server pre-aggregator NAME[:KEY=VALUE,...] (repeatable).
        #[arg(long = "server-pre", value_name = "SPEC")]
        server_pre: Vec<String>,
        /// Output file (.npy, .csv or .json); JSON on stdout when absent.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Seed of the attack's random stream.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// List every aggregation rule, pre-aggregator and attack, with aliases.
    Rules,
    /// Fetch, verify and inspect datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Time the CPU engine: one round of worker gradients of the thesis's CNNs (workers in
    /// parallel over RAYON_NUM_THREADS threads) and test-set evaluation throughput, on random
    /// input. `benchmarks/pytorch_round.py` times PyTorch on the same work; BENCHMARKS.md
    /// records both.
    BenchEngine {
        /// Workers per round.
        #[arg(long, default_value_t = 15)]
        workers: usize,
        /// Mini-batch per worker.
        #[arg(long, default_value_t = 25)]
        batch: usize,
        /// Timed rounds (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Models, comma-separated: mnist, cifar10.
        #[arg(long, value_delimiter = ',', default_value = "mnist,cifar10")]
        models: Vec<String>,
        /// Compute every convolution by im2col + SGEMM, with Winograd's algorithm for 3 × 3
        /// convolutions turned off (to measure what it gains).
        #[arg(long)]
        im2col: bool,
        /// Evaluate image by image, as training's forward pass does, instead of sixteen
        /// images abreast (to measure what that gains; the results are the same bits).
        #[arg(long)]
        per_image_eval: bool,
    },
    /// Time the robust kernels on random input: medians of interleaved repetitions, with
    /// ratios to the plain average (coordinate-wise rules) and to the pairwise distance matrix
    /// (distance-based rules) measured in the same run. Set RAYON_NUM_THREADS to fix the
    /// thread count. BENCHMARKS.md records its output.
    Bench {
        /// Number of vectors.
        #[arg(long, default_value_t = 15)]
        n: usize,
        /// Byzantine vectors tolerated.
        #[arg(long, default_value_t = 5)]
        f: usize,
        /// Dimensions, comma-separated (the thesis's MNIST CNN, CIFAR-10 CNN, ResNet-18 scale).
        #[arg(long, value_delimiter = ',', default_value = "176050,1310922,11000000")]
        dims: Vec<usize>,
        /// Timed repetitions of each kernel.
        #[arg(long, default_value_t = 9)]
        repeats: usize,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// The grids in STORE and how many of their runs are done.
    List {
        /// The store.
        store: PathBuf,
    },
    /// Copy the runs of other stores (for example the shards of a grid run on several
    /// machines) into OUTPUT, creating it if need be; runs already there are kept.
    Merge {
        /// The store to merge into.
        output: PathBuf,
        /// The stores to merge from.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Write the tidy per-round table (one row per run and round, with the run's optimizer,
    /// aggregator, attack, seeds…) as CSV.
    Export {
        /// The store.
        store: PathBuf,
        /// The CSV file to write.
        #[arg(long)]
        csv: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Download DATASET into the data directory if missing (resumable, from the canonical
    /// mirrors), verify every file's SHA-256, and print its sizes and class counts.
    Fetch {
        /// mnist, fashion-mnist, cifar10 (or synthetic, generated).
        dataset: String,
        /// The data directory (default: $BYZADAM_DATA_DIR, else ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Split DATASET's training set across workers and print each worker's size and label
    /// histogram.
    ///
    /// Example: byzadam data partition mnist --workers 15 --scheme dirichlet:alpha=0.1
    Partition {
        /// mnist, fashion-mnist, cifar10 or synthetic.
        dataset: String,
        /// Number of workers.
        #[arg(long, default_value_t = 15)]
        workers: usize,
        /// homogeneous[:per_class=N], iid, dirichlet:alpha=A[,min_samples=M],
        /// gamma_similarity:gamma=G, or extreme.
        #[arg(long, default_value = "homogeneous")]
        scheme: String,
        /// Seed of the partition (and of the synthetic data).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also draw the per-worker label histogram as a stacked bar chart (.svg or .png).
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        /// The data directory (default: $BYZADAM_DATA_DIR, else ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn parse_setting(s: &str) -> Result<(String, serde_json::Value), String> {
    spec::parse_setting(s).map_err(|e| e.to_string())
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Run {
            config,
            set,
            data_dir,
            out,
            quiet,
        } => byzadam_cli::run_cmd::run(
            &byzadam_cli::run_cmd::RunArgs {
                config,
                set,
                data_dir: byzadam_data::data_dir(data_dir.as_deref()),
                out,
                progress: !quiet,
            },
            &mut stdout,
        ),
        Command::Grid {
            file,
            store,
            shard,
            jobs,
            threads,
            checkpoint_every,
            dry_run,
            data_dir,
            quiet,
        } => {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            // First Ctrl-C (or SIGTERM, SIGHUP): checkpoint the runs in flight and stop;
            // second: quit now.
            let _ = ctrlc::set_handler(move || {
                if flag.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!(
                    "\nstopping: checkpointing the runs in flight (Ctrl-C again to quit at once)"
                );
            });
            byzadam_cli::grid_cmd::grid(
                &byzadam_cli::grid_cmd::GridArgs {
                    file,
                    store,
                    data_dir: byzadam_data::data_dir(data_dir.as_deref()),
                    jobs,
                    threads,
                    shard,
                    checkpoint_every,
                    dry_run,
                    progress: !quiet,
                },
                &stop,
                &mut stdout,
            )
        }
        Command::Report {
            store,
            grid,
            out,
            no_figures,
            reference,
        } => byzadam_cli::report_cmd::report(
            &byzadam_cli::report_cmd::ReportArgs {
                store,
                grid,
                out,
                no_figures,
                reference,
            },
            &mut stdout,
        ),
        Command::Store(StoreCommand::List { store }) => {
            byzadam_cli::grid_cmd::list(&store, &mut stdout)
        }
        Command::Store(StoreCommand::Merge { output, inputs }) => {
            byzadam_cli::grid_cmd::merge(&output, &inputs, &mut stdout)
        }
        Command::Store(StoreCommand::Export { store, csv }) => {
            byzadam_cli::grid_cmd::export(&store, &csv, &mut stdout)
        }
        Command::Aggregate {
            input,
            rule,
            f,
            settings,
            pre,
            output,
            seed,
        } => commands::aggregate(
            &AggregateArgs {
                input,
                rule,
                f,
                settings,
                pre,
                output,
                seed,
            },
            &mut stdout,
        ),
        Command::Attack {
            input,
            attack,
            byzantine,
            settings,
            own,
            server_rule,
            server_f,
            server_pre,
            output,
            seed,
        } => commands::attack(
            &AttackArgs {
                input,
                attack,
                byzantine,
                settings,
                own,
                server_rule,
                server_f,
                server_pre,
                output,
                seed,
            },
            &mut stdout,
        ),
        Command::Bench {
            n,
            f,
            dims,
            repeats,
        } => byzadam_cli::bench::bench(
            &byzadam_cli::bench::BenchArgs {
                n,
                f,
                dims,
                repeats,
            },
            &mut stdout,
        ),
        Command::BenchEngine {
            workers,
            batch,
            repeats,
            models,
            im2col,
            per_image_eval,
        } => byzadam_cli::bench::bench_engine(
            &byzadam_cli::bench::EngineArgs {
                workers,
                batch,
                repeats,
                models,
                im2col,
                per_image_eval,
            },
            &mut stdout,
        ),
        Command::Data(DataCommand::Fetch { dataset, data_dir }) => byzadam_cli::data_cmd::fetch(
            &dataset,
            &byzadam_data::data_dir(data_dir.as_deref()),
            &mut stdout,
        ),
        Command::Data(DataCommand::Partition {
            dataset,
            workers,
            scheme,
            seed,
            plot,
            data_dir,
        }) => byzadam_cli::data_cmd::show_partition(
            &dataset,
            &byzadam_data::data_dir(data_dir.as_deref()),
            workers,
            &scheme,
            seed,
            plot.as_deref(),
            &mut stdout,
        ),
        Command::Rules => {
            print!("{}", spec::catalogue());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        // Output piped into `head` and closed: not an error (as in grep or ripgrep).
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
