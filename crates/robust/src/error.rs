//! The one error type of this crate.

/// Everything that can go wrong when building or applying a rule, a pre-aggregator or an attack.
///
/// Every variant is something a caller can act on: fix the input, change a parameter, or raise
/// a budget. Nothing in this crate panics on user input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No vectors were given.
    #[error("no submissions: at least one vector is needed")]
    Empty,
    /// Vectors of length zero.
    #[error("submissions have dimension 0")]
    ZeroDimension,
    /// A row's length differs from the first row's.
    #[error("row {row} has length {found}, expected {expected} (the length of row 0)")]
    RaggedRow {
        /// Index of the offending row (0-based).
        row: usize,
        /// Length of row 0.
        expected: usize,
        /// Length of this row.
        found: usize,
    },
    /// A flat buffer whose length is not a multiple of the dimension.
    #[error("buffer of length {len} is not a whole number of rows of dimension {dim}")]
    NotWholeRows {
        /// The buffer's length.
        len: usize,
        /// The dimension asked for.
        dim: usize,
    },
    /// The caller's output buffer has the wrong length.
    #[error("output buffer has length {found}, expected {expected}")]
    OutputLength {
        /// The submissions' dimension.
        expected: usize,
        /// The buffer's length.
        found: usize,
    },
    /// The rule needs more inputs relative to `f` than it was given.
    #[error("{rule} needs {requirement}, but got n = {n}, f = {f}")]
    TooFewInputs {
        /// The rule's name.
        rule: &'static str,
        /// The requirement, as a formula (`n > 2f`).
        requirement: &'static str,
        /// Number of inputs.
        n: usize,
        /// Number of Byzantine inputs tolerated.
        f: usize,
    },
    /// A parameter outside its valid range.
    #[error("{rule}: invalid {name}: {reason}")]
    InvalidParameter {
        /// The rule, pre-aggregator or attack.
        rule: &'static str,
        /// The parameter's name.
        name: &'static str,
        /// What is wrong and what would be valid.
        reason: String,
    },
    /// An exact combinatorial search would exceed its configured budget.
    #[error(
        "{rule}: exact search needs {subsets} subsets, over the budget of {budget} \
         (raise `subset_budget` or choose another rule)"
    )]
    SubsetBudgetExceeded {
        /// The rule's name.
        rule: &'static str,
        /// C(n, f): how many subsets the search would visit in the worst case.
        subsets: u128,
        /// The configured budget.
        budget: u128,
    },
    /// An attack needs information its threat model or the caller did not provide.
    #[error("{attack} needs {what}")]
    MissingView {
        /// The attack's name.
        attack: &'static str,
        /// What it needs (the Byzantine workers' genuine vectors, the honest vectors, ...).
        what: &'static str,
    },
}
