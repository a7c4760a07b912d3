//! The library behind the `byzadam` command: everything a test can reach without spawning
//! the binary. `main.rs` only parses arguments ([`app::Cli`]) and prints errors.

pub mod app;
pub mod commands;
pub mod matrix_io;
pub mod options;
pub mod plot;
pub mod spec;
