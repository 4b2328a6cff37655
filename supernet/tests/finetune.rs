//! `StaticNet::forward_quantized`: on weights already on their grids and without autodiff it
//! is `forward`; on an autodiff device it trains (SGD lowers the loss), and the trained
//! weights, re-quantized through the deployment file, give the network `forward_quantized`
//! computed.

mod common;
use common::{input, max_abs_diff};

use std::path::PathBuf;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use spaces::{Arch, Format, Rng, Space};
use supernet::{StaticNet, Supernet};

fn preset(name: &str) -> Space {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets");
    Space::load(&dir.join(name)).unwrap()
}

/// The member `arch` cut out of `net`, recalibrated on a few random batches.
fn extracted(net: &Supernet, arch: &Arch, device: &Device) -> StaticNet {
    net.recalibrate(arch, (0..2).map(|_| input(&net.space, 8, device)))
        .unwrap();
    net.extract(arch).unwrap()
}

#[test]
fn forward_quantized_equals_forward_on_an_extracted_net() {
    let device = Device::flex();
    device.seed(3);
    let mut rng = Rng::new(9);
    // digits: plain and residual blocks; mnist; mobilenetv2: depthwise convs, inverted
    // residuals, a head conv
    for name in ["digits.ron", "mnist.ron", "mobilenetv2.ron"] {
        let space = preset(name);
        let net = Supernet::new(&space, &device);
        let mut archs = vec![space.largest(), space.smallest()];
        archs.extend((0..3).map(|_| space.sample_uniform(&mut rng)));
        for format in [Format::Int(4), Format::E4M3] {
            archs.push(
                space
                    .with_uniform_formats(&space.largest(), format, format)
                    .unwrap(),
            );
        }
        for (k, arch) in archs.iter().enumerate() {
            let model = extracted(&net, arch, &device);
            let x = input(&space, 4, &device);
            let d = max_abs_diff(model.forward(x.clone()), model.forward_quantized(x));
            assert!(
                d <= 1e-6,
                "{name} arch {k}: max |forward - forward_quantized| = {d}\n{}",
                arch.to_ron()
            );
        }
    }
}

#[test]
fn sgd_on_forward_quantized_lowers_the_loss_and_deploys_as_trained() {
    let plain = Device::flex();
    plain.seed(5);
    let space = preset("digits.ron");
    let arch = space
        .with_uniform_formats(&space.largest(), Format::Int(4), Format::Int(4))
        .unwrap();
    let model = extracted(&Supernet::new(&space, &plain), &arch, &plain);

    let device = plain.clone().autodiff();
    let mut net = model.fork(&device).train();
    let x = input(&space, 32, &device);
    let labels: Vec<i64> = (0..32).map(|i| i % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [32]), &device);
    let ce = CrossEntropyLossConfig::new().init(&device);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(0.9)
                .with_dampening(0.0)
                .with_nesterov(true),
        ))
        .init();
    let mut losses = Vec::new();
    for _ in 0..8 {
        let loss = ce.forward(net.forward_quantized(x.clone()), y.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(0.05, net, grads);
    }
    assert!(
        losses.iter().all(|l| l.is_finite()) && losses[losses.len() - 1] < 0.8 * losses[0],
        "losses {losses:?}"
    );

    // the trained weights are off the grid; the deployment file rounds them onto it, which is
    // exactly what forward_quantized computed
    let trained = net.valid();
    let bytes = trained.to_safetensors().unwrap();
    let deployed = StaticNet::from_safetensors(trained.plan.clone(), &bytes, &plain).unwrap();
    let xv = input(&space, 16, &plain);
    let d = max_abs_diff(
        trained.forward_quantized(xv.clone()),
        deployed.forward(xv.clone()),
    );
    assert!(d <= 1e-5, "max |trained (quantized) - deployed| = {d}");
    // and the float forward of the trained weights is not the same network
    assert!(max_abs_diff(trained.forward(xv.clone()), deployed.forward(xv)) > 1e-6);
}
