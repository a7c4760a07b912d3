//! Options several commands share, declared once and flattened into each command's arguments.

use clap::Args;
use std::path::PathBuf;

/// `--data-dir`: where the datasets are.
#[derive(Debug, Clone, Default, Args)]
pub struct DataDir {
    /// The data directory (default: $BYZADAM_DATA_DIR, else ./data).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDir {
    /// The directory: the flag, else `$BYZADAM_DATA_DIR`, else `./data`.
    pub fn resolve(&self) -> PathBuf {
        byzadam_data::data_dir(self.data_dir.as_deref())
    }
}

/// `--quiet`: no progress bar.
#[derive(Debug, Clone, Default, Args)]
pub struct Progress {
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl Progress {
    /// Whether to show a progress bar.
    pub fn shown(&self) -> bool {
        !self.quiet
    }
}

/// `--threads`: the size of the thread pool the command's work runs on.
#[derive(Debug, Clone, Default, Args)]
pub struct Threads {
    /// Threads (default: one per core, or $RAYON_NUM_THREADS; for `grid`, threads per run,
    /// by default the cores divided among the runs at once). Results are the same bits
    /// whatever the number.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// The most threads a command takes (`--threads`): beyond this a pool only costs memory.
pub const MAX_THREADS: usize = 1024;

impl Threads {
    /// Sizes rayon's global pool, on which the command's parallel work runs (a command runs
    /// once per process). Nothing to do when no size was asked; an error if the pool was
    /// already built with another size.
    pub fn set_global(&self) -> anyhow::Result<()> {
        match self.threads {
            None => Ok(()),
            Some(0) => anyhow::bail!("--threads must be at least 1"),
            Some(n) if n > MAX_THREADS => {
                anyhow::bail!("--threads {n}: at most {MAX_THREADS} (each thread is an OS thread)")
            }
            Some(n) => match rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
            {
                Ok(()) => Ok(()),
                Err(_) if rayon::current_num_threads() == n => Ok(()),
                Err(e) => anyhow::bail!("--threads {n}: {e}"),
            },
        }
    }
}

/// A stop flag set by the first Ctrl-C, SIGTERM or SIGHUP (after printing `stopping`); a
/// second signal exits at once with status 130. A process installs one handler: a later call
/// returns a flag no signal sets (tests call commands in-process).
pub fn stop_on_signals(stopping: &'static str) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\n{stopping} (Ctrl-C again to quit at once)");
    });
    stop
}
