//! Tests of the batch-norm kernels against an `f64` reference and finite differences.

use super::*;

/// The workspace's seeded generator, mapped to uniform values in [-1, 1).
struct Rng(spaces::Rng);

impl Rng {
    fn uniform(&mut self) -> f32 {
        (self.0.unit() * 2.0 - 1.0) as f32
    }

    fn vec(&mut self, len: usize, center: f32, spread: f32) -> Vec<f32> {
        (0..len).map(|_| center + spread * self.uniform()).collect()
    }
}

const EPS: f32 = 1e-5;
const ACTS: [NormAct; 3] = [NormAct::None, NormAct::Relu, NormAct::Relu6];

fn act64(act: NormAct, v: f64) -> f64 {
    match act {
        NormAct::None => v,
        NormAct::Relu => v.max(0.0),
        NormAct::Relu6 => v.clamp(0.0, 6.0),
    }
}

fn passes64(act: NormAct, pre: f64) -> bool {
    match act {
        NormAct::None => true,
        NormAct::Relu => pre > 0.0,
        NormAct::Relu6 => pre > 0.0 && pre < 6.0,
    }
}

struct Reference {
    mean: Vec<f64>,
    var: Vec<f64>,
    pre: Vec<f64>,
    y: Vec<f64>,
}

/// The textbook forward in f64 (two passes, biased variance).
fn reference_forward(
    x: &[f32],
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    act: NormAct,
) -> Reference {
    let n = (x.len() / c) as f64;
    let mut mean = vec![0.0; c];
    for (i, &v) in x.iter().enumerate() {
        mean[i % c] += f64::from(v) / n;
    }
    let mut var = vec![0.0; c];
    for (i, &v) in x.iter().enumerate() {
        var[i % c] += (f64::from(v) - mean[i % c]).powi(2) / n;
    }
    let pre: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = i % c;
            f64::from(gamma[ch]) * (f64::from(v) - mean[ch]) / (var[ch] + eps).sqrt()
                + f64::from(beta[ch])
        })
        .collect();
    let y = pre.iter().map(|&p| act64(act, p)).collect();
    Reference { mean, var, pre, y }
}

/// The textbook backward in f64: `(dx, dgamma, dbeta)`.
fn reference_backward(
    x: &[f32],
    dy: &[f32],
    c: usize,
    gamma: &[f32],
    r: &Reference,
    eps: f64,
    mask: &[bool],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = (x.len() / c) as f64;
    let inv_std: Vec<f64> = r.var.iter().map(|&v| 1.0 / (v + eps).sqrt()).collect();
    let xhat = |i: usize| (f64::from(x[i]) - r.mean[i % c]) * inv_std[i % c];
    let g = |i: usize| {
        if mask[i] { f64::from(dy[i]) } else { 0.0 }
    };
    let mut dgamma = vec![0.0; c];
    let mut dbeta = vec![0.0; c];
    for i in 0..x.len() {
        dgamma[i % c] += g(i) * xhat(i);
        dbeta[i % c] += g(i);
    }
    let dx = (0..x.len())
        .map(|i| {
            let ch = i % c;
            f64::from(gamma[ch]) * inv_std[ch] / n * (n * g(i) - dbeta[ch] - xhat(i) * dgamma[ch])
        })
        .collect();
    (dx, dgamma, dbeta)
}

/// Max-norm closeness: `|a - b| <= tol * (1 + max |b|)`.
fn assert_close(what: &str, a: &[f32], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = 1.0 + b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&a, &b)) in a.iter().zip(b).enumerate() {
        assert!(
            (f64::from(a) - b).abs() <= tol * scale,
            "{what}[{i}]: {a} vs reference {b} (tolerance {})",
            tol * scale
        );
    }
}

fn check_case(rng: &mut Rng, rows: usize, c: usize, act: NormAct, center: f32, spread: f32) {
    let what = format!("rows {rows}, channels {c}, {act:?}, x ~ {center} ± {spread}");
    let x = rng.vec(rows * c, center, spread);
    let gamma = rng.vec(c, 1.0, 0.5);
    // Shifts around 1 so that ReLU6 sees both kinks.
    let beta = rng.vec(c, 1.0, 2.0);
    let dy = rng.vec(rows * c, 0.0, 1.0);
    let (y, stats) = batch_norm_train(&x, c, &gamma, &beta, EPS, act);
    let r = reference_forward(&x, c, &gamma, &beta, f64::from(EPS), act);
    // Relative to the spread for the statistics: a large mean must not spoil the variance.
    let sp = f64::from(spread);
    for ch in 0..c {
        assert!(
            (f64::from(stats.mean[ch]) - r.mean[ch]).abs() <= 1e-4 * sp + 1e-7 * r.mean[ch].abs(),
            "{what}: mean[{ch}] {} vs {}",
            stats.mean[ch],
            r.mean[ch]
        );
        assert!(
            (f64::from(stats.var[ch]) - r.var[ch]).abs() <= 1e-4 * sp * sp,
            "{what}: var[{ch}] {} vs {}",
            stats.var[ch],
            r.var[ch]
        );
        let inv = 1.0 / (r.var[ch] + f64::from(EPS)).sqrt();
        assert!((f64::from(stats.inv_std[ch]) - inv).abs() <= 1e-5 * inv);
    }
    // The f32 mean itself is only within half an ulp (6e-8 |mean|) of the truth, which is
    // up to ~1e-7 |mean| / spread in normalized units.
    let tol = 2e-5 + 2e-7 * f64::from(center.abs()) / sp;
    assert_close(&format!("{what}: y"), &y, &r.y, tol);

    let (dx, dgamma, dbeta) = batch_norm_train_backward(&x, &y, &dy, c, &gamma, &stats, act);
    // The mask comes from the kernel's own output (as documented): near a kink the f64
    // pre-activation may fall on the other side.
    let mask: Vec<bool> = y.iter().map(|&v| passes64(act, f64::from(v))).collect();
    let (rdx, rdgamma, rdbeta) = reference_backward(&x, &dy, c, &gamma, &r, f64::from(EPS), &mask);
    assert_close(&format!("{what}: dx"), &dx, &rdx, tol * 2.0);
    assert_close(&format!("{what}: dgamma"), &dgamma, &rdgamma, tol);
    assert_close(&format!("{what}: dbeta"), &dbeta, &rdbeta, 1e-5);
}

#[test]
fn matches_the_f64_reference() {
    let mut rng = Rng(spaces::Rng::new(1));
    for c in [1, 3, 16, 17, 64, 96] {
        for rows in [1, 2, 7, 1000, 5000] {
            for act in ACTS {
                check_case(&mut rng, rows, c, act, 0.3, 2.0);
            }
        }
    }
}

#[test]
fn large_mean_keeps_the_variance() {
    let mut rng = Rng(spaces::Rng::new(2));
    for c in [1, 3, 16, 64] {
        for rows in [7, 5000] {
            for act in ACTS {
                check_case(&mut rng, rows, c, act, 1000.0, 0.1);
            }
        }
    }
    // One constant channel: zero variance, y = beta.
    let x = vec![1000.0f32; 3000];
    let (y, stats) = batch_norm_train(&x, 1, &[2.0], &[0.5], EPS, NormAct::None);
    assert_eq!(stats.var, vec![0.0]);
    assert!(y.iter().all(|&v| v == 0.5));
}

/// The statistics stay accurate when the rows sampled for the pivot are outliers.
#[test]
fn outlying_pivot_rows_keep_the_variance() {
    let mut rng = Rng(spaces::Rng::new(7));
    let (rows, c) = (64 * 80, 16);
    let mut x = rng.vec(rows * c, 1000.0, 0.1);
    for i in 0..64 {
        let r = i * rows / 64;
        for v in &mut x[r * c..(r + 1) * c] {
            *v += 5.0;
        }
    }
    let gamma = vec![1.0; c];
    let beta = vec![0.0; c];
    let (y, stats) = batch_norm_train(&x, c, &gamma, &beta, 0.0, NormAct::None);
    let r = reference_forward(&x, c, &gamma, &beta, 0.0, NormAct::None);
    for ch in 0..c {
        let rel = (f64::from(stats.var[ch]) - r.var[ch]).abs() / r.var[ch];
        assert!(
            rel < 1e-4,
            "var[{ch}] {} vs {} ({rel:e})",
            stats.var[ch],
            r.var[ch]
        );
    }
    assert_close("y", &y, &r.y, 1e-3);
}

/// Central differences of `L = Σ w · y` in f64 around the reference, for all activations.
#[test]
fn reference_backward_matches_finite_differences() {
    let mut rng = Rng(spaces::Rng::new(3));
    let (rows, c) = (5, 3);
    let h = 1e-6;
    for act in ACTS {
        let x = rng.vec(rows * c, 0.0, 1.0);
        let gamma = rng.vec(c, 1.0, 0.5);
        let beta = rng.vec(c, 1.0, 2.0);
        let w = rng.vec(rows * c, 0.0, 1.0);
        let r = reference_forward(&x, c, &gamma, &beta, f64::from(EPS), act);
        let mask: Vec<bool> = r.pre.iter().map(|&p| passes64(act, p)).collect();
        let (dx, _, _) = reference_backward(&x, &w, c, &gamma, &r, f64::from(EPS), &mask);
        // The reference takes f32 inputs: difference in f64 by hand instead.
        let loss = |x: &[f64]| {
            let n = rows as f64;
            let mut mean = vec![0.0; c];
            for (i, &v) in x.iter().enumerate() {
                mean[i % c] += v / n;
            }
            let mut var = vec![0.0; c];
            for (i, &v) in x.iter().enumerate() {
                var[i % c] += (v - mean[i % c]).powi(2) / n;
            }
            x.iter()
                .enumerate()
                .map(|(i, &v)| {
                    let ch = i % c;
                    let pre = f64::from(gamma[ch]) * (v - mean[ch])
                        / (var[ch] + f64::from(EPS)).sqrt()
                        + f64::from(beta[ch]);
                    f64::from(w[i]) * act64(act, pre)
                })
                .sum::<f64>()
        };
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x64.clone(), x64.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (loss(&xp) - loss(&xm)) / (2.0 * h);
            assert!(
                (fd - dx[i]).abs() < 1e-5,
                "{act:?} dx[{i}]: {fd} vs {}",
                dx[i]
            );
        }
    }
}

/// Central differences of `L = Σ w · y` on the f32 kernels themselves (tiny case), for x,
/// gamma and beta; coordinates where a perturbation flips an activation mask are skipped.
#[test]
fn backward_matches_finite_differences() {
    let mut rng = Rng(spaces::Rng::new(4));
    let (rows, c) = (6, 3);
    let h = 1e-2f32;
    for act in ACTS {
        let x = rng.vec(rows * c, 0.0, 1.0);
        let gamma = rng.vec(c, 1.0, 0.5);
        let beta = rng.vec(c, 1.0, 2.0);
        let w = rng.vec(rows * c, 0.0, 1.0);
        let (y, stats) = batch_norm_train(&x, c, &gamma, &beta, EPS, act);
        let (dx, dgamma, dbeta) = batch_norm_train_backward(&x, &y, &w, c, &gamma, &stats, act);
        let mask =
            |y: &[f32]| -> Vec<bool> { y.iter().map(|&v| passes64(act, f64::from(v))).collect() };
        let run = |x: &[f32], gamma: &[f32], beta: &[f32]| {
            let (y, _) = batch_norm_train(x, c, gamma, beta, EPS, act);
            let loss: f64 = y.iter().zip(&w).map(|(&y, &w)| f64::from(y * w)).sum();
            (loss, mask(&y))
        };
        let base_mask = mask(&y);
        let mut checked = 0;
        let mut fd_check =
            |what: &str, grad: f32, plus: (f64, Vec<bool>), minus: (f64, Vec<bool>)| {
                if plus.1 != base_mask || minus.1 != base_mask {
                    return;
                }
                let fd = (plus.0 - minus.0) / (2.0 * f64::from(h));
                assert!(
                    (fd - f64::from(grad)).abs() < 2e-3 * (1.0 + fd.abs()),
                    "{act:?} {what}: finite difference {fd} vs {grad}"
                );
                checked += 1;
            };
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            fd_check(
                &format!("dx[{i}]"),
                dx[i],
                run(&xp, &gamma, &beta),
                run(&xm, &gamma, &beta),
            );
        }
        for ch in 0..c {
            let (mut gp, mut gm) = (gamma.clone(), gamma.clone());
            gp[ch] += h;
            gm[ch] -= h;
            fd_check(
                &format!("dgamma[{ch}]"),
                dgamma[ch],
                run(&x, &gp, &beta),
                run(&x, &gm, &beta),
            );
            let (mut bp, mut bm) = (beta.clone(), beta.clone());
            bp[ch] += h;
            bm[ch] -= h;
            fd_check(
                &format!("dbeta[{ch}]"),
                dbeta[ch],
                run(&x, &gamma, &bp),
                run(&x, &gamma, &bm),
            );
        }
        assert!(
            checked > x.len(),
            "{act:?}: only {checked} coordinates checked"
        );
    }
}

#[test]
fn affine_and_channel_sum() {
    let mut rng = Rng(spaces::Rng::new(5));
    for c in [1, 3, 16, 17, 64, 96, 200] {
        for rows in [0, 1, 2, 7, 1000, 5000] {
            let x = rng.vec(rows * c, 0.5, 4.0);
            let scale = rng.vec(c, 0.0, 2.0);
            let shift = rng.vec(c, 1.0, 3.0);
            for act in ACTS {
                let y = affine(&x, c, &scale, &shift, act);
                let r: Vec<f64> = x
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        act64(
                            act,
                            f64::from(v) * f64::from(scale[i % c]) + f64::from(shift[i % c]),
                        )
                    })
                    .collect();
                assert_close(
                    &format!("affine rows {rows} channels {c} {act:?}"),
                    &y,
                    &r,
                    1e-6,
                );
            }
            let s = channel_sum(&x, c);
            let mut r = vec![0.0f64; c];
            for (i, &v) in x.iter().enumerate() {
                r[i % c] += f64::from(v);
            }
            let tol = 1e-6 * (1.0 + rows as f64 * 4.5);
            for ch in 0..c {
                assert!(
                    (f64::from(s[ch]) - r[ch]).abs() <= tol,
                    "channel_sum rows {rows} channels {c}: [{ch}] {} vs {}",
                    s[ch],
                    r[ch]
                );
            }
        }
    }
}

#[test]
fn same_result_on_one_and_two_threads() {
    let mut rng = Rng(spaces::Rng::new(6));
    let on = |threads: usize, f: &(dyn Fn() -> Vec<Vec<f32>> + Sync)| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    };
    for (rows, c) in [(5000, 3), (20_000, 16), (3000, 96)] {
        let x = rng.vec(rows * c, 10.0, 3.0);
        let gamma = rng.vec(c, 1.0, 0.5);
        let beta = rng.vec(c, 1.0, 2.0);
        let dy = rng.vec(rows * c, 0.0, 1.0);
        for act in ACTS {
            let all = || {
                let (y, s) = batch_norm_train(&x, c, &gamma, &beta, EPS, act);
                let (dx, dg, db) = batch_norm_train_backward(&x, &y, &dy, c, &gamma, &s, act);
                vec![
                    y,
                    s.mean,
                    s.var,
                    s.inv_std,
                    dx,
                    dg,
                    db,
                    channel_sum(&dy, c),
                    affine(&x, c, &gamma, &beta, act),
                ]
            };
            assert_eq!(on(1, &all), on(2, &all), "rows {rows} channels {c} {act:?}");
        }
    }
}

#[test]
#[should_panic(expected = "whole number of rows")]
fn ragged_input_panics() {
    let _ = channel_sum(&[1.0; 10], 3);
}

#[test]
#[should_panic(expected = "`beta` has 2 values for 3 channels")]
fn wrong_parameter_length_panics() {
    let _ = batch_norm_train(&[1.0; 9], 3, &[1.0; 3], &[0.0; 2], EPS, NormAct::Relu);
}

#[test]
fn nan_passes_through_the_activations() {
    for act in [NormAct::None, NormAct::Relu, NormAct::Relu6] {
        let y = affine(&[f32::NAN, -1.0, 7.0], 1, &[1.0], &[0.0], act);
        assert!(y[0].is_nan(), "{act:?}");
        let (y, _) = batch_norm_train(&[f32::NAN, 1.0, 2.0], 1, &[1.0], &[0.0], 1e-5, act);
        assert!(y.iter().all(|v| v.is_nan()), "{act:?}: {y:?}");
    }
}

#[test]
fn add_act_and_its_gradient() {
    let a: Vec<f32> = (0..40000).map(|i| (i % 97) as f32 * 0.1 - 4.0).collect();
    let b: Vec<f32> = (0..40000).map(|i| (i % 89) as f32 * 0.05 - 1.0).collect();
    let dy: Vec<f32> = (0..40000).map(|i| (i % 13) as f32 - 6.0).collect();
    for act in [NormAct::None, NormAct::Relu, NormAct::Relu6] {
        let y = add_act(&a, &b, act);
        let dx = act_backward(&y, &dy, act);
        for i in 0..a.len() {
            let pre = a[i] + b[i];
            let (expected, pass) = match act {
                NormAct::None => (pre, true),
                NormAct::Relu => (pre.max(0.0), pre > 0.0),
                NormAct::Relu6 => (pre.clamp(0.0, 6.0), pre > 0.0 && pre < 6.0),
            };
            assert_eq!(y[i], expected, "{act:?} at {i}");
            assert_eq!(dx[i], if pass { dy[i] } else { 0.0 }, "{act:?} at {i}");
        }
    }
    assert!(add_act(&[f32::NAN], &[1.0], NormAct::Relu)[0].is_nan());
}
