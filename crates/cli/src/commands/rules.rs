//! `byzadam rules`: every aggregation rule, pre-aggregator and attack, with aliases, its
//! requirement and its parameters (name, type, bound, default, doc); `--json` prints the
//! whole registry as JSON.

use anyhow::Result;
use std::io::Write;

/// What `byzadam rules` takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RulesArgs {
    /// Print the registry as JSON (every entry's name, aliases, requirement and parameters).
    #[arg(long)]
    pub json: bool,
}

/// Prints the catalogue of the three registries.
pub fn run(args: &RulesArgs, w: &mut dyn Write) -> Result<()> {
    if args.json {
        writeln!(
            w,
            "{}",
            serde_json::to_string_pretty(&byzadam_robust::registry())?
        )?;
    } else {
        write!(w, "{}", crate::spec::catalogue())?;
    }
    Ok(())
}
