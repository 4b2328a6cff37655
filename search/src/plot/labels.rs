//! Placing point labels: each label goes to the first of a list of spots around its point
//! (right, then above or below on the right, then on the left, further out each round) that
//! covers no label placed before it and the least of the plot's marks (points, lines, error
//! bars) and of the outside of the plot area.

/// A box in pixels: left, top, right, bottom (right and bottom excluded).
pub type Bounds = (i32, i32, i32, i32);

/// The area two boxes share.
fn overlap(a: Bounds, b: Bounds) -> i64 {
    let w = (a.2.min(b.2) - a.0.max(b.0)).max(0);
    let h = (a.3.min(b.3) - a.1.max(b.1)).max(0);
    i64::from(w) * i64::from(h)
}

/// The box of a mark from (`x0`, `y0`) to (`x1`, `y1`) (a point when equal), `pad` pixels
/// wider on every side.
pub fn mark((x0, y0): (i32, i32), (x1, y1): (i32, i32), pad: i32) -> Bounds {
    (
        x0.min(x1) - pad,
        y0.min(y1) - pad,
        x0.max(x1) + pad + 1,
        y0.max(y1) + pad + 1,
    )
}

/// The spots tried for a `w` x `h` label of the point (`x`, `y`), in order of preference.
fn spots((x, y): (i32, i32), (w, h): (i32, i32)) -> Vec<(i32, i32)> {
    let mut out = vec![(x + 8, y - h / 2)];
    for j in 0..4 {
        let step = j * (h + 2);
        let (above, below) = (y - h - 2 - step, y + 3 + step);
        let (right, left) = (x + 7, x - 7 - w);
        out.extend([(right, above), (right, below), (left, above), (left, below)]);
    }
    out
}

/// The top-left corner of each label of `sizes` (width, height) next to its point of
/// `anchors`: never over a label placed before it when a spot allows, else the spot covering
/// the least of the `marks` and of the outside of `area`.
pub fn place(
    anchors: &[(i32, i32)],
    sizes: &[(u32, u32)],
    marks: &[Bounds],
    area: Bounds,
) -> Vec<(i32, i32)> {
    let mut placed: Vec<Bounds> = Vec::new();
    let mut out = Vec::new();
    for (&anchor, &(w, h)) in anchors.iter().zip(sizes) {
        let (w, h) = (w as i32, h as i32);
        let bounds = |(x, y): (i32, i32)| (x, y, x + w, y + h);
        let cost = |b: Bounds| {
            let covered: i64 = marks.iter().map(|&m| overlap(b, m)).sum();
            let outside = i64::from(w) * i64::from(h) - overlap(b, area);
            covered + 10 * outside
        };
        let spots = spots(anchor, (w, h));
        let free = spots
            .iter()
            .copied()
            .filter(|&s| placed.iter().all(|&p| overlap(bounds(s), p) == 0))
            .min_by_key(|&s| cost(bounds(s)));
        let spot = free.unwrap_or_else(|| {
            let least = spots.iter().copied().min_by_key(|&s| {
                let on_labels: i64 = placed.iter().map(|&p| overlap(bounds(s), p)).sum();
                (on_labels, cost(bounds(s)))
            });
            least.unwrap_or(spots[0])
        });
        placed.push(bounds(spot));
        out.push(spot);
    }
    out
}

/// A line from near the point `anchor` to the label at `pos` of `size`, when the label is
/// placed more than 12 pixels away from its point: from `gap` pixels off the point to the
/// label's nearest edge.
pub fn leader(
    anchor: (i32, i32),
    pos: (i32, i32),
    (w, h): (u32, u32),
    gap: i32,
) -> Option<((i32, i32), (i32, i32))> {
    let near = (
        anchor.0.clamp(pos.0, pos.0 + w as i32),
        anchor.1.clamp(pos.1, pos.1 + h as i32),
    );
    let (dx, dy) = (f64::from(near.0 - anchor.0), f64::from(near.1 - anchor.1));
    let d = dx.hypot(dy);
    (d > 12.0).then(|| {
        let k = f64::from(gap) / d;
        let from = (
            anchor.0 + (dx * k).round() as i32,
            anchor.1 + (dy * k).round() as i32,
        );
        (from, near)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AREA: Bounds = (0, 0, 1000, 1000);

    #[test]
    fn labels_of_one_point_do_not_overlap() {
        let anchors = [(100, 100); 4];
        let sizes = [(60, 12); 4];
        let at = place(&anchors, &sizes, &[], AREA);
        for i in 0..at.len() {
            for j in i + 1..at.len() {
                let (a, b) = (at[i], at[j]);
                let a = (a.0, a.1, a.0 + 60, a.1 + 12);
                let b = (b.0, b.1, b.0 + 60, b.1 + 12);
                assert_eq!(overlap(a, b), 0, "{i} {j}: {a:?} {b:?}");
            }
        }
        // the first to the right of its point, centred on it
        assert_eq!(at[0], (108, 94));
    }

    #[test]
    fn labels_avoid_marks_and_the_outside() {
        // a line through the point to its right: the label goes above it on the right
        let marks = [mark((105, 100), (200, 100), 1)];
        let at = place(&[(100, 100)], &[(60, 12)], &marks, AREA);
        assert_eq!(at, [(107, 86)]);
        // at the right edge: to the left
        let at = place(&[(990, 500)], &[(60, 12)], &[], AREA);
        assert_eq!(at, [(990 - 7 - 60, 500 - 12 - 2)]);
    }

    #[test]
    fn leaders_join_far_labels_only() {
        assert_eq!(leader((100, 100), (108, 94), (20, 12), 5), None);
        // a label 40 pixels above: from 5 pixels above the point to the label's bottom edge
        assert_eq!(
            leader((100, 100), (90, 48), (20, 12), 5),
            Some(((100, 95), (100, 60)))
        );
    }

    #[test]
    fn boxes() {
        assert_eq!(overlap((0, 0, 10, 10), (5, 5, 20, 20)), 25);
        assert_eq!(overlap((0, 0, 10, 10), (10, 0, 20, 10)), 0);
        assert_eq!(mark((5, 9), (5, 3), 2), (3, 1, 8, 12));
    }
}
