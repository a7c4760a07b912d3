//! The sizes byzadam accepts from input, and allocation that fails with an error instead of
//! aborting the process.
//!
//! A number read from a file, a config or a Python call that sizes an allocation is checked
//! here first, in 128-bit arithmetic (nothing wraps), against a limit that names what it
//! bounds; then the buffer is reserved with [`Vec::try_reserve_exact`], so an allocation the
//! machine refuses is an [`SizeError`] naming what was asked for, never "memory allocation
//! failed" and an abort (which would take a Python interpreter down with it).
//!
//! The limits are far above any experiment in the thesis (15 workers, 1.3 million parameters)
//! and below what would exhaust a large machine by accident. docs/config.md lists them.

/// Most vectors in one call or one round: workers, Byzantine vectors to forge, rows of a
/// matrix file.
pub const MAX_VECTORS: usize = 100_000;

/// Longest vector (a model's parameter count, a matrix's columns): 2^30 float32 values, 4 GiB.
pub const MAX_DIMENSION: usize = 1 << 30;

/// Most float32 values in one buffer of `n × d` (vectors × dimension): 2^32, 16 GiB.
pub const MAX_VALUES: usize = 1 << 32;

/// A size refused before allocating, or an allocation the machine refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// A size past its limit.
    #[error("{what}: {value} is over the limit of {limit}")]
    OverLimit {
        /// What the number sizes (`workers`, `dimension`, `rows × columns`).
        what: String,
        /// The number asked for (as computed in 128 bits: never wrapped).
        value: u128,
        /// The limit.
        limit: u128,
    },
    /// The allocator refused the buffer.
    #[error("{what}: cannot allocate {bytes} bytes ({values} float32 values): not enough memory")]
    OutOfMemory {
        /// What the buffer holds.
        what: String,
        /// Its length in values.
        values: usize,
        /// Its size in bytes.
        bytes: u128,
    },
}

/// `value ≤ limit`, or an error naming `what`.
pub fn at_most(what: &str, value: u128, limit: usize) -> Result<usize, SizeError> {
    if value > limit as u128 {
        return Err(SizeError::OverLimit {
            what: what.into(),
            value,
            limit: limit as u128,
        });
    }
    Ok(value as usize)
}

/// `rows × dim` float32 values, checked against [`MAX_VECTORS`], [`MAX_DIMENSION`] and
/// [`MAX_VALUES`] without overflow; the product on success.
pub fn matrix(what: &str, rows: u128, dim: u128) -> Result<usize, SizeError> {
    at_most(&format!("{what}: rows"), rows, MAX_VECTORS)?;
    at_most(&format!("{what}: dimension"), dim, MAX_DIMENSION)?;
    at_most(&format!("{what}: rows × dimension"), rows * dim, MAX_VALUES)
}

/// A zeroed vector of `len` float32 values, or an error if `len` is past [`MAX_VALUES`] or the
/// allocator refuses it.
pub fn zeros(what: &str, len: usize) -> Result<Vec<f32>, SizeError> {
    at_most(what, len as u128, MAX_VALUES)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| SizeError::OutOfMemory {
            what: what.into(),
            values: len,
            bytes: len as u128 * 4,
        })?;
    v.resize(len, 0.0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_never_wrap() {
        // 2^63 × 2 wraps to 0 in usize; in 128 bits it is refused.
        let e = matrix("m", 1 << 63, 2).unwrap_err();
        assert!(e.to_string().contains("rows"), "{e}");
        let e = matrix("m", 4, 1 << 62).unwrap_err();
        assert!(e.to_string().contains("dimension"), "{e}");
        // Both within their own limits, the product over MAX_VALUES.
        let e = matrix("m", MAX_VECTORS as u128, MAX_DIMENSION as u128).unwrap_err();
        assert!(e.to_string().contains("rows × dimension"), "{e}");
        assert_eq!(matrix("m", 3, 4).unwrap(), 12);
    }

    #[test]
    fn refused_allocations_are_errors() {
        assert!(matches!(
            zeros("x", MAX_VALUES + 1),
            Err(SizeError::OverLimit { .. })
        ));
        assert_eq!(zeros("x", 3).unwrap(), vec![0.0; 3]);
    }
}
