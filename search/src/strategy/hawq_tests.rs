use super::*;
use crate::strategy::random::tests::{drive, space};
use spaces::rng::Rng;

/// Four format decisions (stem, stage 0, stage 1, head) of four formats each: 256 allocations, few
/// enough to enumerate.
const SPACE: &str = r#"(
    version: 1,
    input: (channels: 1, height: 8, width: 8),
    classes: 10,
    stem: (width: [4, 8]),
    stages: [
        (block: ConvBnRelu, depth: [1, 2], width: [8, 16], kernel: [3], stride: 2),
        (block: ResidualBasic, depth: [1], width: [16, 24], stride: 2),
    ],
    quantization: (
        weights: [Int(2), Int(4), Int(8), Fp32],
        activations: [Int(2), Int(4), Int(8), Fp32],
        tie: Stage,
        tie_weights_activations: false,
    ),
)"#;

/// Sensitivities that fall with the weight format's bits, with a seeded factor per decision.
fn sensitivity(space: &Space, seed: u64) -> Sensitivity {
    let mut rng = Rng::new(seed);
    let groups = candidates(space)
        .into_iter()
        .map(|(g, pairs)| {
            let scale = 0.1 + rng.unit() * 10.0;
            let options = pairs
                .into_iter()
                .map(|p| {
                    let bits = f64::from(p.weights.bits());
                    let omega = if bits >= 32.0 {
                        0.0
                    } else {
                        scale * 4f64.powf(-bits) * (1.0 + rng.unit())
                    };
                    (p, omega)
                })
                .collect();
            (g, GroupSensitivity { options })
        })
        .collect();
    Sensitivity { groups }
}

/// Every allocation of the candidates, with its BitOps and Ω.
fn brute_force(space: &Space, sens: &Sensitivity) -> Vec<(u64, f64, Arch)> {
    let cands: Vec<(String, Vec<FormatPair>)> = candidates(space).into_iter().collect();
    let mut out = Vec::new();
    let total: usize = cands.iter().map(|(_, p)| p.len()).product();
    for mut code in 0..total {
        let mut arch = space.largest();
        let mut omega = 0.0;
        for (g, pairs) in &cands {
            let p = pairs[code % pairs.len()];
            code /= pairs.len();
            arch.formats.insert(g.clone(), p);
            omega += sens.groups[g]
                .options
                .iter()
                .find(|(q, _)| *q == p)
                .unwrap()
                .1;
        }
        out.push((space.cost(&arch).unwrap().bitops, omega, arch));
    }
    out
}

#[test]
fn candidates_pair_each_weight_format_with_the_same_activation_format() {
    let space = space(SPACE);
    let c = candidates(&space);
    assert_eq!(c.len(), 4, "{c:?}"); // stem, s0, s1 and the classifier
    for pairs in c.values() {
        assert_eq!(pairs.len(), 4);
        assert!(pairs.iter().all(|p| p.weights == p.activations));
    }
    // where the activation list lacks the weight format: the cheapest at least as wide
    let other = self::space(&SPACE.replace(
        "activations: [Int(2), Int(4), Int(8), Fp32]",
        "activations: [Int(8), Fp32]",
    ));
    for pairs in candidates(&other).values() {
        let acts: Vec<String> = pairs.iter().map(|p| p.activations.to_string()).collect();
        assert_eq!(acts, ["int8", "int8", "int8", "fp32"]);
    }
}

#[test]
fn frontier_is_the_exact_least_omega_at_every_budget() {
    let space = space(SPACE);
    for seed in 0..5 {
        let sens = sensitivity(&space, seed);
        let front = frontier(&space, &sens).unwrap();
        let all = brute_force(&space, &sens);
        assert_eq!(all.len(), 256);
        // cheapest first, Ω strictly falling
        for w in front.windows(2) {
            assert!(w[0].bitops < w[1].bitops && w[0].omega > w[1].omega);
        }
        // each point's figures are its member's
        for a in &front {
            let (b, o, _) = all.iter().find(|(_, _, x)| *x == a.arch).unwrap();
            assert_eq!(*b, a.bitops);
            assert!((o - a.omega).abs() <= 1e-12 * o.abs().max(1.0));
        }
        // at every budget (each member's BitOps), the frontier's answer is the brute force's
        for (budget, _, _) in &all {
            let best = all
                .iter()
                .filter(|(b, _, _)| b <= budget)
                .map(|(_, o, _)| *o)
                .fold(f64::INFINITY, f64::min);
            let got = front.iter().rev().find(|a| a.bitops <= *budget).unwrap();
            assert!(
                (got.omega - best).abs() <= 1e-12 * best.abs().max(1.0),
                "seed {seed}, budget {budget}: frontier {} against {best}",
                got.omega
            );
        }
    }
}

#[test]
fn asks_the_papers_budget_first_then_spread_budgets() {
    let space = space(SPACE);
    let sens = sensitivity(&space, 7);
    let front = frontier(&space, &sens).unwrap();
    let members = allocations_for_budgets(&space, &front, 6);
    let paper = paper_budget(&space).unwrap();
    let first = space.cost(&members[0]).unwrap().bitops;
    assert!(first <= paper);
    let best_within = front.iter().rev().find(|a| a.bitops <= paper).unwrap();
    assert_eq!(members[0], best_within.arch);
    // the cheapest and the most expensive allocation are among them, without repeats
    assert!(members.contains(&front[0].arch));
    assert!(members.contains(&front[front.len() - 1].arch));
    let keys: std::collections::BTreeSet<String> = members.iter().map(Arch::key).collect();
    assert_eq!(keys.len(), members.len());
    assert!(members.len() <= 7);
    for m in &members {
        space.validate(m).unwrap();
    }
    // no int4/int8 pair in the space: no paper budget
    let floats = self::space(&SPACE.replace("Int(2), Int(4), Int(8), ", "E2M1, E4M3, "));
    assert_eq!(paper_budget(&floats), None);
}

#[test]
fn refuses_incomplete_or_invalid_sensitivities() {
    let space = space(SPACE);
    let mut sens = sensitivity(&space, 1);
    let first = sens.groups.keys().next().unwrap().clone();
    let mut missing = sens.clone();
    missing.groups.remove(&first);
    assert!(matches!(
        Hawq::new(&space, &missing, 8),
        Err(StrategyError::Invalid(m)) if m.contains(&first)
    ));
    if let Some(g) = sens.groups.get_mut(&first) {
        g.options[0].1 = f64::NAN;
    }
    assert!(matches!(
        Hawq::new(&space, &sens, 8),
        Err(StrategyError::Invalid(m)) if m.contains("not a finite number")
    ));
}

#[test]
fn asks_each_allocation_once_and_resumes_exactly() {
    let space = space(SPACE);
    let sens = sensitivity(&space, 3);
    let make = || Hawq::new(&space, &sens, 10).unwrap();
    let expected: Vec<String> = make().members().iter().map(Arch::key).collect();
    let (whole, s) = drive(&space, make(), make, 3, None);
    assert!(s.finished());
    assert_eq!(whole.concat(), expected);
    for k in [1, 2] {
        let (resumed, s) = drive(&space, make(), make, 3, Some(k));
        assert_eq!(resumed, whole, "interrupted after tell {k}");
        assert!(s.finished());
    }
    // a state of another allocation is refused
    let mut other = Hawq::new(&space, &sens, 2).unwrap();
    assert!(matches!(
        other.restore(make().save()),
        Err(StrategyError::State(_))
    ));
}
