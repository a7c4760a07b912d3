//! `byzadam attack`: the vectors an attack forges from honest ones.

use super::aggregate::pipeline;
use crate::{matrix_io, spec};
use anyhow::{bail, Context, Result};
use byzadam_robust::{AttackContext, Submissions, ThreatModel};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `byzadam attack` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct AttackArgs {
    /// The honest vectors, one per row (.npy, .csv or .json).
    pub input: PathBuf,
    /// The attack, by name or alias (`byzadam rules` lists them).
    #[arg(long)]
    pub attack: String,
    /// Number of Byzantine vectors to forge.
    #[arg(long)]
    pub byzantine: usize,
    /// A setting of the attack, KEY=VALUE with a TOML value (repeatable), e.g. --set z=1.5
    /// or --set base=honest_mean.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = spec::setting)]
    pub settings: Vec<(String, Value)>,
    /// The Byzantine workers' genuine vectors, one per row.
    #[arg(long)]
    pub own: Option<PathBuf>,
    /// The server's aggregation rule (adaptive attacks).
    #[arg(long)]
    pub server_rule: Option<String>,
    /// The server rule's f.
    #[arg(long)]
    pub server_f: Option<usize>,
    /// A server pre-aggregator NAME[:KEY=VALUE,...] (repeatable).
    #[arg(long = "server-pre", value_name = "SPEC")]
    pub server_pre: Vec<String>,
    /// Output file (.npy, .csv or .json); JSON on stdout when absent.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Seed of the attack's random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn read_with_dim(path: &Path, dim: usize, what: &str) -> Result<Submissions<'static>> {
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
pub fn run(args: &AttackArgs, stdout: &mut dyn Write) -> Result<()> {
    let cfg = spec::attack(&args.attack, &args.settings)?;
    let name = cfg.name();
    let mut attack = cfg.build();
    if args.byzantine == 0 {
        bail!("--byzantine must be at least 1");
    }
    let honest = matrix_io::read(&args.input)?;
    // Checked before the forged `byzantine × d` matrix is allocated.
    byzadam_robust::limits::matrix("--byzantine", args.byzantine as u128, honest.dim() as u128)?;
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
