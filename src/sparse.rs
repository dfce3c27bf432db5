//! Sparse tag vectors (`(tag id, weight)` sorted by tag id) and the one operation several
//! modules need on them: walking `a + f·b` in tag order without allocating.

/// Iterator over `a + f·b` for two vectors sorted by tag id; a tag in both is yielded once
/// with the summed weight.
pub(crate) struct MergeSum<'a> {
    a: &'a [(u32, f32)],
    b: &'a [(u32, f32)],
    f: f32,
    i: usize,
    j: usize,
}

/// `a + f·b`, in tag order.
pub(crate) fn merge_sum<'a>(a: &'a [(u32, f32)], b: &'a [(u32, f32)], f: f32) -> MergeSum<'a> {
    MergeSum {
        a,
        b,
        f,
        i: 0,
        j: 0,
    }
}

impl Iterator for MergeSum<'_> {
    type Item = (u32, f32);

    fn next(&mut self) -> Option<(u32, f32)> {
        match (self.a.get(self.i), self.b.get(self.j)) {
            (Some(&(ta, wa)), Some(&(tb, wb))) if ta == tb => {
                self.i += 1;
                self.j += 1;
                Some((ta, wa + self.f * wb))
            }
            (Some(&(ta, wa)), Some(&(tb, _))) if ta < tb => {
                self.i += 1;
                Some((ta, wa))
            }
            (Some(&x), None) => {
                self.i += 1;
                Some(x)
            }
            (_, Some(&(tb, wb))) => {
                self.j += 1;
                Some((tb, self.f * wb))
            }
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_in_order_summing_shared_tags() {
        let a = [(1, 1.0), (3, 1.0), (9, 2.0)];
        let b = [(0, 1.0), (3, 2.0), (10, 1.0)];
        let got: Vec<(u32, f32)> = merge_sum(&a, &b, 0.5).collect();
        assert_eq!(got, vec![(0, 0.5), (1, 1.0), (3, 2.0), (9, 2.0), (10, 0.5)]);
        assert_eq!(merge_sum(&[], &[], 1.0).count(), 0);
    }
}
