//! Mini-batches drawn without replacement within an epoch, from one worker's shard, with the
//! worker's own seeded stream.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;

/// Yields batches of a shard's sample indices: each epoch is a fresh permutation of the shard,
/// cut into batches of `batch`; a batch never spans two epochs (the last, short part of an
/// epoch is dropped when the shard is not a multiple of `batch`, as PyTorch's
/// `drop_last=True`), so every batch has exactly `batch` samples.
///
/// ```
/// use byzadam_data::sampler::EpochSampler;
/// use rand::SeedableRng;
/// let rng = rand_chacha::ChaCha20Rng::seed_from_u64(42);
/// let mut s = EpochSampler::new((0..10).collect(), 5, rng);
/// let (a, b) = (s.next_batch().to_vec(), s.next_batch().to_vec());
/// let mut epoch: Vec<u32> = a.iter().chain(&b).copied().collect();
/// epoch.sort();
/// assert_eq!(epoch, (0..10).collect::<Vec<u32>>()); // one epoch: each sample once
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochSampler {
    shard: Vec<u32>,
    order: Vec<u32>,
    batch: usize,
    at: usize,
    epoch: u64,
    rng: ChaCha20Rng,
}

impl EpochSampler {
    /// A sampler over `shard` (sample indices) with batches of `batch` (at least 1, at most
    /// the shard's size), shuffling with `rng` (the simulator's is derived by
    /// `byzadam_sim::seeds`).
    pub fn new(shard: Vec<u32>, batch: usize, rng: ChaCha20Rng) -> Self {
        let batch = batch.clamp(1, shard.len().max(1));
        let order = shard.clone();
        let mut s = Self {
            shard,
            order,
            batch,
            at: usize::MAX,
            epoch: 0,
            rng,
        };
        s.at = s.order.len(); // start a new epoch on the first call
        s
    }

    /// Whether `self` (decoded from a checkpoint) can continue where `fresh` (built from the
    /// same config) starts: the same shard and batch size, its order a permutation of the
    /// shard, its position inside it. A checkpoint's sampler that fails this would index
    /// past the data; restoring refuses it.
    pub fn continues(&self, fresh: &EpochSampler) -> bool {
        if self.shard != fresh.shard
            || self.batch != fresh.batch
            || self.order.len() != self.shard.len()
            || self.at > self.order.len()
        {
            return false;
        }
        let (mut a, mut b) = (self.order.clone(), self.shard.clone());
        a.sort_unstable();
        b.sort_unstable();
        a == b
    }

    /// The next batch of sample indices.
    pub fn next_batch(&mut self) -> &[u32] {
        if self.at + self.batch > self.order.len() {
            self.order.copy_from_slice(&self.shard);
            self.order.shuffle(&mut self.rng);
            self.at = 0;
            self.epoch += 1;
        }
        let b = &self.order[self.at..self.at + self.batch];
        self.at += self.batch;
        b
    }

    /// Starts the first epoch now, shuffled with `first` instead of the sampler's own stream
    /// (later epochs use the sampler's own). Workers whose samplers start from the same
    /// `first` stream and whose shards have the same length draw the same permutation of
    /// positions: the thesis's code does this by accident (every worker's loader is created
    /// right after `torch.manual_seed(123)`). Does nothing once an epoch has started.
    pub fn start_first_epoch_with(&mut self, first: &mut ChaCha20Rng) {
        if self.epoch == 0 {
            self.order.copy_from_slice(&self.shard);
            self.order.shuffle(first);
            self.at = 0;
            self.epoch = 1;
        }
    }

    /// Epochs started so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn each_epoch_visits_every_sample_once_and_epochs_differ() {
        let shard: Vec<u32> = (100..160).collect();
        let mut s = EpochSampler::new(shard.clone(), 7, ChaCha20Rng::seed_from_u64(1));
        let mut epochs = Vec::new();
        for _ in 0..3 {
            let mut seen = Vec::new();
            for _ in 0..(60 / 7) {
                seen.extend_from_slice(s.next_batch());
            }
            epochs.push(seen.clone());
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 56, "8 batches of 7 distinct samples per epoch");
            assert!(seen.iter().all(|i| shard.contains(i)));
        }
        assert_ne!(epochs[0], epochs[1]);
        assert_eq!(s.epoch(), 3);
        // A shared first epoch: same positions for shards of the same length, own streams after.
        let other: Vec<u32> = (500..560).collect();
        let first = ChaCha20Rng::seed_from_u64(5);
        let mut a = EpochSampler::new(shard.clone(), 60, ChaCha20Rng::seed_from_u64(1));
        let mut b = EpochSampler::new(other.clone(), 60, ChaCha20Rng::seed_from_u64(2));
        a.start_first_epoch_with(&mut first.clone());
        b.start_first_epoch_with(&mut first.clone());
        let (ea, eb) = (a.next_batch().to_vec(), b.next_batch().to_vec());
        assert!(
            ea.iter().zip(&eb).all(|(x, y)| y - x == 400),
            "same positions"
        );
        assert_ne!(ea, shard, "shuffled");
        let (sa, sb) = (a.next_batch().to_vec(), b.next_batch().to_vec());
        assert!(
            sa.iter().zip(&sb).any(|(x, y)| y - x != 400),
            "own streams later"
        );
        // Same seed, same batches.
        let mut t = EpochSampler::new(shard, 7, ChaCha20Rng::seed_from_u64(1));
        assert_eq!(t.next_batch(), &epochs[0][..7]);
    }
}
