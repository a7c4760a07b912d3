//! Which build of byzadam's kernels runs (the engine's loops and SGEMM micro-kernels in
//! `byzadam-model`, the robust kernels in `byzadam-robust`): one of three [`Level`]s, chosen
//! once per process.
//!
//! - [`Level::Avx512`]: AVX-512 F + BW + VL (with AVX2 and FMA), 32 registers of 16 floats;
//! - [`Level::Avx2`]: AVX2 + FMA, 16 registers of 8 floats;
//! - [`Level::Portable`]: what every architecture runs.
//!
//! The default is the highest level the CPU supports ([`detected`]). The environment variable
//! `BYZADAM_CPU` (`avx512`, `avx2` or `portable`) lowers it, so that one machine can measure
//! and test every level; asking for a level the CPU lacks, or an unknown name, is an error
//! ([`requested`]): the command-line tool refuses to start, and the libraries, which cannot
//! refuse mid-computation, warn once on standard error and use the highest supported level
//! below the one asked for. [`scoped`] runs a closure at a given level on the calling thread
//! (twin tests and in-process benchmarks).
//!
//! Every level computes the same operations in the same order (Rust never fuses `a * b + c`
//! into an FMA on its own, and the micro-kernels sum each value's products in the same order
//! whatever their width), so results are the same bits at every level; the crates' twin tests
//! check it.
//!
//! ```
//! use byzadam_cpu::{parse, Level};
//! assert_eq!(parse("avx2"), Ok(Level::Avx2));
//! assert!(byzadam_cpu::level() <= byzadam_cpu::detected());
//! ```

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

/// The environment variable that lowers the level: `avx512`, `avx2` or `portable`.
pub const ENV: &str = "BYZADAM_CPU";

/// A build of the kernels, ordered from the most portable to the widest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Plain Rust, every architecture (the default of an unset field).
    #[default]
    Portable,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512 F, BW and VL (and AVX2, FMA).
    Avx512,
}

impl Level {
    /// Every level, most portable first.
    pub const ALL: [Level; 3] = [Level::Portable, Level::Avx2, Level::Avx512];

    /// The name `BYZADAM_CPU` takes for it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// What it uses, for reports: e.g. `AVX-512 (F, BW, VL) + FMA`.
    pub fn describe(self) -> &'static str {
        match self {
            Level::Portable => "portable (no x86-64 vector builds)",
            Level::Avx2 => "AVX2 + FMA",
            Level::Avx512 => "AVX-512 (F, BW, VL) + AVX2 + FMA",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why `BYZADAM_CPU` cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuError {
    /// Not one of the three names.
    #[error("{ENV}={0:?} is not a CPU level: use avx512, avx2 or portable")]
    Unknown(String),
    /// The CPU (or this build) lacks the level.
    #[error("{ENV}={asked}: this CPU (or build) supports at most {best} ({})", best.describe())]
    Unsupported {
        /// The level asked for.
        asked: Level,
        /// The highest level available.
        best: Level,
    },
}

/// Parses a level's name (`avx512`, `avx2`, `portable`; case and surrounding blanks ignored).
pub fn parse(name: &str) -> Result<Level, CpuError> {
    let lower = name.trim().to_ascii_lowercase();
    Level::ALL
        .into_iter()
        .find(|l| l.name() == lower)
        .ok_or_else(|| CpuError::Unknown(name.to_string()))
}

/// The highest level this CPU supports (always [`Level::Portable`] off x86-64).
pub fn detected() -> Level {
    static DETECTED: OnceLock<Level> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma");
            if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
                return Level::Avx512;
            }
            if avx2 {
                return Level::Avx2;
            }
        }
        Level::Portable
    })
}

/// What `BYZADAM_CPU` asks for: `Ok(None)` when it is unset or empty, an error when it names
/// no level or a level above [`detected`].
pub fn requested() -> Result<Option<Level>, CpuError> {
    match std::env::var(ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => {
            Err(CpuError::Unknown(v.to_string_lossy().into_owned()))
        }
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => check(parse(&v)?).map(Some),
    }
}

/// `level` if this CPU supports it, else [`CpuError::Unsupported`].
pub fn check(level: Level) -> Result<Level, CpuError> {
    let best = detected();
    if level <= best {
        Ok(level)
    } else {
        Err(CpuError::Unsupported { asked: level, best })
    }
}

/// The process's level: [`detected`], lowered by `BYZADAM_CPU` (read once; on an error, a
/// warning on standard error and the highest supported level at or below the one asked for).
pub fn process_level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| match requested() {
        Ok(level) => level.unwrap_or_else(detected),
        Err(e) => {
            let fallback = match &e {
                CpuError::Unsupported { best, .. } => *best,
                CpuError::Unknown(_) => detected(),
            };
            eprintln!("byzadam: warning: {e}; using {fallback}");
            fallback
        }
    })
}

thread_local! {
    static SCOPED: Cell<Option<Level>> = const { Cell::new(None) };
}

/// The level the kernels run at on this thread: the one [`scoped`] set, else
/// [`process_level`].
#[inline]
pub fn level() -> Level {
    SCOPED.with(Cell::get).unwrap_or_else(process_level)
}

/// Runs `f` with [`level`] = `level` on this thread (work `f` hands to other threads runs at
/// theirs); an error, running nothing, when the CPU lacks the level.
pub fn scoped<R>(level: Level, f: impl FnOnce() -> R) -> Result<R, CpuError> {
    check(level)?;
    struct Restore(Option<Level>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPED.with(|s| s.replace(Some(level))));
    Ok(f())
}

/// The levels this CPU supports, most portable first.
pub fn supported() -> Vec<Level> {
    Level::ALL
        .into_iter()
        .filter(|&l| l <= detected())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_both_ways_and_unknown_ones_are_refused() {
        for l in Level::ALL {
            assert_eq!(parse(l.name()), Ok(l));
            assert_eq!(parse(&format!(" {} ", l.name().to_uppercase())), Ok(l));
        }
        let e = parse("avx1024").unwrap_err();
        assert_eq!(e, CpuError::Unknown("avx1024".into()));
        assert!(e.to_string().contains("avx512, avx2 or portable"), "{e}");
    }

    #[test]
    fn levels_are_ordered_and_portable_is_always_supported() {
        assert!(Level::Portable < Level::Avx2 && Level::Avx2 < Level::Avx512);
        assert_eq!(check(Level::Portable), Ok(Level::Portable));
        assert_eq!(supported()[0], Level::Portable);
        assert_eq!(*supported().last().unwrap(), detected());
        if detected() < Level::Avx512 {
            let e = check(Level::Avx512).unwrap_err();
            assert!(matches!(e, CpuError::Unsupported { best, .. } if best == detected()));
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(detected(), Level::Portable);
    }

    #[test]
    fn scoped_sets_the_level_on_this_thread_only_and_restores_it() {
        let outer = level();
        let inner = scoped(Level::Portable, || {
            let other = std::thread::spawn(level).join().unwrap();
            let nested = scoped(detected(), level).unwrap();
            (level(), other, nested, level())
        })
        .unwrap();
        assert_eq!(
            inner,
            (
                Level::Portable,
                process_level(),
                detected(),
                Level::Portable
            )
        );
        assert_eq!(level(), outer);
        if detected() < Level::Avx512 {
            assert!(scoped(Level::Avx512, || ()).is_err());
        }
    }

    #[test]
    fn the_process_level_is_at_most_what_the_cpu_supports() {
        assert!(process_level() <= detected());
    }
}
