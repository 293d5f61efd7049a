//! Which real server each flow goes to, as a bucket table. Pure and
//! deterministic: the same backends and weights give the same table on
//! every director and every run, so a standby director (or, later, several
//! active ones behind ECMP) sends a flow where the master would.
//!
//! The kernel hashes each flow into one of a service's buckets (nftables'
//! `jhash ... mod N`, N from [`count`]); this module decides the real
//! server of each bucket by **weighted rendezvous hashing with bounded
//! loads**. Each pair of bucket and backend has a score `-w / ln(u)`, `u`
//! uniform in (0, 1) from the pair's hash; the pairs are taken best
//! first, and a bucket goes to the backend of its first pair that still
//! has room, each backend holding its weighted share of the buckets,
//! rounded so that the shares add up to N (largest remainders).
//!
//! The bound is what lets a service have few buckets: plain rendezvous
//! hashing gives each backend a binomial number of buckets, so ten
//! backends needed 4,093 buckets to stay within 7 % of their shares
//! (and 1,000 such services took 440 MB of kernel memory); bounded, each
//! is within one bucket of its share at any size, and ten backends take
//! 509 buckets (64 MB for 1,000 services). The price: a backend leaving
//! moves its own buckets and, as the others' bounds grow, a few more
//! between the others (about 3 % of a ten-backend table, as the tests
//! measure); flow pins (`nft::compile`) keep the established flows of
//! those buckets where they were.

use crate::util::fnv::fnv1a;

/// The bucket counts a service may have: primes, each about twice the
/// last, so `jhash … mod N` spreads flows evenly.
const SIZES: [usize; 6] = [127, 251, 509, 1021, 2039, 4093];

/// Buckets per backend at least, up to the largest size: flows hash
/// into buckets, so a backend's share of flows is as even as fifty-odd
/// buckets make it.
const PER_BACKEND: usize = 50;

/// The most buckets a service has.
pub const MAX_BUCKETS: usize = SIZES[SIZES.len() - 1];

/// How many buckets a service of `configured` real servers hashes its
/// flows into: from the configuration, not from which are up, so that
/// a health change never changes the hash (only the buckets' owners).
pub fn count(configured: usize) -> usize {
    let wanted = configured.saturating_mul(PER_BACKEND);
    SIZES.into_iter().find(|&n| n >= wanted).unwrap_or(MAX_BUCKETS)
}

/// A backend as the table sees it: a stable key and a weight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backend {
    /// Identity, stable across configurations (e.g. `10.0.0.21:80`).
    pub key: String,
    /// Relative share; 0 takes no bucket.
    pub weight: u32,
}

/// The backend (index into `backends`) of each of `buckets` buckets;
/// empty when no backend has a weight.
pub fn table(backends: &[Backend], buckets: usize) -> Vec<usize> {
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
    let mut room = bounds(&live, buckets);
    // Every pair, best first; ties (53 random bits) by bucket, then by the
    // backend's key, never by its place in the list.
    let mut pairs: Vec<(f64, u32, u64, u32)> =
        Vec::with_capacity(buckets * live.len());
    for bucket in 0..buckets as u32 {
        for (j, &(_, key, w)) in live.iter().enumerate() {
            let s = score(uniform_bits(u64::from(bucket) ^ key), w);
            pairs.push((s, bucket, key, j as u32));
        }
    }
    pairs.sort_unstable_by(|a, b| {
        b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    });
    let mut owner = vec![usize::MAX; buckets];
    let mut left = buckets;
    for (_, bucket, _, j) in pairs {
        let (bucket, j) = (bucket as usize, j as usize);
        if owner[bucket] == usize::MAX && room[j] > 0 {
            owner[bucket] = live[j].0;
            room[j] -= 1;
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    owner
}

/// Each backend's bound: its share of `buckets` rounded down, and one
/// more for the largest remainders (ties by key) until the bounds add up
/// to `buckets`, so every backend holds its share to within one bucket.
fn bounds(live: &[(usize, u64, f64)], buckets: usize) -> Vec<usize> {
    let total: f64 = live.iter().map(|&(_, _, w)| w).sum();
    let share = |w: f64| buckets as f64 * w / total;
    let mut room: Vec<usize> =
        live.iter().map(|&(_, _, w)| share(w).floor() as usize).collect();
    let mut by_remainder: Vec<usize> = (0..live.len()).collect();
    by_remainder.sort_by(|&a, &b| {
        let rest = |j: usize| share(live[j].2) - room[j] as f64;
        rest(b).total_cmp(&rest(a)).then(live[a].1.cmp(&live[b].1))
    });
    let short = buckets.saturating_sub(room.iter().sum());
    for &j in by_remainder.iter().cycle().take(short) {
        room[j] += 1;
    }
    room
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

    fn held(t: &[usize], n: usize) -> Vec<usize> {
        (0..n).map(|i| t.iter().filter(|&&b| b == i).count()).collect()
    }

    /// How many buckets changed backend between `before` and `after`,
    /// both given as keys.
    fn moved(before: &[&str], after: &[&str]) -> usize {
        before.iter().zip(after).filter(|(b, a)| b != a).count()
    }

    fn keys<'a>(t: &[usize], b: &'a [Backend]) -> Vec<&'a str> {
        t.iter().map(|&i| b[i].key.as_str()).collect()
    }

    #[test]
    fn sizes_grow_with_the_configured_servers_and_stop_at_the_largest() {
        assert_eq!(count(0), 127);
        assert_eq!(count(2), 127);
        assert_eq!(count(3), 251);
        assert_eq!(count(10), 509);
        assert_eq!(count(40), 2039);
        assert_eq!(count(82), MAX_BUCKETS);
        assert_eq!(count(usize::MAX), MAX_BUCKETS);
    }

    #[test]
    fn each_backend_is_within_one_bucket_of_its_share() {
        for weights in [
            &[1, 1, 1][..],
            &[3, 1],
            &[2, 1, 2, 1, 0, 5],
            &[1; 10],
            &[7],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            &[1; 100],
        ] {
            let n = count(weights.len());
            let t = table(&backends(weights), n);
            assert_eq!(t.len(), n);
            let total: u32 = weights.iter().sum();
            for (i, h) in held(&t, weights.len()).into_iter().enumerate() {
                let share = n as f64 * f64::from(weights[i]) / f64::from(total);
                assert!(
                    (h as f64 - share).abs() < 1.0,
                    "weights {weights:?}: backend {i} holds {h} of {n}, \
                     its share is {share:.1}"
                );
            }
        }
    }

    /// A backend leaving moves its own buckets, and a few more as the
    /// others' bounds grow: at most 4 % of the table here (7 to 20 of 509
    /// buckets, 2.9 % on average over which backend leaves), against the
    /// 10 % that must move.
    #[test]
    fn removing_a_backend_moves_its_buckets_and_few_others() {
        let all = backends(&[1; 10]);
        let n = count(10);
        let before = table(&all, n);
        for gone in 0..10 {
            let rest: Vec<Backend> = (0..10)
                .filter(|&i| i != gone)
                .map(|i| all[i].clone())
                .collect();
            let after = table(&rest, n);
            let own = held(&before, 10)[gone];
            let extra = moved(&keys(&before, &all), &keys(&after, &rest)) - own;
            assert!(extra * 25 <= n, "backend {gone}: {extra} extra of {n}");
        }
    }

    #[test]
    fn adding_a_backend_takes_its_share_and_few_others_move() {
        let all = backends(&[1, 1, 1, 1]);
        let n = count(4);
        let before = table(&all[..3], n);
        let after = table(&all, n);
        let kb = keys(&before, &all);
        let ka = keys(&after, &all);
        let taken = ka.iter().filter(|k| **k == all[3].key).count();
        assert!(taken.abs_diff(n / 4) <= 1, "{taken} of {n}");
        let between_old = moved(&kb, &ka) - taken;
        assert!(between_old * 25 <= n, "{between_old} moved between the old");
    }

    #[test]
    fn a_weight_change_moves_about_the_difference() {
        let n = count(10);
        let before = backends(&[1; 10]);
        let mut after = before.clone();
        after[0].weight = 3;
        let m = moved(
            &keys(&table(&before, n), &before),
            &keys(&table(&after, n), &after),
        );
        // Its share goes from 1/10 to 3/12: 15 % of the buckets at least.
        assert!(m * 100 >= 15 * n && m * 100 <= 20 * n, "{m} of {n}");
    }

    #[test]
    fn same_input_same_table_and_order_does_not_matter() {
        let a = backends(&[2, 1, 1, 3]);
        let n = count(a.len());
        assert_eq!(table(&a, n), table(&a, n));
        let reversed: Vec<Backend> = a.iter().rev().cloned().collect();
        assert_eq!(
            keys(&table(&a, n), &a),
            keys(&table(&reversed, n), &reversed)
        );
    }

    #[test]
    fn no_weight_no_table() {
        assert!(table(&backends(&[0, 0]), 127).is_empty());
        assert!(table(&[], 127).is_empty());
    }
}
