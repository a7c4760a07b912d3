//! Reading NumPy matrices: in place when C-contiguous, else one copy.

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::PyResult;
use std::borrow::Cow;

/// The rows of an `n × d` float32 array, borrowed when the array is C-contiguous (the case
/// the Python layer arranges), copied otherwise.
pub(crate) fn matrix<'a>(a: &'a PyReadonlyArray2<'_, f32>) -> PyResult<(Cow<'a, [f32]>, usize)> {
    let shape = a.shape();
    let (n, d) = (shape[0], shape[1]);
    if n == 0 {
        return Err(PyValueError::new_err("no vectors: the input has 0 rows"));
    }
    if d == 0 {
        return Err(PyValueError::new_err("the vectors have dimension 0"));
    }
    let rows = match a.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(a.as_array().iter().copied().collect()),
    };
    Ok((rows, d))
}

/// A 1-D float32 array's values, borrowed when contiguous.
pub(crate) fn vector<'a>(a: &'a PyReadonlyArray1<'_, f32>) -> Cow<'a, [f32]> {
    match a.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(a.as_array().iter().copied().collect()),
    }
}

/// A 1-D uint8 array's values, borrowed when contiguous.
pub(crate) fn bytes<'a>(a: &'a PyReadonlyArray1<'_, u8>) -> Cow<'a, [u8]> {
    match a.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(a.as_array().iter().copied().collect()),
    }
}

/// `k` zeroed buffers of `dim` float32 values, a worker's messages; allocated fallibly, so a
/// `dim` too large for the machine is a Python error, not an abort.
pub(crate) fn message_buffers(k: usize, dim: usize) -> PyResult<Vec<Vec<f32>>> {
    (0..k)
        .map(|_| byzadam_robust::limits::zeros("a worker message", dim).map_err(crate::error))
        .collect()
}
