//! The functions against numbers from scipy 1.17.1 and numpy 2.4.6 (computed once, by the
//! calls named at each table; scipy is not needed to run these tests).

use stats::{
    Interval, Resampler, clopper_pearson, kendall_tau_b, median, percentile_interval, ranks,
    spearman_rho, top_k_overlap, wilson,
};

/// Quantile-based values (Beta and normal inverse CDFs, found iteratively).
const QUANTILE_TOL: f64 = 1e-9;
/// Closed-form values (ratios of exact counts, ranks, order statistics).
const EXACT_TOL: f64 = 1e-12;

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:.17}, want {want:.17} (off by {:e})",
        (got - want).abs()
    );
}

/// (k, n, confidence, exact lo, exact hi, wilson lo, wilson hi), from
/// `t = scipy.stats.binomtest(k, n)`,
/// `t.proportion_ci(confidence_level=confidence, method='exact')` and
/// `t.proportion_ci(confidence_level=confidence, method='wilson')`.
#[rustfmt::skip]
const BINOMIAL: &[(u64, u64, f64, f64, f64, f64, f64)] = &[
    (0, 10, 0.95, 0.0, 0.30849710781876294, 0.0, 0.27753279986288926),
    (10, 10, 0.95, 0.6915028921812371, 1.0, 0.7224672001371109, 1.0),
    (7, 10, 0.95, 0.3475471499399921, 0.9332604888222655, 0.39677814746114526, 0.892208732593699),
    (392, 400, 0.95, 0.9609737232883798, 0.9913268296308729, 0.96103658423074, 0.9898316132083353),
    (47, 400, 0.95, 0.08762468318514302, 0.1531732468493403, 0.0895219409501038, 0.15275496421563303),
    (1, 1, 0.95, 0.025000000000000022, 1.0, 0.20654931437723745, 1.0),
    (0, 1, 0.95, 0.0, 0.975, 0.0, 0.7934506856227626),
    (3, 1000, 0.95, 0.0006190999316499173, 0.008742023238657654, 0.0010207838811386186, 0.008783014053503173),
    (0, 10, 0.9, 0.0, 0.25886555089334723, 0.0, 0.21294197008340698),
    (10, 10, 0.9, 0.7411344491066528, 1.0, 0.787058029916593, 1.0),
    (7, 10, 0.9, 0.39337578389442357, 0.9127355660858497, 0.4416997958698351, 0.8731234160968021),
    (392, 400, 0.9, 0.9642033823863487, 0.9900100860840739, 0.9648554056248161, 0.9886949148062022),
    (47, 400, 0.9, 0.09194378579922767, 0.14737151198602647, 0.0935507140171027, 0.1465888743894297),
    (1, 1, 0.9, 0.04999999999999999, 1.0, 0.2698659487840541, 1.0),
    (0, 1, 0.9, 0.0, 0.95, 0.0, 0.7301340512159458),
    (3, 1000, 0.9, 0.0008181753982217664, 0.00773524471848195, 0.0011995624784162675, 0.0074824913019056905),
    (0, 10, 0.99, 0.0, 0.4112959813475254, 0.0, 0.39885409330490806),
    (10, 10, 0.99, 0.5887040186524746, 1.0, 0.6011459066950919, 1.0),
    (7, 10, 0.99, 0.26488601471286927, 0.9629927789037926, 0.32002467920110256, 0.9204336834769342),
    (392, 400, 0.99, 0.9541660542495088, 0.9935363445194179, 0.9526451014465415, 0.9916909681081824),
    (47, 400, 0.99, 0.07955337959463235, 0.16485405367072856, 0.08213724966901016, 0.16534494490456908),
    (1, 1, 0.99, 0.0050000000000000044, 1.0, 0.13097754328018596, 1.0),
    (0, 1, 0.99, 0.0, 0.995, 0.0, 0.8690224567198142),
    (3, 1000, 0.99, 0.0003381445290663692, 0.01093377742040526, 0.0007581012310614683, 0.011793516682924922),
];

#[test]
fn clopper_pearson_matches_scipy_exact() {
    for &(k, n, conf, lo, hi, _, _) in BINOMIAL {
        let ci = clopper_pearson(k, n, conf);
        close(
            &format!("exact lo {k}/{n} @{conf}"),
            ci.lo,
            lo,
            QUANTILE_TOL,
        );
        close(
            &format!("exact hi {k}/{n} @{conf}"),
            ci.hi,
            hi,
            QUANTILE_TOL,
        );
    }
    // the documented ends are exact
    assert_eq!(clopper_pearson(0, 10, 0.95).lo, 0.0);
    assert_eq!(clopper_pearson(10, 10, 0.95).hi, 1.0);
    assert_eq!(clopper_pearson(0, 0, 0.95), Interval { lo: 0.0, hi: 1.0 });
}

/// (k, n, lo, hi) at 0.95 for large n, where a few successes put the lower end near 0:
/// `scipy.stats.beta.ppf(0.025, k, n - k + 1)` and `scipy.stats.beta.isf(0.025, k + 1, n - k)`,
/// which agree with a 50-digit mpmath bisection of `betainc` to 1e-15 relative. (binomtest's
/// `proportion_ci(method='exact')` finds its roots less tightly here, 1e-8 relative off.)
#[rustfmt::skip]
const BINOMIAL_LARGE: &[(u64, u64, f64, f64)] = &[
    (3, 100000, 6.186763958922033e-06, 8.7670202566362e-05),
    (5, 944574, 1.7187519796639215e-06, 1.2352966408544027e-05),
    (1, 720611, 3.513380664399293e-08, 7.731807753971638e-06),
    (999990, 1000000, 0.9999816097211087, 0.9999952046012225),
];

#[test]
fn clopper_pearson_is_precise_near_zero_for_large_n() {
    // statrs' inverse alone is 4e-4 relative off on the second row; the Newton polish is not.
    for &(k, n, lo, hi) in BINOMIAL_LARGE {
        let ci = clopper_pearson(k, n, 0.95);
        close(&format!("exact lo {k}/{n}"), ci.lo, lo, 1e-8 * lo);
        close(&format!("exact hi {k}/{n}"), ci.hi, hi, 1e-8 * hi);
    }
}

#[test]
fn clopper_pearson_terminates_and_is_ordered_everywhere() {
    // statrs' Beta inverse never returns for shapes beyond about 7e6 (NaN Newton steps); up to
    // MAX_EXACT_TRIALS it must, and beyond it the Wilson interval stands in.
    let mut ns: Vec<u64> = (1..=60).collect();
    let mut n = 61.0_f64;
    while n < stats::MAX_EXACT_TRIALS as f64 {
        ns.push(n as u64);
        n *= 1.5;
    }
    let max = stats::MAX_EXACT_TRIALS;
    ns.extend([max - 1, max, max + 1, 10_000_000, 1 << 40, u64::MAX]);
    for n in ns {
        let mut ks = vec![
            0,
            1,
            2,
            n / 1000,
            n / 3,
            n / 2,
            n - n / 50,
            n.saturating_sub(2),
            n - 1,
            n,
        ];
        ks.retain(|&k| k <= n);
        for k in ks {
            for conf in [1e-300, 0.5, 0.95, 0.99, 1.0] {
                let ci = clopper_pearson(k, n, conf);
                assert!(
                    0.0 <= ci.lo && ci.lo <= ci.hi && ci.hi <= 1.0,
                    "{k}/{n} @{conf}: {ci:?}"
                );
                let p = k as f64 / n as f64;
                assert!(ci.contains(p) || conf < 0.5, "{k}/{n} @{conf}: {ci:?}");
            }
        }
    }
    assert_eq!(
        clopper_pearson(7, 10_000_000, 0.95),
        wilson(7, 10_000_000, 0.95)
    );
}

#[test]
fn wilson_matches_scipy_wilson() {
    for &(k, n, conf, _, _, lo, hi) in BINOMIAL {
        let ci = wilson(k, n, conf);
        close(
            &format!("wilson lo {k}/{n} @{conf}"),
            ci.lo,
            lo,
            QUANTILE_TOL,
        );
        close(
            &format!("wilson hi {k}/{n} @{conf}"),
            ci.hi,
            hi,
            QUANTILE_TOL,
        );
    }
    assert_eq!(wilson(0, 0, 0.95), Interval { lo: 0.0, hi: 1.0 });
}

/// (name, x, y, tau-b, rho).
type CorrelationCase = (&'static str, &'static [f64], &'static [f64], f64, f64);

/// (name, x, y, tau-b, rho): `scipy.stats.kendalltau(x, y).statistic` (variant 'b', the
/// default) and `scipy.stats.spearmanr(x, y).statistic`.
#[rustfmt::skip]
const CORRELATION: &[CorrelationCase] = &[
    ("no ties",
        &[0.12, 0.55, 0.31, 0.97, 0.44, 0.73, 0.08, 0.66, 0.29, 0.81],
        &[0.20, 0.50, 0.41, 0.88, 0.35, 0.79, 0.15, 0.52, 0.33, 0.91],
        0.911111111111111, 0.9757575757575757),
    ("ties in both, one pair tied in both",
        &[1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0, 5.0, 6.0],
        &[2.0, 1.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0],
        0.8642633970683908, 0.9406433721202788),
    ("negative, ties",
        &[0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.5, 0.4],
        &[0.1, 0.3, 0.2, 0.2, 0.5, 0.5, 0.4, 0.9],
        -0.7307692307692308, -0.8719512195121952),
    ("accuracies on 400 images, supernet vs stand-alone",
        &[0.9125, 0.905, 0.9125, 0.8975, 0.92, 0.905, 0.885, 0.9175, 0.9, 0.8975, 0.91, 0.8925],
        &[0.9350, 0.93, 0.9325, 0.925, 0.94, 0.9275, 0.91, 0.9375, 0.93, 0.9225, 0.9325, 0.92],
        0.9291626628143502, 0.9770738300137637),
];

#[test]
fn kendall_tau_b_matches_scipy() {
    for &(name, x, y, tau, _) in CORRELATION {
        close(name, kendall_tau_b(x, y).unwrap(), tau, EXACT_TOL);
        // symmetric in its arguments
        close(name, kendall_tau_b(y, x).unwrap(), tau, EXACT_TOL);
    }
}

#[test]
fn spearman_rho_matches_scipy() {
    for &(name, x, y, _, rho) in CORRELATION {
        close(name, spearman_rho(x, y).unwrap(), rho, EXACT_TOL);
        close(name, spearman_rho(y, x).unwrap(), rho, EXACT_TOL);
    }
}

/// `scipy.stats.rankdata(x)` of the x and y of the "ties in both" and "accuracies" rows.
#[test]
fn ranks_match_scipy_rankdata() {
    let cases: [(&[f64], &[f64]); 4] = [
        (
            CORRELATION[1].1,
            &[1.0, 2.5, 2.5, 5.0, 5.0, 5.0, 7.0, 8.5, 8.5, 10.0],
        ),
        (
            CORRELATION[1].2,
            &[2.0, 1.0, 3.5, 3.5, 5.5, 5.5, 7.5, 7.5, 9.5, 9.5],
        ),
        (
            CORRELATION[3].1,
            &[9.5, 6.5, 9.5, 3.5, 12.0, 6.5, 1.0, 11.0, 5.0, 3.5, 8.0, 2.0],
        ),
        (
            CORRELATION[3].2,
            &[
                10.0, 6.5, 8.5, 4.0, 12.0, 5.0, 1.0, 11.0, 6.5, 3.0, 8.5, 2.0,
            ],
        ),
    ];
    for (x, want) in cases {
        assert_eq!(ranks(x), want);
    }
}

#[test]
fn top_k_overlap_small_example() {
    // x's top 3 by value: 0 (0.9), 2 (0.8), 4 (0.7); y's top 3: 2 (0.95), 1 (0.9), 0 (0.85).
    let x = [0.9, 0.1, 0.8, 0.3, 0.7, 0.2];
    let y = [0.85, 0.9, 0.95, 0.1, 0.2, 0.3];
    close("top-1", top_k_overlap(&x, &y, 1).unwrap(), 0.0, EXACT_TOL);
    close("top-2", top_k_overlap(&x, &y, 2).unwrap(), 0.5, EXACT_TOL);
    close(
        "top-3",
        top_k_overlap(&x, &y, 3).unwrap(),
        2.0 / 3.0,
        EXACT_TOL,
    );
    close("top-4", top_k_overlap(&x, &y, 4).unwrap(), 0.5, EXACT_TOL);
    close("top-6", top_k_overlap(&x, &y, 6).unwrap(), 1.0, EXACT_TOL);
    assert_eq!(top_k_overlap(&x, &y, 0), None);
    assert_eq!(top_k_overlap(&x, &y, 7), None);
    assert_eq!(top_k_overlap(&x, &y[..5], 2), None);
}

#[test]
fn top_k_overlap_breaks_boundary_ties_by_lower_index() {
    // x ties indices 1, 2 and 3 at the boundary of its top 2: index 0 and then index 1 get in.
    let x = [0.9, 0.5, 0.5, 0.5];
    assert_eq!(top_k_overlap(&x, &[4.0, 3.0, 2.0, 1.0], 2), Some(1.0));
    assert_eq!(top_k_overlap(&x, &[4.0, 2.0, 3.0, 1.0], 2), Some(0.5));
    assert_eq!(top_k_overlap(&x, &[4.0, 1.0, 2.0, 3.0], 2), Some(0.5));
    // all tied: the first k indices on both sides
    let flat = [1.0; 5];
    assert_eq!(top_k_overlap(&flat, &flat, 3), Some(1.0));
    assert_eq!(
        top_k_overlap(&flat, &[0.0, 0.0, 0.0, 9.0, 9.0], 2),
        Some(0.0)
    );
}

/// 37 bootstrap statistics: `numpy.round(numpy.random.default_rng(7).normal(0.9, 0.02, 37), 6)`.
#[rustfmt::skip]
const SAMPLES: [f64; 37] = [
    0.900025, 0.905975, 0.894517, 0.882188, 0.890907, 0.880167, 0.901203, 0.926804, 0.890156,
    0.887591, 0.909797, 0.907138, 0.902108, 0.881391, 0.899415, 0.913906, 0.873116, 0.890848,
    0.861976, 0.874209, 0.863165, 0.895298, 0.874651, 0.905425, 0.903135, 0.896261, 0.849665,
    0.889226, 0.89903, 0.902266, 0.869397, 0.890445, 0.88043, 0.883823, 0.921218, 0.883849,
    0.89935,
];

#[test]
fn percentile_interval_matches_numpy_percentile() {
    // (confidence, lo, hi): numpy.percentile(SAMPLES, [50 * (1 - c), 100 - 50 * (1 - c)])
    let table = [
        (0.95, 0.8607448999999999, 0.9217766),
        (0.90, 0.8629272, 0.9153684),
        (0.50, 0.881391, 0.902108),
    ];
    for (conf, lo, hi) in table {
        let ci = percentile_interval(&SAMPLES, conf).unwrap();
        close(&format!("lo @{conf}"), ci.lo, lo, EXACT_TOL);
        close(&format!("hi @{conf}"), ci.hi, hi, EXACT_TOL);
    }
    // only the finite values count: non-finite ones change nothing
    let mut dirty = SAMPLES.to_vec();
    dirty.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
    dirty.rotate_left(5);
    assert_eq!(
        percentile_interval(&dirty, 0.95),
        percentile_interval(&SAMPLES, 0.95)
    );
    // numpy.percentile([3.0, 1.0, 2.0], [2.5, 97.5]) == [1.05, 2.95]
    let ci = percentile_interval(&[3.0, 1.0, 2.0], 0.95).unwrap();
    close("small lo", ci.lo, 1.05, EXACT_TOL);
    close("small hi", ci.hi, 2.95, EXACT_TOL);
    assert_eq!(percentile_interval(&[], 0.95), None);
    assert_eq!(percentile_interval(&[f64::NAN, f64::INFINITY], 0.95), None);
}

#[test]
fn median_matches_numpy_median() {
    // numpy.median(SAMPLES) and numpy.median(SAMPLES[:36])
    close("odd", median(&SAMPLES).unwrap(), 0.890907, EXACT_TOL);
    close(
        "even",
        median(&SAMPLES[..36]).unwrap(),
        0.8908775,
        EXACT_TOL,
    );
    assert_eq!(median(&[f64::NAN]), None);
}

#[test]
fn resampler_is_deterministic_per_seed() {
    let a = Resampler::new(42).indices(1000);
    let b = Resampler::new(42).indices(1000);
    let c = Resampler::new(43).indices(1000);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 1000);
    assert!(a.iter().chain(&c).all(|&i| i < 1000));
    // a clone continues the same stream
    let mut r = Resampler::new(9);
    r.indices(17);
    let mut s = r.clone();
    assert_eq!(r.indices(50), s.indices(50));
    // successive calls continue the stream rather than restart it
    let mut r = Resampler::new(42);
    assert_ne!(r.indices(1000), r.indices(1000));
}

#[test]
fn resampler_draws_are_uniform_enough() {
    // 200 resamples of 50: every index drawn, each about 200 times (binomial sd ~ 14).
    let mut r = Resampler::new(2024);
    let mut counts = [0u32; 50];
    for _ in 0..200 {
        for i in r.indices(50) {
            counts[i] += 1;
        }
    }
    assert!(
        counts.iter().all(|&c| (140..=260).contains(&c)),
        "{counts:?}"
    );
}

/// The first indices of three seeds, pinned to an independent Python implementation of the same
/// definition (xoshiro256++ seeded by SplitMix64, Lemire's bounded draw): a change in rand's
/// generator or in our mapping breaks reproducibility of every recorded bootstrap.
#[test]
fn resampler_stream_is_pinned() {
    assert_eq!(
        Resampler::new(42).indices(10),
        [8, 3, 9, 7, 7, 5, 1, 6, 2, 9]
    );
    assert_eq!(Resampler::new(0).indices(7), [2, 2, 2, 0, 3, 0, 6]);
    assert_eq!(
        Resampler::new(2024).indices(400)[..12],
        [209, 117, 97, 168, 299, 323, 391, 265, 38, 152, 236, 326]
    );
}
