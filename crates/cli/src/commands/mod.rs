//! One module per command, each owning its `#[derive(clap::Args)]` arguments and its `run`.

pub mod aggregate;
pub mod attack;
pub mod bench;
pub mod data;
pub mod grid;
pub mod report;
pub mod rules;
pub mod run;
pub mod store;
