//! Finite-difference checks of the gradients the supernet's training relies on.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};

fn loss(x: Tensor<4>, w: Tensor<4>, stride: usize, pad: usize) -> Tensor<1> {
    let y = conv2d(
        x,
        w,
        None,
        ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1),
    );
    (y.clone() * y).sum()
}

/// Compares autodiff with central differences for the weight (`wrt_input == false`) or the
/// input of a conv with kernel `k`, stride `stride` on `h x h` maps.
fn check(k: usize, stride: usize, h: usize, wrt_input: bool) {
    let device = Device::flex().autodiff();
    device.seed(42);
    let plain = Device::flex();
    let x = Tensor::<4>::random([2, 3, h, h], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<4>::random([4, 3, k, k], Distribution::Normal(0.0, 1.0), &device);
    let (x, w) = if wrt_input {
        (x.require_grad(), w)
    } else {
        (x, w.require_grad())
    };
    let pad = k / 2;
    let grads = loss(x.clone(), w.clone(), stride, pad).backward();
    let (var, shape) = if wrt_input {
        (x.clone(), [2, 3, h, h])
    } else {
        (w.clone(), [4, 3, k, k])
    };
    let g = var
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let v = var.detach().into_data().try_to_vec::<f32>().unwrap();
    let xp = Tensor::<4>::from_data(x.detach().into_data(), &plain);
    let wp = Tensor::<4>::from_data(w.detach().into_data(), &plain);
    let eps = 0.1f32; // the loss is quadratic: central differences are exact up to rounding
    let f = |vals: Vec<f32>| {
        let t = Tensor::<4>::from_data(burn::tensor::TensorData::new(vals, shape), &plain);
        let (a, b) = if wrt_input {
            (t, wp.clone())
        } else {
            (xp.clone(), t)
        };
        f64::from(loss(a, b, stride, pad).into_scalar::<f32>())
    };
    for i in [0usize, 5, 13, v.len() - 1] {
        let i = i.min(v.len() - 1);
        let mut up = v.clone();
        up[i] += eps;
        let mut down = v.clone();
        down[i] -= eps;
        let num = (f(up) - f(down)) / (2.0 * f64::from(eps));
        let ana = f64::from(g[i]);
        let what = if wrt_input { "input" } else { "weight" };
        assert!(
            (num - ana).abs() <= 1e-2 * num.abs().max(1.0),
            "k{k} s{stride} h{h} {what} {i}: numeric {num} vs autodiff {ana}"
        );
    }
}

#[test]
fn conv_weight_gradients_match_finite_differences() {
    for (k, s, h) in [
        (3, 1, 6),
        (3, 2, 6),
        (1, 2, 6),
        (1, 2, 7),
        (1, 1, 5),
        (5, 2, 9),
    ] {
        check(k, s, h, false);
    }
}

#[test]
fn conv_input_gradients_match_finite_differences() {
    for (k, s, h) in [
        (3, 1, 6),
        (3, 2, 6),
        (1, 2, 6),
        (1, 2, 7),
        (1, 1, 5),
        (5, 2, 9),
        (3, 2, 7),
    ] {
        check(k, s, h, true);
    }
}

fn supernet_input_gradient(block: &str) -> (Vec<f64>, Vec<f64>) {
    use spaces::Space;
    use supernet::{Phase, Supernet, SupernetConfig};
    let src = format!(
        r#"(version: 1, input: (channels: 1, height: 6, width: 6), classes: 3, stem: (width: [4]),
        stages: [(block: {block}, depth: [2], width: [6], stride: 2)])"#
    );
    let space = Space::parse(&src, "g.ron", "g").unwrap();
    let device = Device::flex().autodiff();
    // fixed inputs and weights: finite differences across a ReLU kink would be noise, not a bug
    device.seed(42);
    let cfg = SupernetConfig {
        zero_init_residual: false,
        ..SupernetConfig::default()
    };
    let net = Supernet::with_config(&space, &cfg, &device);
    let arch = space.largest();
    let x = Tensor::<4>::random([4, 1, 6, 6], Distribution::Normal(0.0, 1.0), &device);
    let labels = Tensor::<1, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(vec![0i64, 1, 2, 1], [4]),
        &device,
    );
    let ce = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
    let f = |x: Tensor<4>| ce.forward(net.forward(x, &arch, Phase::Train).unwrap(), labels.clone());
    let xg = x.clone().require_grad();
    let grads = f(xg.clone()).backward();
    let g = xg
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let xv = x.into_data().try_to_vec::<f32>().unwrap();
    let eps = 2e-3f32;
    let (mut num, mut ana) = (vec![], vec![]);
    for i in [0usize, 9, 20, 40, 77, 100] {
        let mut a = xv.clone();
        a[i] += eps;
        let mut b = xv.clone();
        b[i] -= eps;
        let t = |v: Vec<f32>| {
            f64::from(
                f(Tensor::<4>::from_data(
                    burn::tensor::TensorData::new(v, [4, 1, 6, 6]),
                    &device,
                ))
                .into_scalar::<f32>(),
            )
        };
        num.push((t(a) - t(b)) / (2.0 * f64::from(eps)));
        ana.push(f64::from(g[i]));
    }
    (num, ana)
}

#[test]
fn supernet_gradients_match_finite_differences() {
    for block in ["ConvBnRelu", "ResidualBasic"] {
        let (num, ana) = supernet_input_gradient(block);
        // a perturbation can push a ReLU input across zero; a wrong gradient misses everywhere
        let misses = num
            .iter()
            .zip(&ana)
            .filter(|(n, a)| (*n - *a).abs() > 0.05 * n.abs() + 1.5e-3)
            .count();
        assert!(misses <= 1, "{block}: numeric {num:?} vs autodiff {ana:?}");
    }
}
