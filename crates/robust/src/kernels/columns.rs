//! Parallel writes to the same column range of every row of an output matrix, without
//! `unsafe` and without allocating (for up to [`MAX_ROWS`] rows).
//!
//! Rules that produce `n` rows from `n` rows (nearest-neighbour mixing) read every input row
//! for every output row. Working one column chunk at a time keeps the inputs in cache; this
//! helper splits every output row at the same columns, recursively, with `rayon::join`.

use super::CHUNK;

/// Rows handled with stack arrays of slices; more rows use one small heap table per call.
pub(crate) const MAX_ROWS: usize = 64;

/// Calls `f(c0, rows)` for consecutive column ranges `[c0, c0 + rows[i].len())` of at most
/// [`CHUNK`] columns, in parallel, where `rows[i]` is that range of output row `i`. The ranges
/// are fixed multiples of `CHUNK`, whatever the thread count.
pub(crate) fn for_each_column_chunk<F>(out: &mut [f32], dim: usize, f: &F)
where
    F: Fn(usize, &mut [&mut [f32]]) + Sync,
{
    let n = out.len() / dim.max(1);
    if n <= MAX_ROWS {
        let mut rows: [&mut [f32]; MAX_ROWS] = std::array::from_fn(|_| Default::default());
        for (slot, row) in rows.iter_mut().zip(out.chunks_exact_mut(dim)) {
            *slot = row;
        }
        recurse(&mut rows[..n], 0, dim, f);
    } else {
        let mut rows: Vec<&mut [f32]> = out.chunks_exact_mut(dim).collect();
        recurse(&mut rows, 0, dim, f);
    }
}

fn recurse<F>(rows: &mut [&mut [f32]], c0: usize, width: usize, f: &F)
where
    F: Fn(usize, &mut [&mut [f32]]) + Sync,
{
    if width <= CHUNK {
        f(c0, rows);
        return;
    }
    let chunks = width.div_ceil(CHUNK);
    let mid = (chunks / 2) * CHUNK;
    let n = rows.len();
    if n <= MAX_ROWS {
        let mut left: [&mut [f32]; MAX_ROWS] = std::array::from_fn(|_| Default::default());
        let mut right: [&mut [f32]; MAX_ROWS] = std::array::from_fn(|_| Default::default());
        for (i, row) in rows.iter_mut().enumerate() {
            let (l, r) = std::mem::take(row).split_at_mut(mid);
            left[i] = l;
            right[i] = r;
        }
        rayon::join(
            || recurse(&mut left[..n], c0, mid, f),
            || recurse(&mut right[..n], c0 + mid, width - mid, f),
        );
    } else {
        let (mut left, mut right): (Vec<_>, Vec<_>) = rows
            .iter_mut()
            .map(|row| std::mem::take(row).split_at_mut(mid))
            .unzip();
        rayon::join(
            || recurse(&mut left, c0, mid, f),
            || recurse(&mut right, c0 + mid, width - mid, f),
        );
    }
}
