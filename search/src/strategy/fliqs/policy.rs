//! The factorized categorical policy: one softmax over logits per decision, the entropy
//! schedule, and the REINFORCE gradient and Adam step on the logits.

use serde::{Deserialize, Serialize};

use super::config::FliqsConfig;

/// The entropy coefficient `β_H(t)` at step `t`: 0 before `delay`, then
/// `β_max·(1 − cos(π·(t − delay)/(steps − delay)))/2`, which is `β_max` at `t = steps`.
pub fn entropy_weight(entropy_max: f64, delay: u64, steps: u64, t: u64) -> f64 {
    if t < delay || steps <= delay {
        return 0.0;
    }
    let progress = ((t - delay) as f64 / (steps - delay) as f64).min(1.0);
    entropy_max * (1.0 - (std::f64::consts::PI * progress).cos()) / 2.0
}

/// `softmax(logits / temperature)`, numerically stable.
pub(super) fn softmax(logits: &[f64], temperature: f64) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits
        .iter()
        .map(|z| ((z - max) / temperature).exp())
        .collect();
    let total: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / total).collect()
}

/// The learned part of one decision: logits and Adam state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Policy {
    pub(super) logits: Vec<f64>,
    pub(super) m: Vec<f64>,
    pub(super) v: Vec<f64>,
    pub(super) adam_steps: u64,
}

/// One decision as the controller sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) enum Head {
    /// Not searched: always this choice.
    Fixed(usize),
    /// Searched.
    Learned(Policy),
}

/// The gradient of the batch loss with respect to one decision's logits: the average over
/// `n` trials of `−A·∇log π(a) + β_H·∇H(π)`, summed over the trials where the decision is
/// active (`(choice, advantage)` pairs). `None` when no trial uses the decision.
pub(super) fn policy_gradient(
    policy: &Policy,
    cfg: &FliqsConfig,
    beta_h: f64,
    active: impl Iterator<Item = (usize, f64)>,
    n: f64,
) -> Option<Vec<f64>> {
    let tau = cfg.temperature;
    let pi = softmax(&policy.logits, tau);
    let log_pi: Vec<f64> = pi
        .iter()
        .map(|&p| if p > 0.0 { p.ln() } else { 0.0 })
        .collect();
    let entropy: f64 = -pi.iter().zip(&log_pi).map(|(p, l)| p * l).sum::<f64>();
    // ∂H/∂z_k = −π_k (log π_k + H) / τ, the same for every trial.
    let d_entropy: Vec<f64> = pi
        .iter()
        .zip(&log_pi)
        .map(|(p, l)| -p * (l + entropy) / tau)
        .collect();
    let mut grad = vec![0.0; pi.len()];
    let mut used = false;
    for (choice, advantage) in active {
        used = true;
        for (k, g) in grad.iter_mut().enumerate() {
            let d_log_pi = (f64::from(k == choice) - pi[k]) / tau;
            *g += -advantage * d_log_pi + beta_h * d_entropy[k];
        }
    }
    used.then(|| grad.into_iter().map(|g| g / n).collect())
}

/// One Adam step (with bias correction) on a decision's logits.
pub(super) fn adam_step(policy: &mut Policy, cfg: &FliqsConfig, grad: &[f64]) {
    policy.adam_steps += 1;
    let t = policy.adam_steps as i32;
    let (b1, b2) = (cfg.adam_beta1, cfg.adam_beta2);
    let c1 = 1.0 - b1.powi(t);
    let c2 = 1.0 - b2.powi(t);
    for (k, &g) in grad.iter().enumerate() {
        policy.m[k] = b1 * policy.m[k] + (1.0 - b1) * g;
        policy.v[k] = b2 * policy.v[k] + (1.0 - b2) * g * g;
        let m_hat = policy.m[k] / c1;
        let v_hat = policy.v[k] / c2;
        policy.logits[k] -= cfg.learning_rate * m_hat / (v_hat.sqrt() + cfg.adam_epsilon);
    }
}
