//! The balanced mixture of supernets (Javan, Toews and Pedersoli, "Balanced Mixture of SuperNets
//! for Learning the CNN Pooling Architecture", 2023): `M` copies of the supernet's weights
//! ("models") share the `C` pooling configurations of a space, and each configuration is
//! trained mostly by the model on which it does best, while every model still gets its share of
//! the configurations.
//!
//! The state is a `C x M` matrix `W` whose entry `W[c][m]` is an exponential moving average of
//! the validation accuracy (a fraction in `[0, 1]`) of configuration `c` evaluated with model
//! `m`. Every entry starts at 0, so that an early evaluation moves its entry only by
//! `1 - ema_decay` of its accuracy and the first few evaluations do not lock a configuration to
//! whichever model happened to be tried first.
//!
//! The conditional `p(m | c)` is `softmax(T * W[c][:])`, then balanced so that the marginal
//! `p(m) = (1 / C) * sum_c p(m | c)` (configurations weighted uniformly) is uniform: every
//! column is divided by its marginal and every row renormalized (Sinkhorn-Knopp), until the
//! Kullback-Leibler divergence `KL(p(m) || uniform)` is below the tolerance or
//! [`MAX_BALANCE_ITERATIONS`] rounds have run. The iteration runs on logarithms, so a model
//! whose softmax probability underflows to 0 in plain arithmetic still gets its share.
//!
//! `T` multiplies accuracies (it is an inverse temperature): with the default `T = 5`, a model
//! better by 0.1 in accuracy is `e^0.5 = 1.65` times as likely before balancing; `T = 0` gives
//! uniform sampling, a large `T` (50 or more) sends nearly every configuration to its best
//! model.
//!
//! Nothing here touches tensors; the trainer holds the `M` weight sets and asks the mixture
//! which one to train ([`Mixture::sample_model`]) and which one evaluates a configuration during
//! the search ([`Mixture::assignment`]).

use serde::{Deserialize, Serialize};
use spaces::Rng;

/// Rounds of column/row normalization after which balancing stops even when the marginal is
/// not yet within the tolerance of uniform. A strictly positive matrix converges geometrically
/// and the matrices built here (`C` up to a few hundred, `T * W` within a few tens) take well
/// under 100 rounds; the cap bounds the cost of a pathological matrix, which is then returned
/// row-normalized but only approximately balanced ([`Balanced::converged`] is false).
pub const MAX_BALANCE_ITERATIONS: usize = 10_000;

/// Settings of a [`Mixture`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MixtureConfig {
    /// Inverse temperature `T` of `softmax(T * W[c][:])`; finite and non-negative.
    /// Default 5.0 (see the module documentation).
    pub temperature: f64,
    /// Decay of the moving average: `W <- decay * W + (1 - decay) * accuracy`; in `[0, 1)`.
    /// Default 0.9.
    pub ema_decay: f64,
    /// Balancing stops once `KL(marginal || uniform)` (in nats) is below this; finite and
    /// positive. Default 1e-4.
    pub tolerance: f64,
}

impl Default for MixtureConfig {
    fn default() -> Self {
        MixtureConfig {
            temperature: 5.0,
            ema_decay: 0.9,
            tolerance: 1e-4,
        }
    }
}

/// Impossible settings or arguments.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MixtureError {
    /// No models.
    #[error("a mixture needs at least one model (supernet copy), got 0")]
    NoModels,
    /// No configurations.
    #[error("a mixture needs at least one configuration, got 0")]
    NoConfigs,
    /// Temperature not finite or negative.
    #[error("mixture temperature must be finite and non-negative, got {0}")]
    Temperature(f64),
    /// EMA decay outside `[0, 1)`.
    #[error("mixture EMA decay must be in [0, 1), got {0}")]
    EmaDecay(f64),
    /// Tolerance not finite or not positive.
    #[error("mixture balancing tolerance must be finite and positive, got {0}")]
    Tolerance(f64),
    /// A configuration index out of range.
    #[error("configuration {index} is out of range: the mixture has {count} configurations")]
    ConfigOutOfRange {
        /// The index given.
        index: usize,
        /// The number of configurations.
        count: usize,
    },
    /// A model index out of range.
    #[error("model {index} is out of range: the mixture has {count} models")]
    ModelOutOfRange {
        /// The index given.
        index: usize,
        /// The number of models.
        count: usize,
    },
    /// An accuracy that is not a fraction.
    #[error("accuracy must be a fraction in [0, 1], got {0}")]
    Accuracy(f64),
    /// A deserialized matrix that does not match its sizes or holds non-finite values.
    #[error("mixture matrix is malformed: {0}")]
    Matrix(String),
}

/// The balanced conditional and how balancing went.
#[derive(Clone, Debug, PartialEq)]
pub struct Balanced {
    /// `p(model | config)`: one row per configuration, each summing to 1.
    pub conditional: Vec<Vec<f64>>,
    /// Column/row normalization rounds run.
    pub iterations: usize,
    /// `KL(marginal || uniform)` of the result, in nats.
    pub kl: f64,
    /// Whether `kl` is below the tolerance (false only when [`MAX_BALANCE_ITERATIONS`] ran out).
    pub converged: bool,
}

/// A balanced mixture of `models` supernets over `configs` configurations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawMixture", into = "RawMixture")]
pub struct Mixture {
    config: MixtureConfig,
    models: usize,
    /// `C` rows of `M` moving averages of accuracy.
    w: Vec<Vec<f64>>,
}

/// The serialized form, validated on the way in. `W`'s entries are written as decimal strings
/// (Rust's shortest round-trip form) so that a JSON round trip restores them bit for bit:
/// serde_json parses numbers with up to one ulp of error unless its `float_roundtrip` feature is
/// on, and a resumed run must sample exactly as the interrupted one would have.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RawMixture {
    config: MixtureConfig,
    models: usize,
    #[serde(with = "exact_matrix")]
    w: Vec<Vec<f64>>,
}

mod exact_matrix {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(w: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<Vec<String>> = w
            .iter()
            .map(|row| row.iter().map(|v| format!("{v:?}")).collect())
            .collect();
        text.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        let text = Vec::<Vec<String>>::deserialize(d)?;
        text.iter()
            .map(|row| {
                row.iter()
                    .map(|v| {
                        v.parse::<f64>()
                            .map_err(|_| D::Error::custom(format!("`{v}` is not a number")))
                    })
                    .collect()
            })
            .collect()
    }
}

impl From<Mixture> for RawMixture {
    fn from(m: Mixture) -> Self {
        RawMixture {
            config: m.config,
            models: m.models,
            w: m.w,
        }
    }
}

impl TryFrom<RawMixture> for Mixture {
    type Error = MixtureError;

    fn try_from(raw: RawMixture) -> Result<Self, MixtureError> {
        let mut m = Mixture::new(raw.w.len(), raw.models, raw.config)?;
        for (c, row) in raw.w.iter().enumerate() {
            if row.len() != raw.models {
                return Err(MixtureError::Matrix(format!(
                    "row {c} has {} entries, expected {}",
                    row.len(),
                    raw.models
                )));
            }
            if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                return Err(MixtureError::Matrix(format!("row {c} holds {v}")));
            }
        }
        m.w = raw.w;
        Ok(m)
    }
}

impl Mixture {
    /// A mixture of `models` supernets over `configs` configurations, every moving average at 0
    /// (uniform conditional).
    pub fn new(configs: usize, models: usize, config: MixtureConfig) -> Result<Self, MixtureError> {
        if models == 0 {
            return Err(MixtureError::NoModels);
        }
        if configs == 0 {
            return Err(MixtureError::NoConfigs);
        }
        if !config.temperature.is_finite() || config.temperature < 0.0 {
            return Err(MixtureError::Temperature(config.temperature));
        }
        if !(0.0..1.0).contains(&config.ema_decay) {
            return Err(MixtureError::EmaDecay(config.ema_decay));
        }
        if !config.tolerance.is_finite() || config.tolerance <= 0.0 {
            return Err(MixtureError::Tolerance(config.tolerance));
        }
        Ok(Mixture {
            config,
            models,
            w: vec![vec![0.0; models]; configs],
        })
    }

    /// The number of models `M`.
    pub fn models(&self) -> usize {
        self.models
    }

    /// The number of configurations `C`.
    pub fn configs(&self) -> usize {
        self.w.len()
    }

    /// The settings.
    pub fn settings(&self) -> &MixtureConfig {
        &self.config
    }

    /// The moving averages `W`: `C` rows of `M` entries.
    pub fn matrix(&self) -> &[Vec<f64>] {
        &self.w
    }

    /// Folds one validation accuracy (a fraction in `[0, 1]`) of `config` evaluated with
    /// `model` into the moving average: `W <- decay * W + (1 - decay) * accuracy`.
    pub fn update(
        &mut self,
        config: usize,
        model: usize,
        accuracy: f64,
    ) -> Result<(), MixtureError> {
        self.check_config(config)?;
        if model >= self.models {
            return Err(MixtureError::ModelOutOfRange {
                index: model,
                count: self.models,
            });
        }
        if !(0.0..=1.0).contains(&accuracy) {
            return Err(MixtureError::Accuracy(accuracy));
        }
        let d = self.config.ema_decay;
        let w = &mut self.w[config][model];
        *w = d * *w + (1.0 - d) * accuracy;
        Ok(())
    }

    /// The balanced conditional `p(model | config)` with its convergence details.
    pub fn balance(&self) -> Balanced {
        let m = self.models;
        let c = self.w.len();
        let t = self.config.temperature;
        // log p(m | c), rows normalized.
        let mut logp: Vec<Vec<f64>> = self
            .w
            .iter()
            .map(|row| {
                let mut r: Vec<f64> = row.iter().map(|w| t * w).collect();
                normalize_log_row(&mut r);
                r
            })
            .collect();
        let log_m = (m as f64).ln();
        let mut iterations = 0;
        let mut kl;
        loop {
            // log of the marginal: log((1 / C) * sum_c p(m | c)).
            let log_marginal: Vec<f64> = (0..m)
                .map(|j| log_sum_exp(logp.iter().map(|row| row[j])) - (c as f64).ln())
                .collect();
            kl = log_marginal
                .iter()
                .map(|&lq| lq.exp() * (lq + log_m))
                .sum::<f64>()
                .max(0.0);
            if kl < self.config.tolerance || iterations >= MAX_BALANCE_ITERATIONS {
                break;
            }
            for row in &mut logp {
                for (v, lq) in row.iter_mut().zip(&log_marginal) {
                    *v -= lq;
                }
                normalize_log_row(row);
            }
            iterations += 1;
        }
        let conditional = logp
            .into_iter()
            .map(|row| {
                let mut p: Vec<f64> = row.into_iter().map(f64::exp).collect();
                let s: f64 = p.iter().sum();
                p.iter_mut().for_each(|v| *v /= s);
                p
            })
            .collect();
        Balanced {
            conditional,
            iterations,
            kl,
            converged: kl < self.config.tolerance,
        }
    }

    /// The balanced conditional `p(model | config)`: `C` rows of `M` probabilities, each row
    /// summing to 1, whose average over the rows is uniform (within the tolerance).
    pub fn conditional(&self) -> Vec<Vec<f64>> {
        self.balance().conditional
    }

    /// The marginal `p(model)` of the balanced conditional over uniformly weighted
    /// configurations (uniform up to the tolerance).
    pub fn marginal(&self) -> Vec<f64> {
        column_means(&self.conditional(), self.models)
    }

    /// Draws the model that trains `config` this step from the balanced `p(model | config)`.
    /// With one model this is always 0 and draws nothing from `rng`.
    pub fn sample_model(&self, config: usize, rng: &mut Rng) -> Result<usize, MixtureError> {
        self.check_config(config)?;
        if self.models == 1 {
            return Ok(0);
        }
        let row = &self.conditional()[config];
        Ok(rng.weighted(row))
    }

    /// The model that evaluates `config` during the search: the argmax of the balanced
    /// `p(model | config)` (the lowest index among ties, so model 0 before any update).
    pub fn assignment(&self, config: usize) -> Result<usize, MixtureError> {
        self.check_config(config)?;
        Ok(self.assignments()[config])
    }

    /// [`Mixture::assignment`] of every configuration, balancing once.
    pub fn assignments(&self) -> Vec<usize> {
        self.conditional().iter().map(|row| argmax(row)).collect()
    }

    fn check_config(&self, config: usize) -> Result<(), MixtureError> {
        if config >= self.w.len() {
            return Err(MixtureError::ConfigOutOfRange {
                index: config,
                count: self.w.len(),
            });
        }
        Ok(())
    }
}

fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

fn normalize_log_row(row: &mut [f64]) {
    let lse = log_sum_exp(row.iter().copied());
    row.iter_mut().for_each(|v| *v -= lse);
}

fn column_means(rows: &[Vec<f64>], cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; cols];
    for row in rows {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    let n = rows.len() as f64;
    out.iter_mut().for_each(|o| *o /= n);
    out
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(w: &[Vec<f64>], config: MixtureConfig) -> Mixture {
        let mut m = Mixture::new(w.len(), w[0].len(), config).unwrap();
        m.w = w.to_vec();
        m
    }

    /// The default settings with a tight tolerance, for checks of the marginal within 1e-3.
    fn tight() -> MixtureConfig {
        MixtureConfig {
            tolerance: 1e-7,
            ..MixtureConfig::default()
        }
    }

    fn assert_balanced(m: &Mixture) {
        let b = m.balance();
        assert!(b.converged, "not converged: {b:?}");
        assert!(b.kl < m.settings().tolerance);
        for row in &b.conditional {
            let s: f64 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-12, "row sums to {s}");
            assert!(row.iter().all(|p| (0.0..=1.0).contains(p)));
        }
        let marginal = m.marginal();
        let u = 1.0 / m.models() as f64;
        for q in &marginal {
            assert!((q - u).abs() < 1e-3, "marginal {marginal:?}");
        }
    }

    #[test]
    fn balancing_makes_the_marginal_uniform() {
        // One model dominates every configuration.
        let mut rng = Rng::new(11);
        let skewed: Vec<Vec<f64>> = (0..36)
            .map(|_| {
                vec![
                    0.9 + 0.09 * rng.unit(),
                    0.1 * rng.unit(),
                    0.1 * rng.unit(),
                    0.1 * rng.unit(),
                ]
            })
            .collect();
        let m = filled(&skewed, tight());
        // Unbalanced, model 0 would take nearly everything.
        let raw0: f64 = skewed
            .iter()
            .map(|r| {
                let e: Vec<f64> = r.iter().map(|w| (5.0 * w).exp()).collect();
                e[0] / e.iter().sum::<f64>()
            })
            .sum::<f64>()
            / 36.0;
        assert!(raw0 > 0.9, "{raw0}");
        assert_balanced(&m);

        // Random matrices, several temperatures, including a hot one.
        for (seed, t) in [(1, 5.0), (2, 1.0), (3, 20.0), (4, 60.0)] {
            let mut rng = Rng::new(seed);
            let w: Vec<Vec<f64>> = (0..36)
                .map(|_| (0..4).map(|_| rng.unit()).collect())
                .collect();
            let cfg = MixtureConfig {
                temperature: t,
                ..tight()
            };
            assert_balanced(&filled(&w, cfg));
        }

        // Extreme contrast: exp(-T * 1) underflows in plain arithmetic.
        let w: Vec<Vec<f64>> = (0..36)
            .map(|c| vec![1.0, 0.0, if c % 2 == 0 { 0.5 } else { 0.0 }])
            .collect();
        let cfg = MixtureConfig {
            temperature: 800.0,
            ..tight()
        };
        assert_balanced(&filled(&w, cfg));
    }

    #[test]
    fn default_tolerance_bounds_the_marginal() {
        // KL(q || u) < 1e-4 bounds the L1 distance to uniform by sqrt(2 * 1e-4) (Pinsker).
        let mut rng = Rng::new(21);
        let w: Vec<Vec<f64>> = (0..36)
            .map(|_| {
                let mut r: Vec<f64> = (0..4).map(|_| 0.3 * rng.unit()).collect();
                r[0] += 0.6;
                r
            })
            .collect();
        let m = filled(&w, MixtureConfig::default());
        let b = m.balance();
        assert!(b.converged && b.kl < 1e-4 && b.iterations > 0, "{b:?}");
        let l1: f64 = m.marginal().iter().map(|q| (q - 0.25).abs()).sum();
        assert!(l1 < (2.0f64 * 1e-4).sqrt(), "{l1}");
    }

    #[test]
    fn balancing_reassigns_configs_where_the_dominant_model_is_least_ahead() {
        // Model 0 is better on both configurations, by a lot on config 0 and a little on
        // config 1. The balanced conditional is doubly stochastic with the same cross ratio as
        // the softmax: [[a, 1-a], [1-a, a]] with (a / (1-a))^2 = e^(5*0.8) / e^(5*0.1).
        let cfg = MixtureConfig {
            tolerance: 1e-12,
            ..MixtureConfig::default()
        };
        let m = filled(&[vec![0.9, 0.1], vec![0.9, 0.8]], cfg);
        let p = m.conditional();
        let ratio = (5.0f64 * 0.8).exp() / (5.0f64 * 0.1).exp();
        let a = ratio.sqrt() / (1.0 + ratio.sqrt());
        assert!((p[0][0] - a).abs() < 1e-5, "{p:?} vs {a}");
        assert!((p[1][1] - a).abs() < 1e-5, "{p:?} vs {a}");
        assert_eq!(m.assignments(), vec![0, 1]);
    }

    #[test]
    fn assignment_follows_accuracy() {
        // Model 1 is best on configurations 0..4, model 0 on 4..8, model 2 on 8..12.
        let mut m = Mixture::new(12, 3, tight()).unwrap();
        for _ in 0..30 {
            for c in 0..12 {
                let best = [1, 0, 2][c / 4];
                for model in 0..3 {
                    let acc = if model == best { 0.9 } else { 0.6 };
                    m.update(c, model, acc).unwrap();
                }
            }
        }
        for c in 0..12 {
            assert_eq!(m.assignment(c).unwrap(), [1, 0, 2][c / 4], "config {c}");
        }
        assert_balanced(&m);
    }

    #[test]
    fn ema_update() {
        let mut m = Mixture::new(2, 3, MixtureConfig::default()).unwrap();
        m.update(1, 2, 0.8).unwrap();
        assert!((m.matrix()[1][2] - 0.08).abs() < 1e-12);
        m.update(1, 2, 0.5).unwrap();
        assert!((m.matrix()[1][2] - (0.9 * 0.08 + 0.1 * 0.5)).abs() < 1e-12);
        assert_eq!(m.matrix()[0], vec![0.0; 3]);
        assert_eq!(m.matrix()[1][..2], [0.0, 0.0]);

        let cfg = MixtureConfig {
            ema_decay: 0.0,
            ..MixtureConfig::default()
        };
        let mut m = Mixture::new(1, 2, cfg).unwrap();
        m.update(0, 0, 0.7).unwrap();
        m.update(0, 0, 0.3).unwrap();
        assert_eq!(m.matrix()[0][0], 0.3);

        assert_eq!(m.update(0, 0, 1.5), Err(MixtureError::Accuracy(1.5)));
        assert!(matches!(
            m.update(0, 0, f64::NAN),
            Err(MixtureError::Accuracy(_))
        ));
        assert_eq!(
            m.update(1, 0, 0.5),
            Err(MixtureError::ConfigOutOfRange { index: 1, count: 1 })
        );
        assert_eq!(
            m.update(0, 2, 0.5),
            Err(MixtureError::ModelOutOfRange { index: 2, count: 2 })
        );
    }

    #[test]
    fn initially_uniform() {
        let m = Mixture::new(5, 4, MixtureConfig::default()).unwrap();
        for row in m.conditional() {
            assert_eq!(row, vec![0.25; 4]);
        }
        assert_eq!(m.balance().iterations, 0);
        assert_eq!(m.assignments(), vec![0; 5]);
    }

    #[test]
    fn one_model_is_always_model_zero() {
        let mut m = Mixture::new(7, 1, MixtureConfig::default()).unwrap();
        for c in 0..7 {
            m.update(c, 0, 0.1 * c as f64).unwrap();
        }
        assert_eq!(m.conditional(), vec![vec![1.0]; 7]);
        assert_eq!(m.marginal(), vec![1.0]);
        let mut rng = Rng::new(5);
        let before = rng.clone();
        for c in 0..7 {
            assert_eq!(m.sample_model(c, &mut rng).unwrap(), 0);
            assert_eq!(m.assignment(c).unwrap(), 0);
        }
        assert_eq!(rng, before, "one model draws nothing");
    }

    #[test]
    fn sampling_follows_the_conditional() {
        let m = filled(
            &[
                vec![0.9, 0.5, 0.1],
                vec![0.2, 0.3, 0.9],
                vec![0.5, 0.6, 0.4],
            ],
            MixtureConfig::default(),
        );
        let p = m.conditional();
        let mut rng = Rng::new(42);
        let n = 40_000;
        for (c, row) in p.iter().enumerate() {
            let mut counts = [0usize; 3];
            for _ in 0..n {
                counts[m.sample_model(c, &mut rng).unwrap()] += 1;
            }
            for (k, &count) in counts.iter().enumerate() {
                let f = count as f64 / n as f64;
                // 5 standard deviations of a binomial frequency at n = 40k is below 0.0125.
                assert!(
                    (f - row[k]).abs() < 0.0125,
                    "config {c}: {counts:?} vs {row:?}"
                );
            }
        }
        // Seeded: the same seed gives the same draws.
        let draws = |seed| {
            let mut r = Rng::new(seed);
            (0..50)
                .map(|i| m.sample_model(i % 3, &mut r).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_eq!(
            m.sample_model(3, &mut rng),
            Err(MixtureError::ConfigOutOfRange { index: 3, count: 3 })
        );
    }

    #[test]
    fn impossible_settings_are_errors() {
        let d = MixtureConfig::default();
        assert_eq!(Mixture::new(3, 0, d), Err(MixtureError::NoModels));
        assert_eq!(Mixture::new(0, 3, d), Err(MixtureError::NoConfigs));
        for t in [f64::NAN, f64::INFINITY, -1.0] {
            let cfg = MixtureConfig {
                temperature: t,
                ..d
            };
            assert!(matches!(
                Mixture::new(3, 3, cfg),
                Err(MixtureError::Temperature(_))
            ));
        }
        for e in [1.0, -0.1, f64::NAN] {
            let cfg = MixtureConfig { ema_decay: e, ..d };
            assert!(matches!(
                Mixture::new(3, 3, cfg),
                Err(MixtureError::EmaDecay(_))
            ));
        }
        for tol in [0.0, -1.0, f64::NAN] {
            let cfg = MixtureConfig {
                tolerance: tol,
                ..d
            };
            assert!(matches!(
                Mixture::new(3, 3, cfg),
                Err(MixtureError::Tolerance(_))
            ));
        }
        let zero_t = MixtureConfig {
            temperature: 0.0,
            ..d
        };
        let m = filled(&[vec![1.0, 0.0], vec![0.3, 0.2]], zero_t);
        assert_eq!(m.conditional(), vec![vec![0.5, 0.5]; 2]);
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let mut m = Mixture::new(4, 3, MixtureConfig::default()).unwrap();
        let mut rng = Rng::new(9);
        for _ in 0..20 {
            m.update(rng.below(4), rng.below(3), rng.unit()).unwrap();
        }
        let json = serde_json::to_string(&m).unwrap();
        let back: Mixture = serde_json::from_str(&json).unwrap();
        // Bit for bit, so that a resumed run samples as the interrupted one would have.
        assert_eq!(back, m);
        let mut a = Rng::new(3);
        let mut b = a.clone();
        for c in 0..4 {
            assert_eq!(m.sample_model(c, &mut a), back.sample_model(c, &mut b));
        }
        assert_eq!(back.conditional(), m.conditional());

        let bad_row = r#"{"config":{"temperature":5.0,"ema_decay":0.9,"tolerance":0.0001},
            "models":2,"w":[["0.1","0.2"],["0.3"]]}"#;
        let err = serde_json::from_str::<Mixture>(bad_row).unwrap_err();
        assert!(err.to_string().contains("row 1 has 1 entries"), "{err}");
        let bad_t = r#"{"config":{"temperature":-5.0,"ema_decay":0.9,"tolerance":0.0001},
            "models":2,"w":[["0.1","0.2"]]}"#;
        assert!(serde_json::from_str::<Mixture>(bad_t).is_err());
        let no_models = r#"{"config":{"temperature":5.0,"ema_decay":0.9,"tolerance":0.0001},
            "models":0,"w":[[]]}"#;
        assert!(serde_json::from_str::<Mixture>(no_models).is_err());
        let nan = r#"{"config":{"temperature":5.0,"ema_decay":0.9,"tolerance":0.0001},
            "models":2,"w":[["0.1","NaN"]]}"#;
        let err = serde_json::from_str::<Mixture>(nan).unwrap_err();
        assert!(err.to_string().contains("row 0 holds NaN"), "{err}");
    }
}
