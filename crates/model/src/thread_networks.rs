//! One network per thread for the gradient passes of many workers (`byzadam_sim`'s
//! `Simulation::step`, `byzadam bench-engine`): each worker keeps its own parameters' gradient,
//! batch-norm statistics and dropout stream, but its pass runs on the network of the thread
//! that computes it, so one set of activations and buffers per thread stays in cache where
//! one per worker would evict each other (and, for Winograd's kept transforms, one set per
//! thread is held in memory, not one per worker). A pass's bits do not depend on the network
//! it runs on: the buffers hold nothing a pass reads before writing it.

use std::sync::{Mutex, MutexGuard};

use crate::Network;

/// Copies of one network, one per thread of rayon's current pool (see the module's
/// documentation).
#[derive(Debug)]
pub struct ThreadNetworks {
    nets: Vec<Mutex<Network>>,
}

impl ThreadNetworks {
    /// `count` copies of `net` (at least one): rayon's thread count, or fewer when fewer
    /// passes can run at once.
    pub fn new(net: &Network, count: usize) -> Self {
        Self {
            nets: (0..count.max(1)).map(|_| Mutex::new(net.clone())).collect(),
        }
    }

    /// How many networks there are.
    pub fn len(&self) -> usize {
        self.nets.len()
    }

    /// Always false: there is at least one network.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn mine(&self) -> &Mutex<Network> {
        &self.nets[rayon::current_thread_index().unwrap_or(0) % self.nets.len()]
    }

    /// The calling thread's network, if no other pass holds it (a nested pass on the same
    /// thread, or more threads than networks): the caller then runs its pass elsewhere.
    pub fn try_this_thread(&self) -> Option<MutexGuard<'_, Network>> {
        self.mine().try_lock().ok()
    }

    /// The calling thread's network, waiting while another pass holds it (a pass that
    /// panicked leaves the network usable: its buffers are rewritten by the next pass).
    pub fn this_thread(&self) -> MutexGuard<'_, Network> {
        self.mine().lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelKind;

    #[test]
    fn a_held_network_is_not_handed_out_twice() {
        let nets = ThreadNetworks::new(&ModelKind::LogisticRegression.build(), 0);
        assert_eq!(nets.len(), 1, "at least one network");
        let held = nets.this_thread();
        assert!(nets.try_this_thread().is_none(), "held by this pass");
        drop(held);
        assert!(nets.try_this_thread().is_some(), "free again");
    }
}
