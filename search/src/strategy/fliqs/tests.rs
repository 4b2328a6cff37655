//! Tests of the FLIQS controller.

use super::*;
use crate::strategy::Evaluation;
use spaces::DecisionKind;

const SPACE: &str = r#"(
        version: 1,
        input: (channels: 1, height: 8, width: 8),
        classes: 2,
        stem: (width: [4, 8]),
        stages: [(block: ConvBnRelu, depth: [1, 2], width: [8, 16], kernel: [1, 3], stride: 1)],
        quantization: (
            weights: [Int(2), Int(4), Int(8)],
            activations: [Int(2), Int(4), Int(8)],
            tie: Block,
            tie_weights_activations: true,
        ),
    )"#;

/// The small space of the controller's tests (also those of its dynamics).
pub(super) fn space() -> Space {
    Space::parse(SPACE, "fliqs-test.ron", "fliqs-test").unwrap()
}

/// A synthetic accuracy: 0.5 plus a bonus per active decision and choice.
fn quality(space: &Space, arch: &Arch) -> f64 {
    let enc = space.encode(arch);
    let mask = space.active_mask(&enc);
    let decisions = space.decisions();
    let mut q = 0.2;
    for ((d, &c), &active) in decisions.iter().zip(&enc).zip(&mask) {
        if !active {
            continue;
        }
        q += match (&d.kind, c) {
            (k, _) if k.is_format() => [0.0, 0.06, 0.09][c],
            (DecisionKind::Width { .. } | DecisionKind::StemWidth, 1) => 0.08,
            (DecisionKind::Kernel { .. }, 1) => 0.08,
            (DecisionKind::Depth { .. }, 1) => 0.08,
            _ => 0.0,
        };
    }
    q
}

fn evaluate(space: &Space, archs: Vec<Arch>) -> Vec<Trial> {
    archs
        .into_iter()
        .map(|arch| Trial {
            eval: Evaluation {
                accuracy: quality(space, &arch).clamp(0.0, 1.0),
                bitops: space.cost(&arch).unwrap().bitops,
            },
            arch,
        })
        .collect()
}

fn config() -> FliqsConfig {
    FliqsConfig {
        delay: 10,
        steps: 300,
        samples_per_step: 8,
        entropy_max: 0.05,
        reward: RewardKind::Absolute,
        beta: 0.1,
        target: CostTarget::Fraction(0.3),
        seed: 7,
        ..FliqsConfig::default()
    }
}

/// Runs `f` to the end of its budget; returns every batch it asked.
fn run(space: &Space, f: &mut Fliqs) -> Vec<Vec<Arch>> {
    let mut asked = Vec::new();
    while !f.finished() {
        let archs = f.ask(space, f.config().samples_per_step);
        asked.push(archs.clone());
        f.try_tell(space, &evaluate(space, archs)).unwrap();
    }
    asked
}

fn policy(f: &Fliqs, name: &str) -> Policy {
    let d = f.decisions.iter().position(|d| d.name == name).unwrap();
    match &f.heads[d] {
        Head::Learned(p) => p.clone(),
        Head::Fixed(_) => panic!("{name} is fixed"),
    }
}

#[test]
fn converges_to_the_unique_best_member() {
    let space = space();
    // The target: the largest architecture with int4 everywhere.
    let int4 = spaces::Format::Int(4);
    let all_int4 = space
        .with_uniform_formats(&space.largest(), int4, int4)
        .unwrap();
    let cfg = FliqsConfig {
        learning_rate: 0.03,
        entropy_max: 0.02,
        steps: 400,
        samples_per_step: 16,
        target: CostTarget::BitOps(space.cost(&all_int4).unwrap().bitops),
        ..config()
    };
    let mut f = Fliqs::new(&space, cfg.clone()).unwrap();
    // The best member by brute force, with a margin so that it is unambiguous.
    let mut scored: Vec<(f64, Arch)> = space
        .enumerate(100_000)
        .unwrap()
        .into_iter()
        .map(|a| {
            let r = f.reward(quality(&space, &a), space.cost(&a).unwrap().bitops);
            (r, a)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    assert!(scored.len() > 100, "{}", scored.len());
    assert!(scored[0].0 - scored[1].0 > 0.01, "{:?}", &scored[..2]);
    let best = scored[0].1.clone();
    // Not a trivial corner: neither the largest nor the smallest member.
    assert_ne!(best, space.largest());
    assert_ne!(best, space.smallest());

    let asked = run(&space, &mut f);
    assert_eq!(asked.len(), 400);
    assert!(f.finished());
    assert!(f.ask(&space, 3).is_empty());
    assert_eq!(f.recommendation(&space), Some(best.clone()));
    let p = f.probability(&space, &best).unwrap();
    assert!(p > 0.9, "probability of the best member {p}");

    // Deterministic with the seed; another seed samples differently.
    let mut again = Fliqs::new(&space, cfg.clone()).unwrap();
    assert_eq!(run(&space, &mut again), asked);
    assert_eq!(again, f);
    let mut other = Fliqs::new(&space, FliqsConfig { seed: 8, ..cfg }).unwrap();
    assert_ne!(other.ask(&space, 16), asked[0]);
}

#[test]
fn reward_formulas_match_hand_values() {
    let (q, t) = (0.8, 100.0);
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    // Over the target: C/C_T = 1.5.
    close(RewardKind::Absolute.reward(0.2, q, 150.0, t), 0.7);
    close(RewardKind::OneSided.reward(0.2, q, 150.0, t), 0.7);
    close(
        RewardKind::SoftExponential.reward(-0.07, q, 150.0, t),
        0.7776131547347975,
    );
    close(
        RewardKind::HardExponential.reward(-0.07, q, 150.0, t),
        0.7776131547347975,
    );
    // Under the target: C/C_T = 0.5; only the two-sided rewards care.
    close(RewardKind::Absolute.reward(0.2, q, 50.0, t), 0.7);
    close(RewardKind::OneSided.reward(0.2, q, 50.0, t), 0.8);
    close(
        RewardKind::SoftExponential.reward(-0.07, q, 50.0, t),
        0.839773346898454,
    );
    close(RewardKind::HardExponential.reward(-0.07, q, 50.0, t), 0.8);
    // On target every reward is Q.
    for k in [
        RewardKind::Absolute,
        RewardKind::OneSided,
        RewardKind::SoftExponential,
        RewardKind::HardExponential,
    ] {
        close(
            k.reward(if k.penalty_weight() { 0.2 } else { -0.07 }, q, t, t),
            q,
        );
    }

    // The controller resolves a fraction against the largest member's BitOps.
    let space = space();
    let largest = space.cost(&space.largest()).unwrap().bitops;
    let f = Fliqs::new(&space, config()).unwrap();
    close(f.target_bitops(), 0.3 * largest as f64);
    close(f.reward(0.9, largest), 0.9 - 0.1 * (1.0 / 0.3 - 1.0));
    let g = Fliqs::new(
        &space,
        FliqsConfig {
            target: CostTarget::BitOps(1000),
            reward: RewardKind::HardExponential,
            beta: -0.07,
            ..config()
        },
    )
    .unwrap();
    close(g.target_bitops(), 1000.0);
    close(g.reward(0.8, 1500), 0.7776131547347975);
}

#[test]
fn entropy_schedule() {
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    close(entropy_weight(0.4, 100, 300, 0), 0.0);
    close(entropy_weight(0.4, 100, 300, 99), 0.0);
    close(entropy_weight(0.4, 100, 300, 100), 0.0);
    close(entropy_weight(0.4, 100, 300, 150), 0.05857864376269049);
    close(entropy_weight(0.4, 100, 300, 200), 0.2);
    close(entropy_weight(0.4, 100, 300, 300), 0.4);
    // The controller uses it at its step.
    let space = space();
    let mut f = Fliqs::new(
        &space,
        FliqsConfig {
            delay: 2,
            steps: 6,
            entropy_max: 0.4,
            ..config()
        },
    )
    .unwrap();
    let mut seen = Vec::new();
    while !f.finished() {
        seen.push(f.entropy_coefficient());
        let archs = f.ask(&space, 2);
        f.try_tell(&space, &evaluate(&space, archs)).unwrap();
    }
    let want = [
        0.0,
        0.0,
        0.0,
        0.05857864376269049,
        0.2,
        0.4 * (1.0 - (0.75 * std::f64::consts::PI).cos()) / 2.0,
    ];
    assert_eq!(seen.len(), want.len());
    for (a, b) in seen.iter().zip(want) {
        close(*a, b);
    }
}

#[test]
fn warmup_samples_uniformly_and_leaves_the_policy_alone() {
    let space = space();
    let cfg = FliqsConfig {
        delay: 5,
        steps: 10,
        ..config()
    };
    let mut f = Fliqs::new(&space, cfg.clone()).unwrap();
    let fresh = f.clone();
    let mut ema: Option<f64> = None;
    for _ in 0..5 {
        assert!(f.in_warmup());
        let trials = evaluate(&space, f.ask(&space, 8));
        let mean = trials
            .iter()
            .map(|t| f.reward(t.eval.accuracy, t.eval.bitops))
            .sum::<f64>()
            / 8.0;
        f.try_tell(&space, &trials).unwrap();
        let b = ema.unwrap_or(mean);
        ema = Some(0.99 * b + (1.0 - 0.99) * mean);
    }
    assert_eq!(f.heads, fresh.heads, "warm-up changed the policy");
    assert_eq!(
        f.baseline(),
        ema,
        "the baseline follows the warm-up rewards"
    );
    assert!(!f.in_warmup());
    let trials = evaluate(&space, f.ask(&space, 8));
    f.try_tell(&space, &trials).unwrap();
    assert_ne!(
        f.heads, fresh.heads,
        "the first step after the warm-up learns"
    );

    // Warm-up samples are uniform even when the logits are not zero.
    let mut g = Fliqs::new(&space, FliqsConfig { delay: 1, ..cfg }).unwrap();
    for h in &mut g.heads {
        if let Head::Learned(p) = h {
            p.logits[0] = 50.0;
        }
    }
    let archs = g.ask(&space, 400);
    let width = space
        .decisions()
        .iter()
        .position(|d| d.name == "s0.width")
        .unwrap();
    let wide = archs.iter().filter(|a| space.encode(a)[width] == 1).count();
    assert!((150..250).contains(&wide), "{wide} of 400 wide");
    // After the warm-up the same logits put almost everything on choice 0.
    g.try_tell(&space, &evaluate(&space, archs)).unwrap();
    let archs = g.ask(&space, 400);
    assert!(archs.iter().all(|a| space.encode(a)[width] == 0));
}

#[test]
fn resume_is_exact() {
    let space = space();
    let cfg = FliqsConfig {
        delay: 3,
        steps: 40,
        samples_per_step: 4,
        // Not short decimals, so that a lossy float round trip would show.
        temperature: 1.0 / 3.0 + 0.5,
        learning_rate: 0.1 / 3.0,
        ..config()
    };
    let mut whole = Fliqs::new(&space, cfg.clone()).unwrap();
    let all = run(&space, &mut whole);

    let mut first = Fliqs::new(&space, cfg.clone()).unwrap();
    let mut asked = Vec::new();
    for _ in 0..17 {
        let archs = first.ask(&space, 4);
        asked.push(archs.clone());
        first.tell(&space, &evaluate(&space, archs));
    }
    let text = serde_json::to_string(&first.save()).unwrap();
    let mut resumed = Fliqs::new(&space, cfg).unwrap();
    resumed
        .restore(serde_json::from_str(&text).unwrap())
        .unwrap();
    assert_eq!(resumed, first);
    asked.extend(run(&space, &mut resumed));
    assert_eq!(asked, all);
    assert_eq!(resumed.logits(), whole.logits());
    assert_eq!(resumed, whole);
    assert_eq!(resumed.save(), whole.save());
}

#[test]
fn inactive_decisions_get_no_gradient() {
    let space = space();
    let mut f = Fliqs::new(
        &space,
        FliqsConfig {
            delay: 0,
            entropy_max: 1.0,
            ..config()
        },
    )
    .unwrap();
    let depth = space
        .decisions()
        .iter()
        .position(|d| d.name == "s0.depth")
        .unwrap();
    let with_depth = |f: &mut Fliqs, d: usize| -> Vec<Arch> {
        let mut out = Vec::new();
        while out.len() < 8 {
            out.extend(
                f.ask(&space, 8)
                    .into_iter()
                    .filter(|a| space.encode(a)[depth] == d),
            );
        }
        out.truncate(8);
        out
    };
    // One-block members: the second block's kernel and formats are inactive.
    let archs = with_depth(&mut f, 0);
    f.try_tell(&space, &evaluate(&space, archs)).unwrap();
    for name in ["s0.b1.kernel", "fmt[s0.b1]"] {
        let p = policy(&f, name);
        assert_eq!(p.logits, vec![0.0; p.logits.len()], "{name}");
        assert_eq!(p.adam_steps, 0, "{name}");
        assert!(p.m.iter().chain(&p.v).all(|x| *x == 0.0), "{name}");
    }
    for name in ["s0.b0.kernel", "fmt[s0.b0]", "s0.width", "s0.depth"] {
        assert_eq!(policy(&f, name).adam_steps, 1, "{name}");
        assert!(policy(&f, name).logits.iter().any(|z| *z != 0.0), "{name}");
    }
    // Two-block members move the second block; a later one-block batch leaves it where it
    // is, momentum included.
    let archs = with_depth(&mut f, 1);
    f.try_tell(&space, &evaluate(&space, archs)).unwrap();
    let moved = policy(&f, "fmt[s0.b1]");
    assert_eq!(moved.adam_steps, 1);
    assert!(moved.logits.iter().any(|z| *z != 0.0));
    let archs = with_depth(&mut f, 0);
    f.try_tell(&space, &evaluate(&space, archs)).unwrap();
    assert_eq!(policy(&f, "fmt[s0.b1]"), moved);
    assert_eq!(policy(&f, "fmt[s0.b0]").adam_steps, 3);
}

#[test]
fn gradient_matches_finite_differences() {
    // The analytic gradient of one decision against central differences of the loss.
    let cfg = FliqsConfig {
        temperature: 0.7,
        ..config()
    };
    let policy = Policy {
        logits: vec![0.3, -0.2, 0.9],
        m: vec![0.0; 3],
        v: vec![0.0; 3],
        adam_steps: 0,
    };
    let batch = [(0, 0.4), (2, -0.1), (2, 0.25)];
    let (beta_h, n) = (0.3, 4.0);
    let loss = |z: &[f64]| {
        let pi = softmax(z, cfg.temperature);
        let h: f64 = -pi.iter().map(|p| p * p.ln()).sum::<f64>();
        batch
            .iter()
            .map(|&(a, adv)| -adv * pi[a].ln() + beta_h * h)
            .sum::<f64>()
            / n
    };
    let g = policy_gradient(&policy, &cfg, beta_h, batch.iter().copied(), n).unwrap();
    for k in 0..3 {
        let mut hi = policy.logits.clone();
        let mut lo = policy.logits.clone();
        hi[k] += 1e-6;
        lo[k] -= 1e-6;
        let fd = (loss(&hi) - loss(&lo)) / 2e-6;
        assert!((g[k] - fd).abs() < 1e-7, "{k}: {} vs {fd}", g[k]);
    }
    assert!(policy_gradient(&policy, &cfg, beta_h, std::iter::empty(), n).is_none());
}

#[test]
fn formats_only_fixes_the_architecture() {
    let space = space();
    let mut f = Fliqs::new(
        &space,
        FliqsConfig {
            scope: FliqsScope::FormatsOnly,
            delay: 0,
            ..config()
        },
    )
    .unwrap();
    let largest = space.encode(&space.largest());
    let decisions = space.decisions();
    for (d, l) in decisions.iter().zip(f.logits()) {
        assert_eq!(l.is_some(), d.kind.is_format(), "{}", d.name);
    }
    for _ in 0..5 {
        let archs = f.ask(&space, 8);
        for a in &archs {
            let enc = space.encode(a);
            for (i, d) in decisions.iter().enumerate() {
                if !d.kind.is_format() {
                    assert_eq!(enc[i], largest[i], "{}", d.name);
                }
            }
        }
        f.try_tell(&space, &evaluate(&space, archs)).unwrap();
    }
    assert!(
        f.logits()
            .iter()
            .flatten()
            .any(|l| l.iter().any(|z| *z != 0.0))
    );
    let rec = f.recommendation(&space).unwrap();
    assert_eq!(rec.stages, space.largest().stages);
}

#[test]
fn impossible_settings_are_errors() {
    let space = space();
    let bad = [
        FliqsConfig {
            learning_rate: -0.05,
            ..config()
        },
        FliqsConfig {
            learning_rate: f64::NAN,
            ..config()
        },
        FliqsConfig {
            temperature: 0.0,
            ..config()
        },
        FliqsConfig {
            target: CostTarget::BitOps(0),
            ..config()
        },
        FliqsConfig {
            target: CostTarget::Fraction(0.0),
            ..config()
        },
        FliqsConfig {
            target: CostTarget::Fraction(-0.5),
            ..config()
        },
        FliqsConfig {
            steps: 0,
            delay: 0,
            ..config()
        },
        FliqsConfig {
            delay: 300,
            ..config()
        },
        FliqsConfig {
            samples_per_step: 0,
            ..config()
        },
        FliqsConfig {
            baseline_decay: 1.0,
            ..config()
        },
        FliqsConfig {
            adam_beta2: 1.0,
            ..config()
        },
        FliqsConfig {
            entropy_max: -0.1,
            ..config()
        },
        FliqsConfig {
            beta: -0.5,
            ..config()
        },
        FliqsConfig {
            reward: RewardKind::SoftExponential,
            beta: 0.07,
            ..config()
        },
    ];
    for cfg in bad {
        match Fliqs::new(&space, cfg.clone()) {
            Err(StrategyError::Invalid(msg)) => assert!(!msg.is_empty()),
            other => panic!("{cfg:?} gave {other:?}"),
        }
    }

    // Unknown fields are refused; every field has a default.
    assert!(serde_json::from_str::<FliqsConfig>(r#"{"learning_rat": 0.1}"#).is_err());
    assert_eq!(
        serde_json::from_str::<FliqsConfig>("{}").unwrap(),
        FliqsConfig::default()
    );
    assert!(FliqsConfig::default().validate().is_ok());
    let ron_cfg: FliqsConfig =
        ron::from_str("(reward: OneSided, target: BitOps(5000), steps: 20, delay: 2)").unwrap();
    assert_eq!(ron_cfg.target, CostTarget::BitOps(5000));

    // Bad tells and restores are errors that change nothing.
    let mut f = Fliqs::new(&space, config()).unwrap();
    let mut trials = evaluate(&space, f.ask(&space, 2));
    let before = f.clone();
    trials[1].eval.accuracy = f64::NAN;
    assert!(f.try_tell(&space, &trials).is_err());
    f.tell(&space, &trials);
    assert_eq!(f, before);
    let mut state = f.save();
    state["decisions"][0]["choices"] = 99.into();
    assert!(matches!(f.restore(state), Err(StrategyError::State(_))));
    assert!(matches!(
        f.restore(serde_json::json!({"step": 3})),
        Err(StrategyError::State(_))
    ));
    let other = Space::parse(
        &SPACE.replace("width: [4, 8]", "width: [4, 8, 12]"),
        "o.ron",
        "o",
    )
    .unwrap();
    assert!(f.try_ask(&other, 1).is_err());
    assert!(f.ask(&other, 1).is_empty());
    assert!(f.recommendation(&other).is_none());
    assert_eq!(f, before);

    // A spent budget refuses more tells.
    let mut g = Fliqs::new(
        &space,
        FliqsConfig {
            steps: 1,
            delay: 0,
            ..config()
        },
    )
    .unwrap();
    let trials = evaluate(&space, g.ask(&space, 2));
    g.try_tell(&space, &trials).unwrap();
    assert!(g.finished());
    assert!(g.try_tell(&space, &trials).is_err());
}
