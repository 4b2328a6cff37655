//! How fast the FLIQS policy converges on a space, for choosing its settings, without a
//! supernet: members are scored by a synthetic accuracy table (a gentle rise with log BitOps,
//! as on a trained supernet, plus a fixed per-member jitter of about the noise of a few
//! hundred validation images), so that only the controller's own dynamics are measured.
//!
//! ```text
//! cargo run --release -p qnas-search --example fliqs_convergence -- SPACE TARGET STEPS LR [ENTROPY] [SAMPLES] [SEEDS]
//! cargo run --release -p qnas-search --example fliqs_convergence -- spaces/presets/mnist.ron 0.25 200 0.05
//! ```
//!
//! Prints, per seed, the final entropy, the argmax's cost against the target, how many of the
//! last updates kept the argmax, and how many distinct members were asked (what a real search
//! would have to measure).
#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::path::Path;

use search::settings::cost_target;
use search::strategy::fliqs::{Fliqs, FliqsConfig};
use search::strategy::{Evaluation, Strategy, Trial};
use spaces::{Arch, FliqsSettings, Space};

/// A fixed pseudo-random number in [0, 1) per member.
fn jitter(arch: &Arch) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in arch.key().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        println!("usage: fliqs_convergence SPACE TARGET STEPS LR [ENTROPY] [SAMPLES] [SEEDS]");
        return;
    }
    let space = match Space::load(Path::new(&args[0])) {
        Ok(s) => s,
        Err(e) => {
            println!("{e}");
            return;
        }
    };
    let num = |i: usize, d: f64| args.get(i).and_then(|a| a.parse::<f64>().ok()).unwrap_or(d);
    let target = num(1, 0.25);
    let defaults = FliqsSettings::default();
    let settings = FliqsSettings {
        steps: num(2, 200.0) as u32,
        learning_rate: num(3, defaults.learning_rate),
        entropy: num(4, defaults.entropy),
        samples_per_step: num(5, 4.0) as u32,
        ..defaults
    };
    let seeds = num(6, 5.0) as u64;
    let largest = space.cost(&space.largest()).expect("largest").bitops as f64;
    println!(
        "steps {} lr {} entropy {} samples {} target {target}",
        settings.steps, settings.learning_rate, settings.entropy, settings.samples_per_step
    );
    for seed in 0..seeds {
        let cfg = FliqsConfig {
            steps: u64::from(settings.steps),
            delay: u64::from(settings.warmup_steps()),
            samples_per_step: settings.samples_per_step as usize,
            reward: settings.reward,
            beta: settings.beta,
            entropy_max: settings.entropy,
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
                    let accuracy = 0.97
                        + 0.01 * (bitops as f64 / largest).log10().max(-3.0)
                        + 0.01 * (jitter(a) - 0.5);
                    Trial {
                        arch: a.clone(),
                        eval: Evaluation { accuracy, bitops },
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
        println!(
            "seed {seed}: entropy {:.2} of {:.2} nats, argmax {:.3}x target, stable for the last {} of {} updates, {} distinct members asked",
            p.entropy,
            p.max_entropy,
            bitops / p.target_bitops,
            p.step - since,
            p.step,
            asked.len()
        );
    }
}
