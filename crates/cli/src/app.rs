//! The command line: the top-level parser and one variant per command, each command's
//! arguments declared once, in its own module under [`crate::commands`].

use crate::commands::{aggregate, attack, bench, data, grid, report, rules, run as run_cmd, store};
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io::Write;

/// Byzantine-resilient distributed training: robust aggregation rules, pre-aggregation and
/// attacks, as the thesis "Investigating a Byzantine Resilient Framework for the Adam
/// Optimizer" defines them.
#[derive(Debug, Parser)]
#[command(name = "byzadam", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train under attack: one run of the thesis's loop (workers, Byzantine workers, robust
    /// pipeline, optimizer), from a TOML config or, without one, the quickstart (DRA with the
    /// trimmed mean against Little on homogeneous MNIST, 15 workers of which 5 Byzantine,
    /// 300 rounds). Results (config.toml, metrics.jsonl, summary.json, accuracy.svg and .png) go to
    /// --out or results/<time>-<optimizer>-<rule>-<attack>.
    ///
    /// Example: byzadam run --set rounds=100 --set 'attack={name="sign_flip"}'
    Run(run_cmd::RunArgs),
    /// Run a grid of experiments into a results store: every combination of the grid file's
    /// axes (minus its exclusions), in parallel, skipping runs the store already holds.
    ///
    /// A grid file is a `[base]` run config (the keys of `byzadam run`'s config), `[axes]`
    /// (a list of values per key; `seed` and `data_seed` are the training and data-split seed
    /// axes) and optional `[[exclude]]` tables; see configs/thesis/ and docs/config.md. Each
    /// run's id is a hash of its complete config and of the build's results version. Runs in
    /// flight checkpoint every --checkpoint-every seconds; after Ctrl-C, kill or power loss,
    /// the same command resumes them mid-run. Ctrl-C, SIGTERM (a scheduler's time limit) or
    /// SIGHUP checkpoint the runs in flight before exiting. Finished runs are never lost: each
    /// is one SQLite transaction.
    ///
    /// Example: byzadam grid configs/thesis/mnist-homogeneous.toml && byzadam report results/mnist-homogeneous.db
    Grid(grid::GridArgs),
    /// Tables and figures from a results store, per grid: the thesis's Tables 4.1–4.4 (per
    /// optimizer and attack, the best aggregator's final test accuracy; best and worst per
    /// column marked) and the full aggregator × attack table per optimizer, as Markdown,
    /// LaTeX and CSV; test accuracy per round (a panel per attack and optimizer, a line per
    /// aggregator, a band of ± one standard deviation over seeds) and aggregator × attack
    /// heatmaps, as SVG and PNG. With several seeds, cells are mean ± sample standard
    /// deviation and the best aggregator is chosen on the mean.
    ///
    /// Example: byzadam report results/mnist-homogeneous.db
    Report(report::ReportArgs),
    /// Inspect, merge and export results stores.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Combine n vectors (one per row of INPUT) into one with a robust rule.
    ///
    /// INPUT is a 2-D .npy (float32 or float64), a CSV with one vector per line, or a JSON
    /// array of arrays; ±∞ and NaN may be written inf, -inf, nan. Pre-aggregators run in the
    /// order given, then the rule. The result goes to --output (.npy, .csv or .json by
    /// extension) or, by default, to stdout as JSON.
    ///
    /// Example: byzadam aggregate examples/submissions.csv --rule trimmed_mean --f 5 --pre nnm:f=5
    Aggregate(aggregate::AggregateArgs),
    /// Forge the Byzantine vectors an attack sends, from the honest vectors in INPUT.
    ///
    /// Attacks that start from the Byzantine workers' own genuine vectors (little, sign_flip,
    /// empire with the default base) read them from --own. Adaptive attacks (optimal_alie,
    /// optimal_empire) probe the server pipeline given by --server-rule/--server-f/--server-pre.
    ///
    /// Example: byzadam attack honest.npy --attack alie --byzantine 5 -o byzantine.npy
    Attack(attack::AttackArgs),
    /// List every aggregation rule, pre-aggregator and attack: aliases, requirement and
    /// parameters (--json: the whole registry as JSON).
    Rules(rules::RulesArgs),
    /// Fetch, verify and inspect datasets.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Time the CPU engine: one round of worker gradients of the thesis's CNNs (workers in
    /// parallel over --threads threads) and test-set evaluation throughput, on random input.
    /// `benchmarks/pytorch_round.py` times PyTorch on the same work; BENCHMARKS.md records
    /// both.
    BenchEngine(bench::EngineArgs),
    /// Time the robust kernels on random input: medians of interleaved repetitions, with
    /// ratios to the plain average (coordinate-wise rules) and to the pairwise distance matrix
    /// (distance-based rules) measured in the same run, over --threads threads. BENCHMARKS.md
    /// records its output.
    Bench(bench::BenchArgs),
}

impl Cli {
    /// Runs the command, writing its output to `w`.
    pub fn run(&self, w: &mut dyn Write) -> Result<()> {
        // An explicit BYZADAM_CPU that cannot be honoured stops here, before any work (the
        // libraries would only warn and fall back).
        byzadam_cpu::requested()?;
        match &self.command {
            Command::Run(args) => run_cmd::run(args, w),
            Command::Grid(args) => grid::run(args, w),
            Command::Report(args) => report::run(args, w),
            Command::Store(command) => store::run(command, w),
            Command::Aggregate(args) => aggregate::run(args, w),
            Command::Attack(args) => attack::run(args, w),
            Command::Rules(args) => rules::run(args, w),
            Command::Data(command) => data::run(command, w),
            Command::BenchEngine(args) => bench::bench_engine(args, w),
            Command::Bench(args) => bench::bench(args, w),
        }
    }
}
