//! Supernet training on a small synthetic task: learning, resuming, failing loudly, and the
//! balanced mixture.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use spaces::{Rng, Space};
use supernet::{Phase, TrainError, Trainer};

/// 10 classes on 8x8 grey images: class k is a fixed random template plus noise.
fn batch(n: usize, rng: &mut Rng, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let templates: Vec<Vec<f32>> = (0..10)
        .map(|k| {
            let mut t = Rng::new(100 + k);
            (0..64).map(|_| t.normal() as f32).collect()
        })
        .collect();
    let mut px = vec![0f32; n * 64];
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let k = rng.below(10);
        labels.push(k as i64);
        for p in 0..64 {
            px[i * 64 + p] = templates[k][p] + 0.5 * rng.normal() as f32;
        }
    }
    (
        Tensor::from_data(TensorData::new(px, [n, 1, 8, 8]), device),
        Tensor::from_data(TensorData::new(labels, [n]), device),
    )
}

fn space(extra: &str) -> Space {
    let block = "ResidualBasic";
    let src = format!(
        r#"(
        version: 1,
        input: (channels: 1, height: 8, width: 8),
        classes: 10,
        stem: (width: [8, 16]),
        stages: [
            (block: {block}, depth: [1, 2], width: [16, 24], stride: 1),
            (block: {block}, depth: [1, 2], width: [24, 32], stride: 1),
        ],
        quantization: (weights: [Int(8), Fp32], activations: [Int(8), Fp32], tie: Stage),
        {extra}
    )"#
    );
    Space::parse(&src, "synthetic.ron", "synthetic").unwrap_or_else(|e| panic!("{e:?}"))
}

fn train_cfg(sampling: &str, steps: u32) -> String {
    let momentum = 0.9;
    format!(
        "train: (steps: {steps}, batch_size: 32, sampling: {sampling}, optimizer: Sgd(lr: 0.05, momentum: {momentum}, nesterov: true, weight_decay: 0.0), schedule: Constant(warmup_steps: 0)),"
    )
}

fn eval_largest(trainer: &Trainer, space: &Space, rng: &mut Rng) -> f64 {
    let device = Device::flex();
    let net = trainer.nets[0].valid();
    let arch = space.largest();
    let recal: Vec<_> = (0..4).map(|_| batch(32, rng, &device).0).collect();
    net.recalibrate(&arch, recal).unwrap();
    let (x, y) = batch(200, rng, &device);
    let logits = net.forward(x, &arch, Phase::Eval).unwrap();
    let pred = logits.argmax(1).squeeze_dim::<1>(1);
    pred.equal(y).int().sum().into_scalar::<i64>() as f64 / 200.0
}

#[test]
fn sandwich_training_learns_the_task() {
    let space = space(&train_cfg("Sandwich(random: 1)", 60));
    let device = Device::flex();
    let mut trainer = Trainer::new(&space, &device).unwrap();
    let mut rng = Rng::new(1);
    let before = eval_largest(&trainer, &space, &mut rng);
    let mut first = None;
    let mut last = None;
    for _ in 0..60 {
        let (x, y) = batch(32, &mut rng, &device);
        let r = trainer.step(x, y, None).unwrap();
        assert_eq!(r.members, 3);
        first.get_or_insert(r.largest_loss);
        last = Some(r);
    }
    let last = last.unwrap();
    assert_eq!(last.step, 60);
    assert!(
        last.largest_loss < first.unwrap() * 0.5,
        "loss {} -> {}",
        first.unwrap(),
        last.largest_loss
    );
    let after = eval_largest(&trainer, &space, &mut rng);
    assert!(
        after >= 0.9 && after > before + 0.3,
        "accuracy {before} -> {after} (chance is 0.1)"
    );
}

#[test]
fn restored_training_continues_exactly() {
    let space = space(&train_cfg("Sandwich(random: 1)", 20));
    let device = Device::flex();
    let mut a = Trainer::new(&space, &device).unwrap();
    let mut rng = Rng::new(3);
    for _ in 0..3 {
        let (x, y) = batch(16, &mut rng, &device);
        a.step(x, y, None).unwrap();
    }
    let bytes = a.weights_bytes().unwrap();
    let state = a.state.clone();
    let mut b = Trainer::new(&space, &device).unwrap();
    b.restore(bytes, state).unwrap();
    // every parameter is restored exactly
    let (pa, pb) = (floats(&a, true), floats(&b, true));
    assert!(!pa.is_empty());
    for (i, (x, y)) in pa.iter().zip(&pb).enumerate() {
        let d = x
            .iter()
            .zip(y)
            .map(|(u, v)| (u - v).abs())
            .fold(0f32, f32::max);
        assert!(
            d == 0.0 && x.len() == y.len(),
            "parameter {i} ({} values) differs by {d}",
            x.len()
        );
    }
    // and the next steps compute the same losses on the same members
    for _ in 0..4 {
        let (x, y) = batch(16, &mut rng, &device);
        let ra = a.step(x.clone(), y.clone(), None).unwrap();
        let rb = b.step(x, y, None).unwrap();
        assert_eq!(ra, rb);
    }
    let wa = a.nets[0].stem.bn.gamma.val().into_data();
    let wb = b.nets[0].stem.bn.gamma.val().into_data();
    assert_eq!(wa, wb);
}

#[test]
fn a_non_finite_loss_stops_training() {
    let space = space(&train_cfg("Uniform", 5));
    let device = Device::flex();
    let mut trainer = Trainer::new(&space, &device).unwrap();
    let mut rng = Rng::new(4);
    let (x, y) = batch(8, &mut rng, &device);
    let err = trainer.step(x.mul_scalar(f32::NAN), y, None).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { step: 1, .. }),
        "{err}"
    );
    assert_eq!(trainer.state.step, 0, "a failed step is not counted");
}

#[test]
fn sorted_levels_are_nested_and_train() {
    let space = space(&train_cfg("Sorted(levels: 4, per_step: 2)", 5));
    let levels: Vec<_> = (0..4)
        .map(|l| supernet::train::sorted_level(&space, l, 4))
        .collect();
    assert_eq!(levels[0], space.smallest());
    assert_eq!(levels[3], space.largest());
    let cost = |a| space.cost(a).unwrap().macs;
    assert!(levels.windows(2).all(|w| cost(&w[0]) <= cost(&w[1])));
    let device = Device::flex();
    let mut trainer = Trainer::new(&space, &device).unwrap();
    let mut rng = Rng::new(5);
    let (x, y) = batch(8, &mut rng, &device);
    assert_eq!(trainer.step(x, y, None).unwrap().members, 2);
}

#[test]
fn mixture_of_four_supernets_keeps_a_uniform_marginal() {
    let extra = format!(
        "downsampling: (configs: Choose(count: 1, from: [0, 2]), ops: [MaxPool, StridedConv]),\n{}",
        train_cfg("Sandwich(random: 0)", 30).replace(
            "schedule:",
            "mixture: (supernets: 4, temperature: 5.0, ema_decay: 0.9), schedule:"
        )
    );
    let space = space(&extra);
    assert_eq!(supernet::train::pooling_configs(&space), 4);
    let device = Device::flex();
    let mut trainer = Trainer::new(&space, &device).unwrap();
    assert_eq!(trainer.nets.len(), 4);
    let mut rng = Rng::new(6);
    let mut used = [0usize; 4];
    for _ in 0..30 {
        let (x, y) = batch(16, &mut rng, &device);
        let v = batch(16, &mut rng, &device);
        let r = trainer.step(x, y, Some(v)).unwrap();
        used[r.supernet] += 1;
    }
    let mix = trainer.state.mixture.as_ref().unwrap();
    assert!(
        mix.matrix().iter().flatten().any(|w| *w > 0.0),
        "the accuracy matrix was updated"
    );
    for m in mix.marginal() {
        assert!((m - 0.25).abs() < 1e-3, "marginal {:?}", mix.marginal());
    }
    assert!(used.iter().filter(|u| **u > 0).count() >= 2, "{used:?}");
}

#[test]
fn zero_initialized_residual_gammas_learn() {
    let space = space(
        &train_cfg("Sandwich(random: 0)", 5)
            .replace("train: (", "train: (zero_init_residual: true, "),
    );
    let device = Device::flex();
    let mut trainer = Trainer::new(&space, &device).unwrap();
    let gamma = |t: &Trainer| {
        t.nets[0].blocks[0]
            .layers
            .last()
            .unwrap()
            .bn
            .gamma
            .val()
            .abs()
            .sum()
            .into_scalar::<f32>()
    };
    assert_eq!(gamma(&trainer), 0.0);
    let mut rng = Rng::new(8);
    for _ in 0..3 {
        let (x, y) = batch(16, &mut rng, &device);
        trainer.step(x, y, None).unwrap();
    }
    assert!(
        gamma(&trainer) > 0.0,
        "the last batch norm of a residual block must train"
    );
}

/// Trains `arch` alone for `steps` steps on fixed batches; its logits on a fixed batch after
/// every step (training mode: batch statistics).
fn alone_logits(space: &Space, arch: &spaces::Arch, steps: usize) -> Vec<Vec<f32>> {
    let device = Device::flex();
    let mut t = Trainer::for_member(space, arch, &device).unwrap();
    let mut rng = Rng::new(5);
    let (probe, _) = batch(16, &mut Rng::new(77), &device);
    let plan = t.space().plan(arch).unwrap();
    let mut out = Vec::new();
    for _ in 0..=steps {
        let logits = t.nets[0]
            .valid()
            .forward_plan(probe.clone(), &plan, Phase::Train);
        out.push(
            logits
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        let (x, y) = batch(32, &mut rng, &device);
        t.step(x, y, None).unwrap();
    }
    out
}

#[test]
fn a_member_alone_learns_on_its_own_shapes() {
    let space = space(&train_cfg("Sandwich(random: 1)", 60));
    let arch = space.smallest();
    let device = Device::flex();
    let mut t = Trainer::for_member(&space, &arch, &device).unwrap();
    assert_eq!(t.member(), Some(&arch));
    // the network holds the member's weights at its shapes: the smallest widths only
    assert_eq!(t.space().stem.widths, vec![arch.stem.width]);
    assert_eq!(t.space().largest().stages[0].width, arch.stages[0].width);
    let mut rng = Rng::new(9);
    let mut first = 0.0;
    let mut last = 0.0;
    for i in 0..60 {
        let (x, y) = batch(32, &mut rng, &device);
        let r = t.step(x, y, None).unwrap();
        // one member a step, itself: no distillation, no sandwich
        assert_eq!(r.members, 1);
        if i == 0 {
            first = r.loss;
        }
        last = r.loss;
    }
    assert!(last < first * 0.5, "loss {first} -> {last}");
    // a member of another space is refused
    let mut other = arch.clone();
    other.stem.width = 5;
    assert!(matches!(
        Trainer::for_member(&space, &other, &device),
        Err(TrainError::Member(_))
    ));
}

#[test]
fn members_trained_side_by_side_get_the_weights_they_get_alone() {
    let space = space(&train_cfg("Sandwich(random: 1)", 10));
    let (a, b) = (space.smallest(), space.largest());
    let (wa, wb) = (alone_logits(&space, &a, 3), alone_logits(&space, &b, 3));
    assert_ne!(wa, wb);
    assert_eq!(wa, alone_logits(&space, &a, 3), "two runs alone differ");
    for _ in 0..3 {
        let (pa, pb) = std::thread::scope(|s| {
            let ha = s.spawn(|| alone_logits(&space, &a, 3));
            let hb = s.spawn(|| alone_logits(&space, &b, 3));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        for (step, (p, w)) in pa.iter().zip(&wa).enumerate() {
            assert!(
                p == w,
                "member a beside b differs from a alone after {step} steps"
            );
        }
        for (step, (p, w)) in pb.iter().zip(&wb).enumerate() {
            assert!(
                p == w,
                "member b beside a differs from b alone after {step} steps"
            );
        }
    }
}

#[test]
fn the_sandwich_trains_the_cheapest_member_when_asked() {
    let device = Device::flex();
    for (rule, cheapest_at) in [
        ("Cheapest", [true, true, true, true, true, true]),
        ("Alternate", [true, false, true, false, true, false]),
    ] {
        let space = space(&train_cfg(
            &format!("Sandwich(random: 1, smallest: {rule})"),
            6,
        ));
        let mut t = Trainer::new(&space, &device).unwrap();
        for (step, cheapest) in cheapest_at.iter().enumerate() {
            let members = t.draw_members(0);
            assert_eq!(members[0].1, space.largest());
            let small = &members[1].1;
            // always the smallest architecture; at the cheapest formats where the rule says so
            assert_eq!(small.stem, space.smallest().stem);
            assert_eq!(small.stages, space.smallest().stages);
            if *cheapest {
                assert_eq!(small, &space.smallest(), "{rule}, step {step}");
            }
            let mut rng = Rng::new(step as u64);
            let (x, y) = batch(8, &mut rng, &device);
            t.train_members(
                x,
                y,
                &members,
                supernet::Choice {
                    model: 0,
                    config: 0,
                    distill: true,
                    lr: 0.01,
                    dropout_on_every: false,
                },
                None,
            )
            .unwrap();
        }
    }
    // `RandomFormats` draws the smallest architecture's formats: over 40 draws not always
    // the cheapest
    let space = space(&train_cfg(
        "Sandwich(random: 1, smallest: RandomFormats)",
        40,
    ));
    let mut t = Trainer::new(&space, &device).unwrap();
    let draws: Vec<spaces::Arch> = (0..40).map(|_| t.draw_members(0)[1].1.clone()).collect();
    assert!(draws.iter().any(|a| a != &space.smallest()));
}

#[test]
fn the_sandwich_draws_its_random_members_by_cost_when_asked() {
    // the share of random members in the cheapest quarter of log BitOps, over 300 draws
    let cheap_share = |sampling: &str| {
        let space = space(&train_cfg(sampling, 300));
        let lo = (space.cost(&space.smallest()).unwrap().bitops as f64).ln();
        let hi = (space.cost(&space.largest()).unwrap().bitops as f64).ln();
        let mut t = Trainer::new(&space, &Device::flex()).unwrap();
        let cheap = (0..300)
            .filter(|_| {
                let members = t.draw_members(0);
                assert_eq!(members.len(), 3);
                assert_eq!(members[2].0, "random");
                let b = (space.cost(&members[2].1).unwrap().bitops as f64).ln();
                b < lo + (hi - lo) / 4.0
            })
            .count();
        cheap as f64 / 300.0
    };
    let uniform = cheap_share("Sandwich(random: 1, draw: Uniform)");
    // the default
    let by_cost = cheap_share("Sandwich(random: 1)");
    assert!(
        by_cost > 0.15 && by_cost > 2.0 * uniform,
        "cheapest quarter: {by_cost} by cost, {uniform} uniform"
    );
}

#[test]
fn a_mean_member_loss_descends_the_sum_over_the_members() {
    // the same initial supernet, batch and members: `Mean` reports (and descends) the members'
    // summed loss divided by their number, so its first step moves the weights less
    let device = Device::flex();
    let trainer = |loss: &str| {
        let cfg = train_cfg("Sandwich(random: 1, smallest: Cheapest)", 4)
            .replace("schedule:", &format!("member_loss: {loss}, schedule:"));
        let space = space(&cfg);
        let t = Trainer::new(&space, &device).unwrap();
        (space, t)
    };
    let (space, mut t_sum) = trainer("Sum");
    let (_, mut t_mean) = trainer("Mean");
    // initial weights come from the backend's shared generator: give both the same ones
    t_mean.nets[0] = t_sum.nets[0].clone();
    let before = t_sum.nets[0].valid();
    let (x, y) = batch(16, &mut Rng::new(3), &device);
    let arch = space.largest();
    let step = |t: &mut Trainer| {
        let members = t.draw_members(0);
        assert_eq!(members.len(), 3);
        let report = t
            .train_members(
                x.clone(),
                y.clone(),
                &members,
                supernet::Choice {
                    model: 0,
                    config: 0,
                    distill: true,
                    lr: 0.05,
                    dropout_on_every: false,
                },
                None,
            )
            .unwrap();
        let moved = (t.nets[0]
            .valid()
            .forward(x.clone(), &arch, Phase::Train)
            .unwrap()
            - before.forward(x.clone(), &arch, Phase::Train).unwrap())
        .abs()
        .mean()
        .into_scalar::<f32>();
        (report, moved)
    };
    let (sum, moved_sum) = step(&mut t_sum);
    let (mean, moved_mean) = step(&mut t_mean);
    // the same members on the same weights: the same member losses
    for (a, b) in sum.member_losses.iter().zip(&mean.member_losses) {
        assert!((a - b).abs() < 1e-5, "{sum:?} {mean:?}");
    }
    let members: f64 = sum.member_losses.iter().sum();
    assert!((sum.loss - members).abs() < 1e-4 * members, "{sum:?}");
    assert!(
        (mean.loss - members / 3.0).abs() < 1e-4 * members,
        "{mean:?}"
    );
    assert!(moved_mean < moved_sum, "{moved_mean} vs {moved_sum}");
}

/// The float tensors of the trainer's first supernet: the trained parameters alone, or with
/// the running statistics too.
fn floats(trainer: &Trainer, trained_only: bool) -> Vec<Vec<f32>> {
    struct Floats(Vec<Vec<f32>>, bool);
    impl burn::module::ModuleVisitor for Floats {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            if self.1 && !p.is_require_grad() {
                return;
            }
            self.0.push(
                p.val()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap(),
            );
        }
    }
    let mut f = Floats(vec![], trained_only);
    trainer.nets[0].visit(&mut f);
    f.0
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// Two replicas on the CPU's one `flex` device (flex has a single device, named twice) against
/// one device. Batch norm normalizes each shard with its own statistics, so a batch of two
/// distinct halves is not the same step on one device; a batch made of one half twice is: each
/// replica's shard is that half, and gradients weighted by the shards' shares and summed on
/// the main device must give the one device's update. Distinct halves check the split: the
/// first step's losses are the mean of each half trained alone.
#[test]
#[allow(clippy::print_stderr)]
fn two_replicas_match_one_device() {
    let space = space(&train_cfg("Sandwich(random: 1)", 8));
    let device = Device::flex();
    // every trainer draws its parameters in set_replicas, whatever the number of devices
    let mut one = Trainer::new(&space, &device).unwrap();
    one.set_replicas(std::slice::from_ref(&device)).unwrap();
    let mut two = Trainer::new(&space, &device).unwrap();
    two.set_replicas(&[device.clone(), device.clone()]).unwrap();
    assert_eq!(two.replicas().len(), 2);
    // the halves alone, for the first step
    let mut rng = Rng::new(11);
    let (xa, ya) = batch(16, &mut rng, &device);
    let (xb, yb) = batch(16, &mut rng, &device);
    let mut alone_a = Trainer::new(&space, &device).unwrap();
    alone_a.set_replicas(std::slice::from_ref(&device)).unwrap();
    let mut alone_b = Trainer::new(&space, &device).unwrap();
    alone_b.set_replicas(std::slice::from_ref(&device)).unwrap();
    let ra = alone_a.step(xa.clone(), ya.clone(), None).unwrap();
    let rb = alone_b.step(xb.clone(), yb.clone(), None).unwrap();
    let mut split = Trainer::new(&space, &device).unwrap();
    split
        .set_replicas(&[device.clone(), device.clone()])
        .unwrap();
    let rs = split
        .step(
            Tensor::cat(vec![xa, xb], 0),
            Tensor::cat(vec![ya, yb], 0),
            None,
        )
        .unwrap();
    for m in 0..rs.members {
        let mean = (ra.member_losses[m] + rb.member_losses[m]) / 2.0;
        assert!(
            close(rs.member_losses[m], mean, 1e-5),
            "member {m}: {} vs {mean}",
            rs.member_losses[m]
        );
        let acc = (ra.member_accuracies[m] + rb.member_accuracies[m]) / 2.0;
        assert!(close(rs.member_accuracies[m], acc, 1e-12));
    }
    // a half twice: the same losses as one device at every step, and the same weights after
    let mut worst_loss = 0f64;
    for step in 0..8 {
        let (x, y) = batch(16, &mut rng, &device);
        let r1 = one.step(x.clone(), y.clone(), None).unwrap();
        let r2 = two
            .step(
                Tensor::cat(vec![x.clone(), x], 0),
                Tensor::cat(vec![y.clone(), y], 0),
                None,
            )
            .unwrap();
        assert_eq!(r1.members, r2.members);
        for (m, (a, b)) in r1.member_losses.iter().zip(&r2.member_losses).enumerate() {
            assert!(close(*a, *b, 1e-4), "step {step} member {m}: {a} vs {b}");
            worst_loss = worst_loss.max((a - b).abs());
        }
        assert!(close(r1.loss, r2.loss, 1e-4), "{} vs {}", r1.loss, r2.loss);
    }
    let (p1, p2) = (floats(&one, false), floats(&two, false));
    assert_eq!(p1.len(), p2.len());
    let mut worst = 0f32;
    for (a, b) in p1.iter().zip(&p2) {
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs() / (1.0 + x.abs()));
        }
    }
    eprintln!(
        "one device vs two replicas: largest loss difference {worst_loss:e}, largest relative \
         weight difference {worst:e}"
    );
    assert!(worst < 1e-3, "largest relative weight difference {worst}");
}

#[test]
fn replicas_are_checked() {
    let space = space(&train_cfg("Sandwich(random: 1)", 8));
    let device = Device::flex();
    let mut t = Trainer::new(&space, &device).unwrap();
    assert!(matches!(t.set_replicas(&[]), Err(TrainError::Replicas(_))));
    let many = vec![device.clone(); 33];
    let e = t.set_replicas(&many).unwrap_err().to_string();
    assert!(e.contains("33 devices for batches of 32"), "{e}");
}
