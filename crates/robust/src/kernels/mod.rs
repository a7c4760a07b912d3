//! The numeric kernels every rule is built from: total order on `f32`, lane-wise sorting
//! networks, blocked pairwise distances, and row sums. All parallel over fixed coordinate
//! chunks, so results never depend on the number of threads.

pub(crate) mod columns;
pub(crate) mod coordinatewise;
pub(crate) mod distances;
pub(crate) mod linalg;
pub(crate) mod mix;
pub(crate) mod order;
pub(crate) mod rowsum;
pub(crate) mod scratch;
pub(crate) mod simd;
pub(crate) mod sortnet;

/// Coordinates handled by one parallel task. Fixed (not derived from the thread count), so the
/// floating-point evaluation order, and hence every bit of every result, is the same with 1 or
/// 64 threads.
pub(crate) const CHUNK: usize = 8192;
