//! Accuracy of supernet members on the shipped UCI digits.

use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};
use evaluators::accuracy::correct;
use evaluators::data::{DataKind, DataSpec};
use evaluators::{EvalConfig, recalibrate_and_evaluate};
use spaces::Space;
use supernet::Supernet;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn correct_counts_top1_hits() {
    let device = Device::flex();
    let logits = Tensor::<2>::from_data(
        TensorData::new(vec![0.1f32, 0.9, 0.8, 0.2, 0.3, 0.7], [3, 2]),
        &device,
    );
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 1, 1], [3]), &device);
    assert_eq!(correct(logits, labels), 2);
}

#[test]
fn recalibrated_evaluation_sees_every_validation_sample_and_is_deterministic() {
    let device = Device::flex();
    let space = Space::load(&root().join("spaces/presets/digits.ron")).unwrap();
    let data = DataSpec::new(DataKind::Mnist, "data/uci-digits-8x8")
        .load(&root())
        .unwrap();
    let train = data.train_loader(32).unwrap();
    let val = data.validation_loader(64).unwrap();
    let net = Supernet::new(&space, &device);
    let cfg = EvalConfig {
        recalibration_batches: 4,
        recalibration_epoch: 0,
    };
    let arch = space.largest();
    let a = recalibrate_and_evaluate(&net, &arch, &train, &val, cfg).unwrap();
    assert_eq!(a.total, data.validation.len());
    assert!(a.correct <= a.total);
    let b = recalibrate_and_evaluate(&net, &arch, &train, &val, cfg).unwrap();
    assert_eq!(a, b);
    assert!(
        recalibrate_and_evaluate(
            &net,
            &Space::load(&root().join("spaces/presets/mnist.ron"))
                .unwrap()
                .largest(),
            &train,
            &val,
            cfg
        )
        .is_err()
    );
}
