//! `byzadam aggregate`: n vectors combined into one by a robust pipeline.

use crate::{matrix_io, spec};
use anyhow::{Context, Result};
use byzadam_robust::Pipeline;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;

/// What `byzadam aggregate` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct AggregateArgs {
    /// The vectors, one per row (.npy, .csv or .json).
    pub input: PathBuf,
    /// The aggregation rule, by name or acronym (trimmed_mean/cwtm, median/cwm,
    /// mean_around_median/meamed, minimum_diameter_averaging/mda, krum, multi_krum,
    /// geometric_median/gm, centered_clipping/cc, bulyan, monna, caf, smea, average).
    /// `byzadam rules` lists them all.
    #[arg(long)]
    pub rule: String,
    /// Number of Byzantine vectors the rule must tolerate.
    #[arg(long)]
    pub f: Option<usize>,
    /// A setting of the rule, KEY=VALUE with a TOML value as in `byzadam run --set`
    /// (repeatable), e.g. --set m=7 for multi_krum.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = spec::setting)]
    pub settings: Vec<(String, Value)>,
    /// A pre-aggregator NAME[:KEY=VALUE,...] (repeatable, applied in order), e.g.
    /// nnm:f=5, bucketing:s=2, clipping:c=1.5, arc:f=5.
    #[arg(long = "pre", value_name = "SPEC")]
    pub pre: Vec<String>,
    /// Output file (.npy, .csv or .json); JSON on stdout when absent.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Seed for randomised pre-aggregators (bucketing).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Builds the server pipeline from a rule and pre-aggregator specs.
pub fn pipeline(
    rule: &str,
    f: Option<usize>,
    settings: &[(String, Value)],
    pre: &[String],
) -> Result<Pipeline> {
    let aggregator = spec::aggregator(rule, f, settings)?.build();
    let pre = pre
        .iter()
        .map(|p| spec::preaggregator(p).map(|c| c.build()))
        .collect::<Result<Vec<_>>>()?;
    Ok(Pipeline::new(pre, aggregator))
}

/// Reads the input, runs the pipeline, writes the aggregate.
pub fn run(args: &AggregateArgs, stdout: &mut dyn Write) -> Result<()> {
    let mut server = pipeline(&args.rule, args.f, &args.settings, &args.pre)?;
    let s = matrix_io::read(&args.input)?;
    server
        .check(s.n())
        .with_context(|| format!("{} holds {} vectors", args.input.display(), s.n()))?;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let out = server.run(&s, &mut rng)?;
    matrix_io::write(args.output.as_deref(), &out, s.dim(), true, stdout)
}
