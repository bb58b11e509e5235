//! Reductions and broadcasts along the batch axis.

/// `out[j] = Σ_i x[i, j]` for a row-major `x` with `out.len()` columns.
///
/// Rows are added in order, so the result does not depend on how the caller
/// later splits work: the sum for a column is always the same sequence of
/// additions.
pub fn col_sums(x: &[f32], out: &mut [f32]) {
    let cols = out.len();
    debug_assert!(cols > 0 && x.len() % cols == 0);
    out.fill(0.0);
    for row in x.chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// Copies `row` into every row of the row-major `out`.
pub fn broadcast_rows(row: &[f32], out: &mut [f32]) {
    debug_assert!(!row.is_empty() && out.len() % row.len() == 0);
    for dst in out.chunks_exact_mut(row.len()) {
        dst.copy_from_slice(row);
    }
}
