//! `byzadam rules`: every aggregation rule, pre-aggregator and attack, with aliases.

use anyhow::Result;
use std::io::Write;

/// Prints the catalogue of the three registries.
pub fn run(w: &mut dyn Write) -> Result<()> {
    write!(w, "{}", crate::spec::catalogue())?;
    Ok(())
}
