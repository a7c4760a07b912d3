//! [`Submissions`]: one round's `n` vectors of dimension `dim`, stored row-major.

use crate::Error;
use std::borrow::Cow;

/// One round's submissions: `n` rows of length `dim`, stored row-major in one buffer.
///
/// The buffer is reused across rounds ([`Submissions::reshape`] keeps its capacity), which is
/// what keeps the pipelines allocation-free in steady state. [`Submissions::borrowed`] wraps a
/// caller's buffer without copying it (the Python bindings read a NumPy array in place); the
/// lifetime `'a` is that buffer's, and `Submissions<'static>` owns its rows. Writing to
/// borrowed submissions copies them first.
///
/// ```
/// # use byzadam_robust::Submissions;
/// let s = Submissions::from_rows(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])?;
/// assert_eq!((s.n(), s.dim()), (3, 2));
/// assert_eq!(s.row(1), &[3.0, 4.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Submissions<'a> {
    n: usize,
    dim: usize,
    data: Cow<'a, [f32]>,
}

/// The rows in a flat buffer of `len` values of dimension `dim`; an error unless that is a
/// nonzero whole number of nonempty rows.
fn whole_rows(len: usize, dim: usize) -> Result<usize, Error> {
    if dim == 0 {
        return Err(Error::ZeroDimension);
    }
    if len == 0 {
        return Err(Error::Empty);
    }
    if !len.is_multiple_of(dim) {
        return Err(Error::NotWholeRows { len, dim });
    }
    Ok(len / dim)
}

impl Submissions<'static> {
    /// Builds from rows of equal length. Errors on no rows, empty rows or ragged rows.
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Result<Self, Error> {
        let first = rows.first().ok_or(Error::Empty)?.as_ref().len();
        if first == 0 {
            return Err(Error::ZeroDimension);
        }
        let mut data = Vec::with_capacity(first * rows.len());
        for (row, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != first {
                return Err(Error::RaggedRow {
                    row,
                    expected: first,
                    found: r.len(),
                });
            }
            data.extend_from_slice(r);
        }
        Ok(Self {
            n: rows.len(),
            dim: first,
            data: Cow::Owned(data),
        })
    }

    /// Wraps a row-major buffer of `data.len() / dim` rows.
    pub fn from_flat(data: Vec<f32>, dim: usize) -> Result<Self, Error> {
        Ok(Self {
            n: whole_rows(data.len(), dim)?,
            dim,
            data: Cow::Owned(data),
        })
    }

    /// `n` rows of zeros.
    pub fn zeros(n: usize, dim: usize) -> Self {
        Self {
            n,
            dim,
            data: Cow::Owned(vec![0.0; n * dim]),
        }
    }
}

impl<'a> Submissions<'a> {
    /// Reads a caller's row-major buffer of `data.len() / dim` rows in place, without a copy.
    ///
    /// ```
    /// # use byzadam_robust::Submissions;
    /// let buffer = [1.0, 2.0, 3.0, 4.0];
    /// let s = Submissions::borrowed(&buffer, 2)?;
    /// assert_eq!(s.row(1).as_ptr(), buffer[2..].as_ptr());
    /// # Ok::<(), byzadam_robust::Error>(())
    /// ```
    pub fn borrowed(data: &'a [f32], dim: usize) -> Result<Self, Error> {
        Ok(Self {
            n: whole_rows(data.len(), dim)?,
            dim,
            data: Cow::Borrowed(data),
        })
    }

    /// An owned copy (of borrowed rows; owned rows are moved).
    pub fn into_owned(self) -> Submissions<'static> {
        Submissions {
            n: self.n,
            dim: self.dim,
            data: Cow::Owned(self.data.into_owned()),
        }
    }

    /// Number of rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Length of each row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row `i`. Panics if `i >= n` (a programming error, never user input).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Row `i`, mutably.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        let dim = self.dim;
        &mut self.data.to_mut()[i * dim..(i + 1) * dim]
    }

    /// The rows in order.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        self.data.chunks_exact(self.dim.max(1))
    }

    /// The rows in order, mutably.
    pub fn rows_mut(&mut self) -> std::slice::ChunksExactMut<'_, f32> {
        let dim = self.dim.max(1);
        self.data.to_mut().chunks_exact_mut(dim)
    }

    /// The whole row-major buffer.
    pub fn as_flat(&self) -> &[f32] {
        &self.data
    }

    /// The whole row-major buffer, mutably.
    pub fn as_flat_mut(&mut self) -> &mut [f32] {
        self.data.to_mut()
    }

    /// Gives the buffer back.
    pub fn into_flat(self) -> Vec<f32> {
        self.data.into_owned()
    }

    /// Resizes to `n × dim`, keeping the allocation where it is large enough. Contents are
    /// unspecified afterwards (callers overwrite every entry).
    pub fn reshape(&mut self, n: usize, dim: usize) {
        self.n = n;
        self.dim = dim;
        self.data.to_mut().resize(n * dim, 0.0);
    }

    /// Makes `self` a copy of `other`, reusing `self`'s allocation.
    pub fn copy_from(&mut self, other: &Submissions) {
        self.reshape(other.n, other.dim);
        self.data.to_mut().copy_from_slice(&other.data);
    }

    /// Appends the rows of `other` (same dimension).
    pub fn extend(&mut self, other: &Submissions) -> Result<(), Error> {
        if self.n > 0 && other.dim != self.dim {
            return Err(Error::RaggedRow {
                row: self.n,
                expected: self.dim,
                found: other.dim,
            });
        }
        self.dim = other.dim;
        self.data.to_mut().extend_from_slice(&other.data);
        self.n += other.n;
        Ok(())
    }

    /// Checks that the submissions are usable: at least one row, nonzero dimension.
    pub(crate) fn check_nonempty(&self) -> Result<(), Error> {
        if self.n == 0 {
            return Err(Error::Empty);
        }
        if self.dim == 0 {
            return Err(Error::ZeroDimension);
        }
        Ok(())
    }

    /// Checks `out` has the submissions' dimension.
    pub(crate) fn check_out(&self, out: &[f32]) -> Result<(), Error> {
        self.check_nonempty()?;
        if out.len() != self.dim {
            return Err(Error::OutputLength {
                expected: self.dim,
                found: out.len(),
            });
        }
        Ok(())
    }
}
