//! How fast the FLIQS policy converges on a space, for choosing its settings, without a
//! supernet: members are scored by a synthetic accuracy table plus a fixed per-member jitter of
//! ±0.5 points (about the noise of a few hundred validation images), so that only the
//! controller's own dynamics are measured. Two tables:
//!
//! - `decade` (the default): a gentle rise of one point per decade of BitOps over the whole
//!   range, so that the most expensive members are also the most accurate;
//! - `saturating`: as on the trained default supernet, accuracy rises by 12 points per decade
//!   up to 1 GBitOps and is flat (98%) above it, so that near the larger targets accuracy
//!   differences are noise and the cost term is the only signal.
//!
//! ```text
//! cargo run --release -p qnas-search --example fliqs_convergence -- SPACE TARGET STEPS LR [ENTROPY] [SAMPLES] [SEEDS] [KEY=VALUE...]
//! cargo run --release -p qnas-search --example fliqs_convergence -- spaces/presets/mnist.ron 0.25 300 0.2 0.1 4 8 table=saturating
//! ```
//!
//! Keys: `table=decade|saturating`, `baseline=Ema|LeaveOneOut`, `collapse_within=None|F`,
//! `beta=B`, `first_seed=S`; the other settings are `search.fliqs`'s defaults. Prints, per
//! seed, the final entropy, the argmax's cost against the target, its table accuracy, how many
//! of the last updates kept the argmax, and how many distinct members were asked (what a real
//! search would have to measure); then a summary line.
#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::path::Path;

use search::settings::cost_target;
use search::strategy::fliqs::{Fliqs, FliqsConfig};
use search::strategy::{Evaluation, Strategy, Trial};
use spaces::{Arch, FliqsBaseline, FliqsSettings, Space};

/// A fixed pseudo-random number in [0, 1) per member.
fn jitter(arch: &Arch) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in arch.key().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The synthetic accuracy of `arch` at `bitops` (of `largest` for the whole space).
fn accuracy(saturating: bool, arch: &Arch, bitops: f64, largest: f64) -> f64 {
    let noise = 0.01 * (jitter(arch) - 0.5);
    if saturating {
        0.98 - 0.12 * (1e9 / bitops).log10().max(0.0) + noise
    } else {
        0.97 + 0.01 * (bitops / largest).log10().max(-3.0) + noise
    }
}

fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.3}-{hi:.3}")
}

fn main() {
    let (positional, keys): (Vec<String>, Vec<String>) =
        std::env::args().skip(1).partition(|a| !a.contains('='));
    if positional.len() < 4 {
        println!(
            "usage: fliqs_convergence SPACE TARGET STEPS LR [ENTROPY] [SAMPLES] [SEEDS] [KEY=VALUE...]"
        );
        return;
    }
    let space = match Space::load(Path::new(&positional[0])) {
        Ok(s) => s,
        Err(e) => {
            println!("{e}");
            return;
        }
    };
    let key = |k: &str| {
        keys.iter()
            .find_map(|a| a.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
    };
    let num = |i: usize, d: f64| {
        positional
            .get(i)
            .and_then(|a| a.parse::<f64>().ok())
            .unwrap_or(d)
    };
    let target = num(1, 0.25);
    let defaults = FliqsSettings::default();
    let saturating = key("table") == Some("saturating");
    let settings = FliqsSettings {
        steps: num(2, 200.0) as u32,
        learning_rate: num(3, defaults.learning_rate),
        entropy: num(4, defaults.entropy),
        samples_per_step: num(5, 4.0) as u32,
        baseline: match key("baseline") {
            Some("Ema") => FliqsBaseline::Ema,
            _ => defaults.baseline,
        },
        collapse_within: match key("collapse_within") {
            Some("None") => None,
            Some(t) => t.parse().ok().or(defaults.collapse_within),
            None => defaults.collapse_within,
        },
        beta: key("beta")
            .and_then(|b| b.parse().ok())
            .unwrap_or(defaults.beta),
        ..defaults
    };
    let seeds = num(6, 5.0) as u64;
    let first_seed = key("first_seed").and_then(|s| s.parse().ok()).unwrap_or(0);
    let largest = space.cost(&space.largest()).expect("largest").bitops as f64;
    println!(
        "steps {} lr {} entropy {} samples {} baseline {:?} collapse_within {:?} beta {} table {} target {target}",
        settings.steps,
        settings.learning_rate,
        settings.entropy,
        settings.samples_per_step,
        settings.baseline,
        settings.collapse_within,
        settings.beta,
        if saturating { "saturating" } else { "decade" },
    );
    let (mut ratios, mut entropies, mut accuracies) = (Vec::new(), Vec::new(), Vec::new());
    let (mut within, mut stable) = (0, 0);
    for seed in first_seed..first_seed + seeds {
        let cfg = FliqsConfig {
            steps: u64::from(settings.steps),
            delay: u64::from(settings.warmup_steps()),
            samples_per_step: settings.samples_per_step as usize,
            reward: settings.reward,
            beta: settings.beta,
            entropy_max: settings.entropy,
            collapse_within: settings.collapse_within,
            baseline: settings.baseline,
            learning_rate: settings.learning_rate,
            scope: settings.scope,
            target: cost_target(target),
            seed,
            ..FliqsConfig::default()
        };
        let mut f = Fliqs::new(&space, cfg).expect("valid settings");
        let mut asked = HashSet::new();
        let (mut last, mut since) = (String::new(), 0);
        while !f.finished() {
            let archs = f.ask(&space, settings.samples_per_step as usize);
            if archs.is_empty() {
                break;
            }
            let trials: Vec<Trial> = archs
                .iter()
                .map(|a| {
                    let bitops = space.cost(a).expect("cost").bitops;
                    asked.insert(a.key());
                    Trial {
                        arch: a.clone(),
                        eval: Evaluation {
                            accuracy: accuracy(saturating, a, bitops as f64, largest),
                            bitops,
                        },
                    }
                })
                .collect();
            f.tell(&space, &trials);
            if let Some(p) = f.policy(&space)
                && p.argmax.key() != last
            {
                last = p.argmax.key();
                since = p.step;
            }
        }
        let p = f.policy(&space).expect("a policy");
        let bitops = space.cost(&p.argmax).expect("cost").bitops as f64;
        let ratio = bitops / p.target_bitops;
        let acc = accuracy(saturating, &p.argmax, bitops, largest);
        let held = p.step - since;
        within += usize::from((ratio - 1.0).abs() <= 0.1);
        stable += usize::from(held >= p.step / 10);
        ratios.push(ratio);
        entropies.push(p.entropy);
        accuracies.push(acc);
        println!(
            "seed {seed}: entropy {:.2} of {:.2} nats, argmax {ratio:.3}x target, accuracy {:.2}%, stable for the last {held} of {} updates, {} distinct members asked",
            p.entropy,
            p.max_entropy,
            acc * 100.0,
            p.step,
            asked.len()
        );
    }
    println!(
        "summary: within 10% {within} of {seeds}, stable {stable} of {seeds}, ratio {}, entropy {}, accuracy {}",
        range(&ratios),
        range(&entropies),
        range(&accuracies)
    );
}
