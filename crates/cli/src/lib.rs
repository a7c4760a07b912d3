//! The library behind the `byzadam` command: everything a test can reach without spawning
//! the binary. `main.rs` only parses arguments and prints errors.

pub mod bench;
pub mod commands;
pub mod data_cmd;
pub mod grid_cmd;
pub mod matrix_io;
pub mod plot;
pub mod report_cmd;
pub mod run_cmd;
pub mod spec;
