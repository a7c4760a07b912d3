//! Every rule's, pre-aggregator's and attack's parameters, declared once beside the type
//! (issue 21): name, type, default, bound and a one-line doc. `byzadam rules` prints them,
//! `byzadam rules --json` and the Python package read them from [`crate::registry`],
//! and each type's `validate` (on its trait) enforces the bounds, so no bound is written
//! twice: the Python classes call the same `validate` through the bindings.

use serde::Serialize;

/// One parameter of a registry entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Param {
    /// The key in a config table.
    pub name: &'static str,
    /// Its type: `int` (non-negative), `float`, `bool`, `int list`, or the values it takes
    /// (`own | honest_mean`).
    pub kind: &'static str,
    /// Its default: a value, `required`, or what its absence means (`f` for `low`).
    pub default: &'static str,
    /// What values are valid (`validate` enforces it); empty when the type says it all.
    pub bound: &'static str,
    /// One line on what it does.
    pub doc: &'static str,
}

/// The parameters of a registry type, and the requirement on the number of inputs.
pub trait Described {
    /// Its parameters, in the order of its config table.
    const PARAMS: &'static [Param];
    /// What it needs of `n` (and `f`), e.g. `n > 2f`; empty when nothing.
    const REQUIREMENT: &'static str = "";
}

/// A parameter: `param(name, kind, default, bound, doc)`.
pub const fn param(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    bound: &'static str,
    doc: &'static str,
) -> Param {
    Param {
        name,
        kind,
        default,
        bound,
        doc,
    }
}

/// `f`, the number of Byzantine inputs tolerated: required, an `int`.
pub const F: Param = param("f", "int", "required", "", "Byzantine inputs to tolerate");

/// `segments`: lengths of consecutive coordinate ranges whose distances are summed (NNM and
/// the largest-distance filter, as the thesis's code sums per-tensor norms).
pub const SEGMENTS: Param = param(
    "segments",
    "int list",
    "[] (one segment)",
    "each ≥ 1, summing to the dimension",
    "lengths of the parameter tensors whose distances are summed",
);

/// `subset_budget`: the exact subset searches' limit (MDA, SMEA).
pub const SUBSET_BUDGET: Param = param(
    "subset_budget",
    "int",
    "10000000",
    "≥ 1",
    "most subsets searched before refusing",
);

/// The adaptive attacks' line search (`optimal_alie`, `optimal_empire`).
pub const LINE_SEARCH: &[Param] = &[
    param(
        "evals",
        "int",
        "20",
        "≥ 1",
        "evaluations of the server's pipeline",
    ),
    param("start", "float", "0", "finite", "first factor tried"),
    param("delta", "float", "10", "finite", "first step"),
    param("ratio", "float", "0.8", "in (0, 1)", "step shrink factor"),
];

/// A registry entry as [`crate::registry`] and `byzadam rules` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The canonical name.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// Its parameters.
    pub params: &'static [Param],
    /// What it needs of `n`.
    pub requirement: &'static str,
}

/// `value ≥ 1`, else an error naming `name`.
pub(crate) fn at_least_one(
    rule: &'static str,
    name: &'static str,
    value: u64,
) -> Result<(), crate::Error> {
    if value == 0 {
        return Err(crate::Error::InvalidParameter {
            rule,
            name,
            reason: "must be ≥ 1".into(),
        });
    }
    Ok(())
}

/// Segment lengths, each `≥ 1` (their sum is checked against the dimension when it is known).
pub(crate) fn segments(rule: &'static str, segments: &[usize]) -> Result<(), crate::Error> {
    if segments.contains(&0) {
        return Err(crate::Error::InvalidParameter {
            rule,
            name: "segments",
            reason: "every segment length must be ≥ 1".into(),
        });
    }
    Ok(())
}
