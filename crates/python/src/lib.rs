//! # byzadam-python
//!
//! The extension module `byzadam._core`: byzadam's robust core, optimizers, data side and
//! simulator for Python, through PyO3 and rust-numpy. The classes users see live in the pure
//! Python package `python/byzadam/`, which validates arguments, converts NumPy, lists and torch
//! tensors to the float32 matrices this module takes, and converts results back.
//!
//! Every entry point here takes configs as JSON or TOML text (the same serde types as the
//! Rust crates and the CLI, so every name, alias and default is theirs), NumPy arrays of the
//! exact dtype, and releases the GIL while a kernel runs. Errors are Python exceptions with
//! the Rust message: [`ByzadamError`] (a `ValueError`) for what the caller can fix, `TypeError`
//! for a wrong dtype or shape, `KeyboardInterrupt` for Ctrl-C in a long call. Nothing here
//! panics on input from Python.

mod arrays;
mod data;
mod optim;
mod robust;
mod round;
mod sim;

use pyo3::prelude::*;

pyo3::create_exception!(
    _core,
    ByzadamError,
    pyo3::exceptions::PyValueError,
    "An input or a parameter byzadam cannot use; the message says which and why."
);

pyo3::create_exception!(
    _core,
    TooFewReplies,
    ByzadamError,
    "A round whose replies are too few for the rule's requirement (a networked round past its \
     deadline): nothing changed; `Server.skip()` moves on without an update."
);

pyo3::create_exception!(
    _core,
    AttackFailed,
    ByzadamError,
    "The attack could not forge the Byzantine workers' messages from what it sees (Little with \
     fewer than two Byzantine workers present, say): nothing changed."
);

/// A [`ByzadamError`] from anything displayable.
pub(crate) fn error(e: impl std::fmt::Display) -> PyErr {
    ByzadamError::new_err(e.to_string())
}

/// The CPU level byzadam's kernels run at in this process (`"avx512"`, `"avx2"` or
/// `"portable"`): the CPU's best, lowered by the environment variable `BYZADAM_CPU`. Raises
/// `ByzadamError` when `BYZADAM_CPU` names no level or one this CPU lacks (the kernels then run
/// at the best level below it, with a warning on standard error).
#[pyfunction]
fn cpu_level() -> PyResult<&'static str> {
    byzadam_cpu::requested().map_err(error)?;
    Ok(byzadam_cpu::process_level().name())
}

/// The module `byzadam._core`.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ByzadamError", m.py().get_type::<ByzadamError>())?;
    m.add("TooFewReplies", m.py().get_type::<TooFewReplies>())?;
    m.add("AttackFailed", m.py().get_type::<AttackFailed>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RESULTS_VERSION", byzadam_sim::RESULTS_VERSION)?;
    m.add_function(wrap_pyfunction!(cpu_level, m)?)?;
    robust::register(m)?;
    optim::register(m)?;
    data::register(m)?;
    sim::register(m)?;
    round::register(m)?;
    Ok(())
}
