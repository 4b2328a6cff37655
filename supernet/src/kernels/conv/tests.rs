//! Tests of the convolutions against an `f64` reference, on random and fixed shapes.

use super::*;
use crate::kernels::Isa;

/// The workspace's seeded generator, with the draws these tests need.
struct Rng(spaces::Rng);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0.below(n)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// Uniform values in [-1, 1).
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| (self.0.unit() * 2.0 - 1.0) as f32).collect()
    }
}

/// Input position of output `o` and tap `kt`, if inside `0..n`.
fn pos(o: usize, kt: usize, s: &ConvShape, n: usize) -> Option<usize> {
    (o * s.stride + kt)
        .checked_sub(s.padding())
        .filter(|&i| i < n)
}

/// Calls `f(b, oh, ow, co, ih, iw, ci, weight index)` for every term of the convolution.
fn each_term(s: &ConvShape, mut f: impl FnMut([usize; 3], usize, usize, usize)) {
    let cpg = s.in_channels / s.groups;
    let opg = s.out_channels / s.groups;
    let (k, h, w) = (s.kernel, s.height, s.width);
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    for b in 0..s.batch {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                for co in 0..s.out_channels {
                    let g = co / opg;
                    for cl in 0..cpg {
                        let ci = g * cpg + cl;
                        for kh in 0..k {
                            let Some(ih) = pos(oh, kh, s, h) else {
                                continue;
                            };
                            for kw in 0..k {
                                let Some(iw) = pos(ow, kw, s, w) else {
                                    continue;
                                };
                                let yi = ((b * oh_n + oh) * ow_n + ow) * s.out_channels + co;
                                let xi = ((b * h + ih) * w + iw) * s.in_channels + ci;
                                let wi = ((co * cpg + cl) * k + kh) * k + kw;
                                f([b, oh, ow], yi, xi, wi);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn reference(s: &ConvShape, x: &[f32], w: &[f32], dy: &[f32]) -> [Vec<f64>; 3] {
    let mut y = vec![0.0f64; s.output_len()];
    let mut dx = vec![0.0f64; s.input_len()];
    let mut dw = vec![0.0f64; s.weight_len()];
    each_term(s, |_, yi, xi, wi| {
        y[yi] += x[xi] as f64 * w[wi] as f64;
        dx[xi] += dy[yi] as f64 * w[wi] as f64;
        dw[wi] += x[xi] as f64 * dy[yi] as f64;
    });
    [y, dx, dw]
}

fn assert_close(what: &str, s: &ConvShape, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what} length for {s:?}");
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (*g as f64 - w).abs();
        assert!(
            err <= 1e-4 * scale + 1e-5 * w.abs(),
            "{what} of {s:?} at {i}: got {g}, want {w} (scale {scale})"
        );
    }
}

fn check_shape(s: &ConvShape, rng: &mut Rng) {
    let x = rng.vec(s.input_len());
    let w = rng.vec(s.weight_len());
    let dy = rng.vec(s.output_len());
    let [y, dx, dw] = reference(s, &x, &w, &dy);
    assert_close("forward", s, &forward(s, &x, &w), &y);
    assert_close("backward_data", s, &backward_data(s, &dy, &w), &dx);
    assert_close("backward_weight", s, &backward_weight(s, &x, &dy), &dw);
}

fn random_shape(rng: &mut Rng, depthwise: bool, narrow: bool) -> ConvShape {
    let chans: &[usize] = if narrow {
        &[1, 2, 3, 5, 8, 13, 16]
    } else {
        &[1, 3, 5, 16, 17, 24, 32, 40]
    };
    let cin = rng.pick(chans);
    let cout = if depthwise { cin } else { rng.pick(chans) };
    let kernel = rng.pick(&[1, 3, 3, 5, 7]);
    ConvShape {
        batch: 1 + rng.below(3),
        height: 1 + rng.below(11),
        width: 1 + rng.below(11),
        in_channels: cin,
        out_channels: cout,
        kernel,
        stride: rng.pick(&[1, 1, 2, 3]),
        groups: if depthwise { cin } else { 1 },
    }
}

#[test]
fn dense_matches_reference() {
    let mut rng = Rng(spaces::Rng::new(1));
    for i in 0..60 {
        let s = random_shape(&mut rng, false, i % 2 == 0);
        check_shape(&s, &mut rng);
    }
}

#[test]
fn depthwise_matches_reference() {
    let mut rng = Rng(spaces::Rng::new(2));
    for _ in 0..40 {
        let s = random_shape(&mut rng, true, false);
        check_shape(&s, &mut rng);
    }
    // more channels than one vector, awkward remainders
    for c in [96, 33] {
        let s = ConvShape {
            batch: 2,
            height: 7,
            width: 6,
            in_channels: c,
            out_channels: c,
            kernel: 3,
            stride: 2,
            groups: c,
        };
        check_shape(&s, &mut rng);
    }
}

#[test]
fn fixed_shapes_match_reference() {
    let mut rng = Rng(spaces::Rng::new(3));
    let shapes = [
        // (batch, h, w, cin, cout, k, stride, depthwise)
        (2, 9, 8, 16, 16, 3, 1, false),
        (1, 9, 9, 16, 32, 3, 2, false),
        (2, 8, 8, 32, 32, 3, 1, false),
        (1, 7, 5, 24, 96, 1, 1, false),
        (2, 7, 7, 32, 64, 1, 2, false),
        (1, 1, 1, 3, 5, 7, 1, false),
        (1, 2, 3, 3, 16, 7, 3, false),
        (1, 5, 5, 96, 96, 3, 1, true),
        (1, 1, 1, 8, 8, 5, 2, true),
        (3, 4, 4, 17, 1, 5, 1, false),
        (1, 18, 20, 16, 16, 3, 1, false),
        (1, 13, 11, 16, 8, 5, 2, false),
        // im2col tiles smaller than an image, and spanning image boundaries
        (2, 13, 13, 40, 24, 7, 1, false),
        (3, 12, 11, 40, 24, 7, 2, false),
        (5, 3, 3, 64, 20, 5, 1, false),
        (2, 5, 5, 96, 24, 3, 1, false),
    ];
    for (batch, height, width, cin, cout, kernel, stride, dw) in shapes {
        let s = ConvShape {
            batch,
            height,
            width,
            in_channels: cin,
            out_channels: cout,
            kernel,
            stride,
            groups: if dw { cin } else { 1 },
        };
        check_shape(&s, &mut rng);
    }
}

/// The direct and Winograd (3×3 and 5×5) kernels of narrow layers on each instruction set (AVX2 and the
/// portable code block their registers differently from AVX-512), against the reference, for
/// output channels that fill 1 to 4 vectors or a part of one, input channels under one vector,
/// odd image sizes (partial tiles) and pixel counts that need every block size.
#[test]
fn narrow_kernels_match_reference_on_every_isa() {
    let mut rng = Rng(spaces::Rng::new(5));
    for isa in [Isa::Best, Isa::Avx2, Isa::Portable] {
        for (cin, cout, kernel, stride, width) in [
            (16, 16, 3, 1, 31),
            (3, 16, 3, 1, 32),
            (64, 40, 3, 1, 8),
            (17, 33, 3, 1, 23),
            (32, 32, 3, 1, 16),
            (16, 32, 3, 2, 15),
            (3, 24, 3, 1, 13),
            (8, 5, 5, 1, 7),
            (24, 20, 1, 1, 9),
            (13, 9, 3, 3, 11),
            (64, 64, 3, 1, 9),
            (40, 48, 1, 2, 10),
            (32, 64, 3, 2, 17),
            (24, 24, 5, 1, 14),
            (32, 32, 5, 1, 7),
            (16, 24, 5, 1, 28),
            (8, 56, 3, 1, 10),
            (5, 8, 5, 2, 12),
        ] {
            let s = ConvShape {
                batch: 2,
                height: 5,
                width,
                in_channels: cin,
                out_channels: cout,
                kernel,
                stride,
                groups: 1,
            };
            let x = rng.vec(s.input_len());
            let w = rng.vec(s.weight_len());
            let dy = rng.vec(s.output_len());
            let [y, _, dw] = reference(&s, &x, &w, &dy);
            let wr = dense_repack(&s, &w);
            let got = narrow::narrow_forward_on(isa, &s, &x, &wr);
            assert_close(&format!("{isa:?} direct forward"), &s, &got, &y);
            if winograd::fits(&s) {
                let got = winograd::forward_on(isa, &s, &x, &wr);
                assert_close(&format!("{isa:?} Winograd forward"), &s, &got, &y);
            }
            // [(kh, kw, ci), co] -> OIHW
            let dwr = narrow::narrow_backward_weight_on(isa, &s, &x, &dy);
            let kk = kernel * kernel;
            let mut got = vec![0.0; s.weight_len()];
            for co in 0..cout {
                for ci in 0..cin {
                    for t in 0..kk {
                        got[(co * cin + ci) * kk + t] = dwr[(t * cin + ci) * cout + co];
                    }
                }
            }
            assert_close(&format!("{isa:?} backward_weight"), &s, &got, &dw);
        }
    }
}

/// The channel layouts of the direct and Winograd kernels (`lanes.rs`: AVX-512's 16 + 8 lanes
/// for 24 channels against AVX2's 3 × 8) keep each lane's sum in the same order, so they give
/// the same bits.
#[test]
fn channel_layouts_give_the_same_bits() {
    let mut rng = Rng(spaces::Rng::new(6));
    for (cin, cout, kernel) in [(16, 24, 5), (24, 24, 5), (3, 8, 3), (13, 40, 3), (8, 56, 1)] {
        let s = ConvShape {
            batch: 3,
            height: 9,
            width: 11,
            in_channels: cin,
            out_channels: cout,
            kernel,
            stride: 1,
            groups: 1,
        };
        let x = rng.vec(s.input_len());
        let w = rng.vec(s.weight_len());
        let dy = rng.vec(s.output_len());
        let wr = dense_repack(&s, &w);
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let forward = |isa| bits(narrow::narrow_forward_on(isa, &s, &x, &wr));
        let weight = |isa| bits(narrow::narrow_backward_weight_on(isa, &s, &x, &dy));
        assert_eq!(forward(Isa::Best), forward(Isa::Avx2), "forward {s:?}");
        assert_eq!(
            weight(Isa::Best),
            weight(Isa::Avx2),
            "backward-weight {s:?}"
        );
        if winograd::fits(&s) {
            let winograd = |isa| bits(winograd::forward_on(isa, &s, &x, &wr));
            assert_eq!(winograd(Isa::Best), winograd(Isa::Avx2), "Winograd {s:?}");
        }
    }
}

#[test]
fn thread_count_does_not_change_results() {
    let mut rng = Rng(spaces::Rng::new(4));
    let shapes = [
        (5, 10, 9, 16, 16, 3, 1, 1),
        (4, 12, 12, 32, 24, 3, 2, 1),
        (3, 9, 9, 40, 40, 1, 1, 1),
        (3, 9, 9, 40, 48, 3, 1, 1),
        (3, 9, 9, 40, 48, 3, 2, 1),
        (4, 9, 8, 24, 24, 5, 1, 24),
    ];
    for (batch, height, width, cin, cout, kernel, stride, groups) in shapes {
        let s = ConvShape {
            batch,
            height,
            width,
            in_channels: cin,
            out_channels: cout,
            kernel,
            stride,
            groups,
        };
        let x = rng.vec(s.input_len());
        let w = rng.vec(s.weight_len());
        let dy = rng.vec(s.output_len());
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    [
                        forward(&s, &x, &w),
                        backward_data(&s, &dy, &w),
                        backward_weight(&s, &x, &dy),
                    ]
                })
        };
        let one = run(1);
        let two = run(2);
        for (a, b) in one.iter().zip(&two) {
            for (u, v) in a.iter().zip(b) {
                assert!(
                    (u - v).abs() <= 1e-5 * u.abs().max(1e-3),
                    "{s:?}: {u} vs {v}"
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "weight has 3 elements")]
fn rejects_wrong_lengths() {
    let s = ConvShape {
        batch: 1,
        height: 2,
        width: 2,
        in_channels: 1,
        out_channels: 1,
        kernel: 3,
        stride: 1,
        groups: 1,
    };
    forward(&s, &[0.0; 4], &[0.0; 3]);
}
