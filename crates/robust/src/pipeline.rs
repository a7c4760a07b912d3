//! [`Pipeline`]: the server's pre-aggregators followed by its aggregator.

use crate::{Aggregator, Error, PreAggregator, Submissions};

/// The server's robust pipeline: pre-aggregators in order, then one aggregator.
///
/// Holds two reusable buffers, so a warm pipeline allocates nothing per round. Cloning it
/// clones the rules' state too (an adaptive attack probes a clone, never the server's own).
///
/// ```
/// # use byzadam_robust::{aggregators::TrimmedMean, preaggregators::NearestNeighborMixing, Pipeline, Submissions};
/// # use rand::SeedableRng;
/// let mut server = Pipeline::new(
///     vec![Box::new(NearestNeighborMixing::new(1))],
///     Box::new(TrimmedMean::new(1)),
/// );
/// let s = Submissions::from_rows(&[[0.0], [1.0], [2.0], [1e6]])?;
/// let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
/// let out = server.run(&s, &mut rng)?;
/// assert!(out[0] < 10.0);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pipeline {
    pre: Vec<Box<dyn PreAggregator>>,
    aggregator: Box<dyn Aggregator>,
    buffers: [Submissions<'static>; 2],
}

impl Pipeline {
    /// Pre-aggregators (applied in order) then the aggregator.
    pub fn new(pre: Vec<Box<dyn PreAggregator>>, aggregator: Box<dyn Aggregator>) -> Self {
        Self {
            pre,
            aggregator,
            buffers: Default::default(),
        }
    }

    /// The aggregator.
    pub fn aggregator(&self) -> &dyn Aggregator {
        self.aggregator.as_ref()
    }

    /// The pre-aggregators, in order.
    pub fn preaggregators(&self) -> &[Box<dyn PreAggregator>] {
        &self.pre
    }

    /// Checks, before any work, that `n` inputs pass through every stage.
    pub fn check(&self, n: usize) -> Result<(), Error> {
        let mut m = n;
        for p in &self.pre {
            m = p.output_len(m)?;
        }
        self.aggregator.check(m)
    }

    /// Runs the pipeline on `s`, writing the aggregate into `out` (length `s.dim()`).
    pub fn run_into(
        &mut self,
        s: &Submissions,
        rng: &mut dyn rand::RngCore,
        out: &mut [f32],
    ) -> Result<(), Error> {
        s.check_out(out)?;
        if self.pre.is_empty() {
            return self.aggregator.aggregate_into(s, out);
        }
        let [a, b] = &mut self.buffers;
        let (mut src, mut dst) = (a, b);
        for (k, p) in self.pre.iter_mut().enumerate() {
            if k == 0 {
                p.apply(s, src, rng)?;
            } else {
                p.apply(src, dst, rng)?;
                std::mem::swap(&mut src, &mut dst);
            }
        }
        self.aggregator.aggregate_into(src, out)
    }

    /// Runs the pipeline on `s` into a new vector.
    pub fn run(&mut self, s: &Submissions, rng: &mut dyn rand::RngCore) -> Result<Vec<f32>, Error> {
        let mut out = vec![0.0; s.dim()];
        self.run_into(s, rng, &mut out)?;
        Ok(out)
    }

    /// Forgets the aggregator's cross-round state.
    pub fn reset(&mut self) {
        self.aggregator.reset();
    }

    /// The state the pipeline carries across rounds (the aggregator's; pre-aggregators carry
    /// none), for checkpoints.
    pub fn carried(&self) -> Option<Vec<f32>> {
        self.aggregator.carried()
    }

    /// Restores what [`Pipeline::carried`] returned.
    pub fn restore(&mut self, state: Option<Vec<f32>>) {
        self.aggregator.restore(state);
    }
}
