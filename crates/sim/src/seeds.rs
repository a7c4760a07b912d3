//! Every random stream of a run, derived from `(seed, purpose, index…)` by one function.
//!
//! A stream's ChaCha20 key is the SHA-256 of an unambiguous encoding of the tuple: a domain tag,
//! the purpose's name, the seed, then the purpose's indices, each as 8 little-endian bytes.
//! Two different tuples give different keys (short of a SHA-256 collision), so no two streams
//! of a run, and no two runs of different seeds, ever share a stream. (Issue 13: the previous
//! mixers `seed ^ (c + w)` and `seed * 1_000_003 + w` put seed 1's worker 0 on seed 0's
//! worker 1, and seed 0's worker 0 on the stream of the initial weights.)
//!
//! ```
//! use byzadam_sim::seeds::{rng, Stream};
//! use rand::Rng;
//! let a: u64 = rng(1, Stream::Sampler { worker: 0 }).gen();
//! let b: u64 = rng(0, Stream::Sampler { worker: 1 }).gen();
//! assert_ne!(a, b);
//! ```
//!
//! Changing anything here changes results: bump [`crate::RESULTS_VERSION`] with it.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

/// What a stream is for, with the indices that tell its instances apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The model's initial parameters (from the run's `seed`).
    Init,
    /// Worker `worker`'s epoch sampler: its batches (from `seed`).
    Sampler {
        /// Worker index, from 0.
        worker: usize,
    },
    /// Worker `worker`'s own stream inside its training passes: dropout masks (from `seed`).
    Worker {
        /// Worker index, from 0.
        worker: usize,
    },
    /// The attack's randomness in round `round` for message `message` (from `seed`).
    Attack {
        /// Round, from 1.
        round: u64,
        /// Message index (MRA sends two).
        message: usize,
    },
    /// The server pipeline's randomness (bucketing, …) in round `round` for message `message`
    /// (from `seed`).
    Pipeline {
        /// Round, from 1.
        round: u64,
        /// Message index (MRA sends two).
        message: usize,
    },
    /// The split of the training set across workers (from `data_seed`).
    Partition,
    /// Every worker's first epoch, when `shared_first_shuffle` is on (from `seed`).
    SharedFirstEpoch,
    /// Dropout in an evaluation in training mode after `round` rounds (from `seed`).
    Evaluation {
        /// Rounds completed when evaluating.
        round: u64,
    },
}

impl Stream {
    /// The purpose's name, part of the derivation.
    pub fn purpose(&self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Sampler { .. } => "sampler",
            Self::Worker { .. } => "worker",
            Self::Attack { .. } => "attack",
            Self::Pipeline { .. } => "pipeline",
            Self::Partition => "partition",
            Self::SharedFirstEpoch => "shared first epoch",
            Self::Evaluation { .. } => "evaluation",
        }
    }

    /// The purpose's indices (at most two), and how many there are.
    fn indices(&self) -> ([u64; 2], usize) {
        match *self {
            Self::Init | Self::Partition | Self::SharedFirstEpoch => ([0, 0], 0),
            Self::Sampler { worker } | Self::Worker { worker } => ([worker as u64, 0], 1),
            Self::Evaluation { round } => ([round, 0], 1),
            Self::Attack { round, message } | Self::Pipeline { round, message } => {
                ([round, message as u64], 2)
            }
        }
    }
}

/// Domain tag of the derivation; a new derivation gets a new tag.
const DOMAIN: &[u8] = b"byzadam seed stream v1\0";

/// The 32-byte ChaCha20 key of `stream` under `seed`.
pub fn key(seed: u64, stream: Stream) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(stream.purpose().as_bytes());
    h.update([0u8]);
    h.update(seed.to_le_bytes());
    let (indices, count) = stream.indices();
    for i in &indices[..count] {
        h.update(i.to_le_bytes());
    }
    h.finalize().into()
}

/// The generator of `stream` under `seed` (the run's `seed`, or `data_seed` for
/// [`Stream::Partition`]).
pub fn rng(seed: u64, stream: Stream) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(key(seed, stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use std::collections::HashMap;

    /// Every stream a run of up to 32 workers and 32 rounds draws from, for one seed.
    fn streams() -> Vec<Stream> {
        let mut all = vec![
            Stream::Init,
            Stream::Partition,
            Stream::SharedFirstEpoch,
            Stream::Evaluation { round: 1 },
            Stream::Evaluation { round: 2 },
        ];
        for i in 0..32 {
            all.push(Stream::Sampler { worker: i });
            all.push(Stream::Worker { worker: i });
            for message in 0..2 {
                all.push(Stream::Attack {
                    round: i as u64 + 1,
                    message,
                });
                all.push(Stream::Pipeline {
                    round: i as u64 + 1,
                    message,
                });
            }
        }
        all
    }

    #[test]
    fn no_two_streams_of_seeds_0_to_15_begin_alike() {
        let mut first: HashMap<[u64; 2], (u64, Stream)> = HashMap::new();
        for seed in 0..16 {
            for s in streams() {
                let mut r = rng(seed, s);
                let v = [r.gen(), r.gen()];
                if let Some(other) = first.insert(v, (seed, s)) {
                    panic!("seed {seed} {s:?} begins as seed {} {:?}", other.0, other.1);
                }
            }
        }
        assert_eq!(first.len(), 16 * (5 + 32 * 6));
    }

    #[test]
    fn the_same_tuple_gives_the_same_stream() {
        let s = Stream::Attack {
            round: 7,
            message: 1,
        };
        let (a, b): (u64, u64) = (rng(3, s).gen(), rng(3, s).gen());
        assert_eq!(a, b);
        // The key is SHA-256 of the documented encoding (checked independently here).
        let mut bytes = DOMAIN.to_vec();
        bytes.extend_from_slice(b"attack\0");
        bytes.extend_from_slice(&3u64.to_le_bytes());
        bytes.extend_from_slice(&7u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        assert_eq!(key(3, s), <[u8; 32]>::from(Sha256::digest(&bytes)));
    }
}
