//! The `aggregate` and `attack` commands as library functions.

use crate::{matrix_io, spec};
use anyhow::{bail, Context, Result};
use byzadam_robust::{AttackContext, Pipeline, Submissions, ThreatModel};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `byzadam aggregate` needs.
#[derive(Debug, Clone)]
pub struct AggregateArgs {
    /// The input matrix, one vector per row.
    pub input: PathBuf,
    /// Rule name or alias.
    pub rule: String,
    /// Byzantine inputs tolerated.
    pub f: Option<usize>,
    /// The rule's other settings.
    pub settings: Vec<(String, Value)>,
    /// Pre-aggregator specs, applied in order.
    pub pre: Vec<String>,
    /// Where to write; JSON to stdout when `None`.
    pub output: Option<PathBuf>,
    /// Seed for randomised pre-aggregators (bucketing).
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
pub fn aggregate(args: &AggregateArgs, stdout: &mut dyn Write) -> Result<()> {
    let mut server = pipeline(&args.rule, args.f, &args.settings, &args.pre)?;
    let s = matrix_io::read(&args.input)?;
    server
        .check(s.n())
        .with_context(|| format!("{} holds {} vectors", args.input.display(), s.n()))?;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let out = server.run(&s, &mut rng)?;
    matrix_io::write(args.output.as_deref(), &out, s.dim(), true, stdout)
}

/// What `byzadam attack` needs.
#[derive(Debug, Clone)]
pub struct AttackArgs {
    /// The honest vectors, one per row.
    pub input: PathBuf,
    /// Attack name or alias.
    pub attack: String,
    /// Number of Byzantine vectors to forge.
    pub byzantine: usize,
    /// The attack's settings.
    pub settings: Vec<(String, Value)>,
    /// The Byzantine workers' genuine vectors (for attacks that start from them).
    pub own: Option<PathBuf>,
    /// The server's rule, for adaptive attacks.
    pub server_rule: Option<String>,
    /// The server rule's `f`.
    pub server_f: Option<usize>,
    /// The server's pre-aggregators.
    pub server_pre: Vec<String>,
    /// Where to write; JSON to stdout when `None`.
    pub output: Option<PathBuf>,
    /// Seed of the attack's random stream.
    pub seed: u64,
}

fn read_with_dim(path: &Path, dim: usize, what: &str) -> Result<Submissions> {
    let s = matrix_io::read(path)?;
    if s.dim() != dim {
        bail!(
            "{}: {what} have dimension {}, but the honest vectors have {dim}",
            path.display(),
            s.dim()
        );
    }
    Ok(s)
}

/// Reads the honest vectors, forges the Byzantine ones, writes them.
pub fn attack(args: &AttackArgs, stdout: &mut dyn Write) -> Result<()> {
    let cfg = spec::attack(&args.attack, &args.settings)?;
    let name = cfg.name();
    let mut attack = cfg.build();
    if args.byzantine == 0 {
        bail!("--byzantine must be at least 1");
    }
    let honest = matrix_io::read(&args.input)?;
    let n = honest.n() + args.byzantine;
    attack.check(n, args.byzantine)?;
    let own = match (&args.own, attack.threat_model()) {
        (Some(p), _) => {
            let own = read_with_dim(p, honest.dim(), "the Byzantine workers' genuine vectors")?;
            if own.n() != args.byzantine {
                bail!("{}: {} genuine vectors, but --byzantine is {}", p.display(), own.n(), args.byzantine);
            }
            Some(own)
        }
        (None, ThreatModel::OwnGenuine | ThreatModel::DataPoisoning) => bail!(
            "attack {name} starts from the Byzantine workers' own genuine vectors: pass them with --own FILE \
             ({} rows)",
            args.byzantine
        ),
        (None, _) => None,
    };
    let server = match (&args.server_rule, attack.threat_model()) {
        (Some(rule), _) => Some(pipeline(rule, args.server_f, &[], &args.server_pre)?),
        (None, ThreatModel::Adaptive) => {
            bail!("attack {name} is adaptive: name the server's rule with --server-rule (and --server-f, --server-pre)")
        }
        (None, _) => None,
    };
    if let Some(server) = &server {
        server
            .check(n)
            .context("the server pipeline cannot take honest + Byzantine vectors")?;
    }
    let ctx = AttackContext {
        n,
        byzantine: args.byzantine,
        dim: honest.dim(),
        own: own.as_ref(),
        honest: Some(&honest),
        server: server.as_ref(),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let mut out = Submissions::default();
    attack.forge(&ctx, &mut rng, &mut out)?;
    matrix_io::write(
        args.output.as_deref(),
        out.as_flat(),
        honest.dim(),
        false,
        stdout,
    )
}
