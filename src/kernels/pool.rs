//! 2-D max pooling over (H, W) planes, forward and backward.
//!
//! The forward pass takes the maximum of each window and remembers where it
//! was (its index in the plane, `h·W + w`); the backward pass sends each
//! output's gradient to that position, summing where windows overlap.
//! Padding never wins: a window's maximum is over its input pixels only, as
//! PyTorch's `max_pool2d` (which pads with −∞). Among equal values the first
//! in row-major order wins; a NaN always wins (the output is NaN).
//!
//! Work is split by planes, each plane's outputs computed by one task, so
//! results are bitwise identical for any number of threads.
//!
//! ```
//! use densegrad::kernels::{pool::*, window::Window2d};
//! let g = Window2d::new("pool", 1, 2, 4, 2, 2, 2, 0)?;
//! let x = [1.0, 5.0, -1.0, -2.0,
//!          3.0, 2.0, -4.0, -3.0];
//! let (mut y, mut at) = ([0.0; 2], [0u32; 2]);
//! max_pool_forward(&x, &g, &mut y, &mut at);
//! assert_eq!((y, at), ([5.0, -1.0], [1, 2]));
//! let mut dx = [9.0; 8];
//! max_pool_backward(&[10.0, 20.0], &at, &g, &mut dx);
//! assert_eq!(dx, [0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
//! # Ok::<(), densegrad::Error>(())
//! ```

use super::parallel::{for_row_blocks, for_row_blocks2};
use super::simd::{dispatch, Isa, Lanes, SimdKernel, MAX_LANES};
use super::window::Window2d;

/// The index [`max_pool_forward`] records for a window that covers no input
/// pixel (only padding): its output is −∞ and its gradient goes nowhere.
pub const NO_INPUT: u32 = u32::MAX;

/// Planes in `len` values of whole samples of `g`, and the values per plane.
fn planes(g: &Window2d, len: usize, what: &str) -> (usize, usize) {
    let hw = g.in_h() * g.in_w();
    assert!(
        len.is_multiple_of(g.in_len()),
        "max pool: {what} does not hold whole samples"
    );
    assert!(
        hw <= NO_INPUT as usize,
        "max pool: a {}×{} plane has more positions than u32 indexes",
        g.in_h(),
        g.in_w()
    );
    (len / hw, hw)
}

/// `y` = the maximum of each window of `x`, `argmax` = its position in its
/// plane. `x` holds whole samples of `g` (any number of them: N·C planes of
/// H×W); `y` and `argmax` hold the matching (OH, OW) planes.
///
/// # Panics
/// If the lengths disagree, or a plane has more than `u32::MAX` positions.
///
/// ```
/// use densegrad::kernels::{pool::*, window::Window2d};
/// // Pad 1 with a 2×2 window, stride 2: the corner window sees x[0] alone,
/// // and a negative value still wins over the padding.
/// let g = Window2d::new("pool", 1, 2, 2, 2, 2, 2, 1)?;
/// let (mut y, mut at) = ([0.0; 4], [0u32; 4]);
/// max_pool_forward(&[-1.0, -2.0, -3.0, -4.0], &g, &mut y, &mut at);
/// assert_eq!(y, [-1.0, -2.0, -3.0, -4.0]);
/// assert_eq!(at, [0, 1, 2, 3]);
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn max_pool_forward(x: &[f32], g: &Window2d, y: &mut [f32], argmax: &mut [u32]) {
    let (planes, hw) = planes(g, x.len(), "x");
    let out = g.out_h() * g.out_w();
    assert_eq!(y.len(), planes * out, "max pool forward: y length");
    assert_eq!(
        argmax.len(),
        planes * out,
        "max pool forward: argmax length"
    );
    let isa = Isa::best();
    for_row_blocks2(planes, hw, y, argmax, |r, y, at| {
        let x = &x[r.start * hw..r.end * hw];
        dispatch(isa, ForwardPlanes { x, g, y, at })
    });
}

/// The planes of one task, on the dispatched instruction set.
struct ForwardPlanes<'a> {
    x: &'a [f32],
    g: &'a Window2d,
    y: &'a mut [f32],
    at: &'a mut [u32],
}

impl SimdKernel for ForwardPlanes<'_> {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let g = self.g;
        let (hw, out) = (g.in_h() * g.in_w(), g.out_h() * g.out_w());
        let fast = g.kernel() == (2, 2)
            && (g.stride(), g.pad()) == (2, 0)
            && g.in_w().is_multiple_of(2)
            && g.in_w() >= V::N
            && g.in_w() < 1 << 22
            && g.out_h() * g.in_w() <= FAST_VALUES
            && out >= V::N;
        let planes = self
            .x
            .chunks_exact(hw)
            .zip(self.y.chunks_exact_mut(out))
            .zip(self.at.chunks_exact_mut(out));
        if fast {
            // Scratch for the vector path, cleared once per task (16 KiB),
            // not per plane, and only when the path is taken.
            let (mut hm, mut hi) = ([0.0f32; FAST_VALUES], [0.0f32; FAST_VALUES]);
            for ((x, y), at) in planes {
                forward_plane_2x2_simd::<V>(x, g, y, at, &mut hm, &mut hi);
            }
        } else {
            for ((x, y), at) in planes {
                forward_plane(x, g, y, at);
            }
        }
    }
}

/// The most values (OH·W) the vector 2×2 path keeps on the stack for one
/// plane (two 8 KiB buffers per task, e.g. a 64×64 plane; larger planes
/// take the scalar path). Small, because every task clears them.
const FAST_VALUES: usize = 2048;

/// `(later, its offset)` if `later > cur` or `later` is NaN, else `(cur, its
/// offset)`: one step of the row-major scan `v > best || v.is_nan()`.
#[inline(always)]
fn pick<V: Lanes>(cur: V, cur_at: V, later: V, later_at: V) -> (V, V) {
    let up = cur.lt(later);
    let (m, i) = (V::select(up, later, cur), V::select(up, later_at, cur_at));
    let number = later.eq(later);
    (V::select(number, m, later), V::select(number, i, later_at))
}

/// The 2×2, stride-2 window over a plane of even width W ≥ N, vectorised:
/// first the larger of each vertical pair (rows 2·oy and 2·oy + 1, read as
/// whole vectors, the last one overlapping), then the larger of each
/// horizontal pair of those, whose pairs run contiguously through the plane
/// (W is even) in output order. On a tie between the two columns the
/// winner with the lower row-major position wins, so every maximum is the
/// first in row-major order, as in [`forward_plane`]; a NaN in the window
/// makes the output NaN and takes the gradient. Which row and column won
/// travel as 0.0 / 1.0 lanes.
#[inline(always)]
fn forward_plane_2x2_simd<V: Lanes>(
    x: &[f32],
    g: &Window2d,
    y: &mut [f32],
    at: &mut [u32],
    vm: &mut [f32; FAST_VALUES],
    vi: &mut [f32; FAST_VALUES],
) {
    let (w, oh, ow) = (g.in_w(), g.out_h(), g.out_w());
    let (top_at, bottom_at) = (V::splat(0.0), V::splat(1.0));
    for oy in 0..oh {
        let top = &x[2 * oy * w..][..w];
        let bottom = &x[(2 * oy + 1) * w..][..w];
        let (vm, vi) = (&mut vm[oy * w..][..w], &mut vi[oy * w..][..w]);
        let mut j = 0;
        loop {
            let j0 = j.min(w - V::N);
            let (m, i) = pick(
                V::load(&top[j0..]),
                top_at,
                V::load(&bottom[j0..]),
                bottom_at,
            );
            m.store(&mut vm[j0..]);
            i.store(&mut vi[j0..]);
            if j0 + V::N >= w {
                break;
            }
            j += V::N;
        }
    }
    let n = oh * ow;
    let (zero, one) = (V::splat(0.0), V::splat(1.0));
    let (mut rights, mut downs) = ([0.0f32; MAX_LANES], [0.0f32; MAX_LANES]);
    let mut k = 0;
    while k < n {
        // The last block reads whole vectors ending at the plane's last
        // pair; its overlap with the previous block recomputes equal values.
        let k0 = if k + V::N <= n { k } else { n - V::N };
        let (l, r) = V::deinterleave(V::load(&vm[2 * k0..]), V::load(&vm[2 * k0 + V::N..]));
        let (dl, dr) = V::deinterleave(V::load(&vi[2 * k0..]), V::load(&vi[2 * k0 + V::N..]));
        // Ties: the right column wins only from a lower row (b over c).
        let (strict, loose, prefer_right) = (l.lt(r), l.le(r), dr.lt(dl));
        let masks = (prefer_right, loose, strict);
        let (m, right, down) = (
            pick_column(masks, r, l),
            pick_column(masks, one, zero),
            pick_column(masks, dr, dl),
        );
        let number = r.eq(r);
        V::select(number, m, r).store(&mut y[k0..]);
        V::select(number, right, one).store(&mut rights);
        V::select(number, down, dr).store(&mut downs);
        // The window corner of output q = oy·OW + ox is 2·oy·W + 2·ox.
        let (mut oy, mut ox) = (k0 / ow, k0 % ow);
        for ((a, &rt), &dn) in at[k0..k0 + V::N].iter_mut().zip(&rights).zip(&downs) {
            *a = (2 * oy * w + 2 * ox) as u32
                + u32::from(rt == 1.0)
                + if dn == 1.0 { w as u32 } else { 0 };
            ox += 1;
            if ox == ow {
                (oy, ox) = (oy + 1, 0);
            }
        }
        k = k0 + V::N;
    }
}

/// The right column's `a` or the left's `b` of a 2-wide window, by the
/// tie rule of [`forward_plane_2x2_simd`]'s masks `(prefer_right, loose, strict)`. A
/// function, not a closure: a closure may stay out of line, outside the
/// instruction set's `#[target_feature]` function.
#[inline(always)]
fn pick_column<V: Lanes>(
    (prefer_right, loose, strict): (V::Mask, V::Mask, V::Mask),
    a: V,
    b: V,
) -> V {
    V::select(
        prefer_right,
        V::select(loose, a, b),
        V::select(strict, a, b),
    )
}

/// The input rows (or columns) under window position `o`: `o·s − pad ..
/// o·s − pad + k`, clipped to `0..len`.
#[inline]
fn span(o: usize, s: usize, pad: usize, k: usize, len: usize) -> std::ops::Range<usize> {
    let start = o * s;
    let lo = start.saturating_sub(pad).min(len);
    let hi = (start + k).saturating_sub(pad).min(len);
    lo..hi.max(lo)
}

#[inline(always)]
fn forward_plane(x: &[f32], g: &Window2d, y: &mut [f32], at: &mut [u32]) {
    let (kh, kw) = g.kernel();
    let (h, w, ow, s, pad) = (g.in_h(), g.in_w(), g.out_w(), g.stride(), g.pad());
    if (kh, kw, s, pad) == (2, 2, 2, 0) {
        return forward_plane_2x2(x, g, y, at);
    }
    for (oy, (yrow, arow)) in y
        .chunks_exact_mut(ow)
        .zip(at.chunks_exact_mut(ow))
        .enumerate()
    {
        let rows = span(oy, s, pad, kh, h);
        for (ox, (yv, av)) in yrow.iter_mut().zip(arow.iter_mut()).enumerate() {
            let cols = span(ox, s, pad, kw, w);
            let (mut best, mut best_at) = (f32::NEG_INFINITY, NO_INPUT);
            if !cols.is_empty() && !rows.is_empty() {
                best_at = (rows.start * w + cols.start) as u32;
            }
            for iy in rows.clone() {
                for ix in cols.clone() {
                    let v = x[iy * w + ix];
                    if v > best || v.is_nan() {
                        best = v;
                        best_at = (iy * w + ix) as u32;
                    }
                }
            }
            *yv = best;
            *av = best_at;
        }
    }
}

/// The book's (and W5's) 2×2 window with stride 2: the same comparisons in
/// the same order, without the general loop's range arithmetic.
#[inline(always)]
fn forward_plane_2x2(x: &[f32], g: &Window2d, y: &mut [f32], at: &mut [u32]) {
    let (w, ow) = (g.in_w(), g.out_w());
    for (oy, (yrow, arow)) in y
        .chunks_exact_mut(ow)
        .zip(at.chunks_exact_mut(ow))
        .enumerate()
    {
        let top = &x[2 * oy * w..][..2 * ow];
        let bottom = &x[(2 * oy + 1) * w..][..2 * ow];
        let base = (2 * oy * w) as u32;
        for (ox, (yv, av)) in yrow.iter_mut().zip(arow.iter_mut()).enumerate() {
            let i = 2 * ox;
            let cand = [
                (top[i], i as u32),
                (top[i + 1], i as u32 + 1),
                (bottom[i], (w + i) as u32),
                (bottom[i + 1], (w + i) as u32 + 1),
            ];
            let (mut best, mut best_at) = (f32::NEG_INFINITY, base + i as u32);
            for (v, a) in cand {
                if v > best || v.is_nan() {
                    best = v;
                    best_at = base + a;
                }
            }
            *yv = best;
            *av = best_at;
        }
    }
}

/// `dx` = the gradient of [`max_pool_forward`]: each `dy` value added at
/// its window's `argmax` position, 0 elsewhere. `dx` is overwritten.
///
/// # Panics
/// If the lengths disagree, or an index in `argmax` is outside its plane
/// (other than [`NO_INPUT`]).
///
/// ```
/// use densegrad::kernels::{pool::*, window::Window2d};
/// // Overlapping 2×2 windows, stride 1: x[4] is the max of all four.
/// let g = Window2d::new("pool", 1, 3, 3, 2, 2, 1, 0)?;
/// let x = [0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0];
/// let (mut y, mut at) = ([0.0; 4], [0u32; 4]);
/// max_pool_forward(&x, &g, &mut y, &mut at);
/// let mut dx = [0.0; 9];
/// max_pool_backward(&[1.0, 2.0, 3.0, 4.0], &at, &g, &mut dx);
/// assert_eq!(dx[4], 10.0);
/// # Ok::<(), densegrad::Error>(())
/// ```
pub fn max_pool_backward(dy: &[f32], argmax: &[u32], g: &Window2d, dx: &mut [f32]) {
    let (planes, hw) = planes(g, dx.len(), "dx");
    let out = g.out_h() * g.out_w();
    assert_eq!(dy.len(), planes * out, "max pool backward: dy length");
    assert_eq!(
        argmax.len(),
        planes * out,
        "max pool backward: argmax length"
    );
    for_row_blocks(planes, hw, dx, |r, dx| {
        let (dy, at) = (
            &dy[r.start * out..r.end * out],
            &argmax[r.start * out..r.end * out],
        );
        for ((dx, dy), at) in dx
            .chunks_exact_mut(hw)
            .zip(dy.chunks_exact(out))
            .zip(at.chunks_exact(out))
        {
            // Zeroed plane by plane, so that the scatter below hits cache.
            dx.fill(0.0);
            for (&d, &a) in dy.iter().zip(at) {
                if a != NO_INPUT {
                    dx[a as usize] += d;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2x2_path_matches_the_general_one() {
        for (h, w) in [(2, 2), (3, 5), (6, 4), (7, 7)] {
            let g = Window2d::new("t", 2, h, w, 2, 2, 2, 0).unwrap();
            let x: Vec<f32> = (0..g.in_len())
                .map(|i| ((i * 7919) % 13) as f32 - 6.0)
                .collect();
            let out = g.out_h() * g.out_w();
            let (mut y1, mut a1) = (vec![0.0; out], vec![0; out]);
            let (mut y2, mut a2) = (vec![0.0; out], vec![0; out]);
            for p in 0..2 {
                let plane = &x[p * h * w..][..h * w];
                forward_plane_2x2(plane, &g, &mut y1, &mut a1);
                // The general loop, reached through a geometry it does not
                // special-case but that reads the same windows.
                let (rows, cols) = (g.out_h(), g.out_w());
                for oy in 0..rows {
                    for ox in 0..cols {
                        let (mut best, mut at) = (f32::NEG_INFINITY, NO_INPUT);
                        for iy in span(oy, 2, 0, 2, h) {
                            for ix in span(ox, 2, 0, 2, w) {
                                let v = plane[iy * w + ix];
                                if at == NO_INPUT || v > best || v.is_nan() {
                                    best = v;
                                    at = (iy * w + ix) as u32;
                                }
                            }
                        }
                        y2[oy * cols + ox] = best;
                        a2[oy * cols + ox] = at;
                    }
                }
                assert_eq!((&y1, &a1), (&y2, &a2));
            }
        }
    }

    /// The vector 2×2 path on every instruction set against the scalar
    /// scan, on values full of ties, NaNs and infinities: the same outputs,
    /// the same positions (for a NaN output, a NaN of the same window).
    #[test]
    fn the_vector_2x2_path_matches_the_scalar_scan() {
        struct Run<'a>(&'a [f32], &'a Window2d, &'a mut [f32], &'a mut [u32]);
        impl SimdKernel for Run<'_> {
            type Output = bool;
            fn run<V: Lanes>(self) -> bool {
                let (g, n) = (self.1, self.1.out_h() * self.1.out_w());
                if g.in_w() < V::N || n < V::N {
                    return false;
                }
                let (mut vm, mut vi) = ([0.0; FAST_VALUES], [0.0; FAST_VALUES]);
                forward_plane_2x2_simd::<V>(self.0, g, self.2, self.3, &mut vm, &mut vi);
                true
            }
        }
        let pool = [
            0.0,
            1.0,
            1.0,
            -2.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
        ];
        let mut checked = 0;
        for isa in Isa::available() {
            for h in 2..12 {
                for w in (2..=50).step_by(2) {
                    let g = Window2d::new("t", 1, h, w, 2, 2, 2, 0).unwrap();
                    for seed in 0..6usize {
                        let x: Vec<f32> = (0..h * w)
                            .map(|i| {
                                let v = pool[(i * 7 + seed * 13 + (i * i) % 5) % pool.len()];
                                // Seeds 0–2 without NaN: exact positions.
                                if seed < 3 && v.is_nan() {
                                    0.5
                                } else {
                                    v
                                }
                            })
                            .collect();
                        let out = g.out_h() * g.out_w();
                        let (mut y1, mut a1) = (vec![0.0; out], vec![0; out]);
                        let (mut y2, mut a2) = (vec![0.0; out], vec![0; out]);
                        forward_plane_2x2(&x, &g, &mut y1, &mut a1);
                        if !dispatch(isa, Run(&x, &g, &mut y2, &mut a2)) {
                            continue;
                        }
                        checked += 1;
                        for q in 0..out {
                            let what = format!("{} {h}x{w} seed {seed} output {q}", isa.name());
                            if y1[q].is_nan() {
                                assert!(y2[q].is_nan(), "{what}");
                                assert!(x[a2[q] as usize].is_nan(), "{what}");
                                let (c1, c2) = (a1[q] as usize, a2[q] as usize);
                                assert_eq!(
                                    (c1 / w / 2, c1 % w / 2),
                                    (c2 / w / 2, c2 % w / 2),
                                    "{what}"
                                );
                            } else {
                                assert_eq!(y1[q].to_bits(), y2[q].to_bits(), "{what}");
                                assert_eq!(a1[q], a2[q], "{what}");
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 100);
    }

    #[test]
    fn a_window_over_padding_only_is_minus_infinity_and_takes_no_gradient() {
        // h = w = 1, a 1×1 window with pad 1: 3×3 outputs, 8 of them on padding.
        let g = Window2d::new("t", 1, 1, 1, 1, 1, 1, 1).unwrap();
        let (mut y, mut at) = ([0.0; 9], [0u32; 9]);
        max_pool_forward(&[2.0], &g, &mut y, &mut at);
        assert_eq!(y[4], 2.0);
        assert!(y
            .iter()
            .enumerate()
            .all(|(i, &v)| i == 4 || v == f32::NEG_INFINITY));
        let mut dx = [0.0];
        max_pool_backward(&[1.0; 9], &at, &g, &mut dx);
        assert_eq!(dx, [1.0]);
    }
}
