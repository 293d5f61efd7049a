//! Which real server each flow goes to, as a bucket table. Pure and
//! deterministic: the same backends and weights give the same table on
//! every director and every run, so a standby director (or, later, several
//! active ones behind ECMP) sends a flow where the master would.
//!
//! The kernel hashes each flow into one of [`BUCKETS`] buckets (nftables'
//! `jhash ... mod N`); this module decides the real server of each bucket
//! by **weighted rendezvous hashing** (highest random weight): bucket `b`
//! goes to the backend with the highest score `-w / ln(u(b, backend))`,
//! `u` uniform in (0, 1). Removing a backend moves exactly the buckets it
//! owned; adding one takes buckets only from the others, in proportion to
//! their share — the property Maglev only approximates.

use crate::util::fnv::fnv1a;

/// Buckets per service: a prime well above any sane number of backends,
/// so shares stay within a fraction of a percent of the weights.
pub const BUCKETS: usize = 4093;

/// A backend as the table sees it: a stable key and a weight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backend {
    /// Identity, stable across configurations (e.g. `10.0.0.21:80`).
    pub key: String,
    /// Relative share; 0 takes no bucket.
    pub weight: u32,
}

/// The backend (index into `backends`) of every bucket; empty when no
/// backend has a weight.
///
/// Backends of equal weight are compared by their hash alone: the score
/// rises with `u`, so within one weight the highest `u` wins, and only the
/// winner of each weight needs its logarithm. With the usual equal weights
/// that is one logarithm per bucket instead of one per backend and bucket
/// (the logarithm dominated the cost of 1,000 services' tables).
pub fn table(backends: &[Backend]) -> Vec<usize> {
    let mut groups: Vec<(f64, Vec<(usize, u64)>)> = Vec::new();
    for (i, b) in backends.iter().enumerate().filter(|(_, b)| b.weight > 0) {
        let weight = f64::from(b.weight);
        let key = fnv1a(b.key.as_bytes()).rotate_left(17);
        match groups.iter_mut().find(|(w, _)| *w == weight) {
            Some((_, members)) => members.push((i, key)),
            None => groups.push((weight, vec![(i, key)])),
        }
    }
    if groups.is_empty() {
        return Vec::new();
    }
    (0..BUCKETS as u64)
        .map(|bucket| {
            groups
                .iter()
                .map(|(weight, members)| {
                    let (i, u) = members
                        .iter()
                        .map(|&(i, key)| (i, uniform_bits(bucket ^ key)))
                        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                        .expect("a group has members");
                    (i, score(u, *weight))
                })
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|(i, _)| i)
                .expect("groups is not empty")
        })
        .collect()
}

/// The 53 bits of a bucket's hash for one backend that make its `u`.
fn uniform_bits(x: u64) -> u64 {
    mix(x) >> 11
}

/// The weighted rendezvous score `-w / ln(u)` of a backend whose
/// [`uniform_bits`] are `bits`.
fn score(bits: u64, weight: f64) -> f64 {
    // Uniform in (0, 1): 53 bits, never 0 or 1.
    let u = (bits as f64 + 0.5) / (1u64 << 53) as f64;
    -weight / u.ln()
}

/// splitmix64's finaliser: spreads similar inputs apart.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Backend {
                key: format!("10.0.0.{}:80", 21 + i),
                weight,
            })
            .collect()
    }

    fn shares(t: &[usize], n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                t.iter().filter(|&&b| b == i).count() as f64 / t.len() as f64
            })
            .collect()
    }

    #[test]
    fn equal_weights_share_evenly() {
        let t = table(&backends(&[1, 1, 1]));
        assert_eq!(t.len(), BUCKETS);
        for s in shares(&t, 3) {
            assert!((s - 1.0 / 3.0).abs() < 0.03, "{s}");
        }
    }

    #[test]
    fn weights_set_the_shares() {
        let s = shares(&table(&backends(&[3, 1])), 2);
        assert!((s[0] - 0.75).abs() < 0.03, "{s:?}");
        let s = shares(&table(&backends(&[1, 0, 1])), 3);
        assert_eq!(s[1], 0.0);
    }

    #[test]
    fn removing_a_backend_moves_only_its_own_buckets() {
        let all = backends(&[1, 1, 1]);
        let before = table(&all);
        let after = table(&all[..2]);
        for (b, a) in before.iter().zip(&after) {
            if *b != 2 {
                assert_eq!(a, b, "a bucket of a remaining backend moved");
            }
        }
    }

    #[test]
    fn adding_a_backend_takes_about_its_share_and_nothing_else_moves() {
        let all = backends(&[1, 1, 1, 1]);
        let before = table(&all[..3]);
        let after = table(&all);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        for (b, a) in before.iter().zip(&after) {
            assert!(a == b || *a == 3, "moved between old backends");
        }
        let share = moved as f64 / BUCKETS as f64;
        assert!((share - 0.25).abs() < 0.03, "{share}");
    }

    #[test]
    fn same_input_same_table_and_order_does_not_matter() {
        let a = backends(&[2, 1]);
        assert_eq!(table(&a), table(&a));
        let reversed: Vec<Backend> = a.iter().rev().cloned().collect();
        let map = |t: Vec<usize>, v: &[Backend]| -> Vec<String> {
            t.into_iter().map(|i| v[i].key.clone()).collect()
        };
        assert_eq!(map(table(&a), &a), map(table(&reversed), &reversed));
    }

    /// The definition, one score per backend and bucket: what [`table`]
    /// computes faster.
    fn by_definition(backends: &[Backend]) -> Vec<usize> {
        let live: Vec<(usize, u64, f64)> = backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.weight > 0)
            .map(|(i, b)| {
                let key = fnv1a(b.key.as_bytes()).rotate_left(17);
                (i, key, f64::from(b.weight))
            })
            .collect();
        if live.is_empty() {
            return Vec::new();
        }
        (0..BUCKETS as u64)
            .map(|bucket| {
                live.iter()
                    .map(|&(i, key, w)| {
                        (i, score(uniform_bits(bucket ^ key), w))
                    })
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                    .map(|(i, _)| i)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn grouping_by_weight_gives_the_table_of_the_definition() {
        for weights in [
            &[1, 1, 1][..],
            &[3, 1],
            &[2, 1, 2, 1, 0, 5],
            &[1; 10],
            &[7],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        ] {
            let b = backends(weights);
            assert_eq!(table(&b), by_definition(&b), "weights {weights:?}");
        }
    }

    #[test]
    fn no_weight_no_table() {
        assert!(table(&backends(&[0, 0])).is_empty());
        assert!(table(&[]).is_empty());
    }
}
