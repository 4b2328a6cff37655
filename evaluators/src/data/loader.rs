//! Batching on a background thread.
//!
//! A [`BatchLoader`] turns a [`Dataset`] into f32 batches (augmented, normalized) for one epoch
//! at a time. The batches are prepared on a worker thread and handed over through a bounded
//! channel, so the next batch is ready while the training thread computes; the conversion to
//! burn tensors happens on the consuming thread. The order of an epoch depends only on
//! `(seed, epoch)`, and the augmentation of a sample only on `(seed, epoch, sample index)`.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::dataset::{Dataset, ImageShape};
use super::error::{DataError, DataResult};
use super::rng::{Rng, STREAM_AUGMENT, STREAM_SHUFFLE};
use super::transform::{Augment, Normalization, apply_tables};

/// How a [`BatchLoader`] cuts an epoch into batches.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Samples per batch (the last batch may be smaller unless `drop_last`).
    pub batch_size: usize,
    /// Shuffle the samples anew each epoch (else: data-set order).
    pub shuffle: bool,
    /// Leave out the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Augmentation applied before normalization.
    pub augment: Augment,
    /// Seed of the shuffle and the augmentation.
    pub seed: u64,
    /// Batches prepared ahead of the consumer (at least 1).
    pub prefetch: usize,
}

impl LoaderConfig {
    /// Training: shuffled each epoch, augmented, every sample once per epoch.
    pub fn train(batch_size: usize, augment: Augment, seed: u64) -> Self {
        Self {
            batch_size,
            shuffle: true,
            drop_last: false,
            augment,
            seed,
            prefetch: 2,
        }
    }

    /// Evaluation: data-set order, no augmentation, every sample once.
    pub fn eval(batch_size: usize) -> Self {
        Self {
            batch_size,
            shuffle: false,
            drop_last: false,
            augment: Augment::NONE,
            seed: 0,
            prefetch: 2,
        }
    }
}

/// One batch in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// `[N, C, H, W]`.
    pub dims: [usize; 4],
    /// `N * C * H * W` normalized pixels.
    pub images: Vec<f32>,
    /// `N` class indices.
    pub labels: Vec<i64>,
    /// Index in the data set of each sample.
    pub indices: Vec<usize>,
}

impl HostBatch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch has no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Moves the batch onto `device` as burn tensors.
    pub fn to_device(self, device: &Device) -> Batch {
        let n = self.labels.len();
        let images = Tensor::<4>::from_data(TensorData::new(self.images, self.dims), device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(self.labels, [n]), device);
        Batch {
            images,
            labels,
            indices: self.indices,
        }
    }
}

/// One batch as burn tensors.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[N, C, H, W]`, normalized.
    pub images: Tensor<4>,
    /// `[N]` class indices.
    pub labels: Tensor<1, Int>,
    /// Index in the data set of each sample.
    pub indices: Vec<usize>,
}

/// Everything the worker needs, shared between epochs.
#[derive(Debug)]
struct Source {
    data: Arc<Dataset>,
    tables: Vec<[f32; 256]>,
    config: LoaderConfig,
}

/// Prepares the batches of one epoch.
#[derive(Debug)]
struct EpochPlan {
    source: Arc<Source>,
    epoch: u64,
    order: Vec<usize>,
    batches: usize,
}

impl EpochPlan {
    fn batch(&self, b: usize) -> HostBatch {
        let cfg = &self.source.config;
        let shape: ImageShape = self.source.data.shape();
        let start = b * cfg.batch_size;
        let end = (start + cfg.batch_size).min(self.order.len());
        let indices = self.order[start..end].to_vec();
        let n = indices.len();
        let mut images = vec![0f32; n * shape.len()];
        let mut labels = Vec::with_capacity(n);
        let mut scratch = vec![0u8; shape.len()];
        for (&i, out) in indices.iter().zip(images.chunks_exact_mut(shape.len())) {
            let src = self.source.data.image(i);
            let pixels = if cfg.augment.is_identity() {
                src
            } else {
                let mut rng = Rng::stream(cfg.seed, &[STREAM_AUGMENT, self.epoch, i as u64]);
                cfg.augment.apply_rng(src, shape, &mut rng, &mut scratch);
                &scratch
            };
            apply_tables(&self.source.tables, pixels, shape, out);
            labels.push(i64::from(self.source.data.label(i)));
        }
        HostBatch {
            dims: [n, shape.channels, shape.height, shape.width],
            images,
            labels,
            indices,
        }
    }
}

/// Cuts a data set into normalized (and, for training, augmented) batches.
#[derive(Debug, Clone)]
pub struct BatchLoader {
    source: Arc<Source>,
    normalization: Normalization,
}

impl BatchLoader {
    /// A loader over `data`. `normalization` must fit the data's channels; `batch_size` and
    /// `prefetch` must be at least 1.
    pub fn new(
        data: Arc<Dataset>,
        normalization: Normalization,
        config: LoaderConfig,
    ) -> DataResult<Self> {
        normalization.check(data.shape().channels)?;
        if config.batch_size == 0 {
            return Err(DataError::Invalid("batch_size must be at least 1".into()));
        }
        if config.prefetch == 0 {
            return Err(DataError::Invalid("prefetch must be at least 1".into()));
        }
        let tables = normalization.tables();
        Ok(Self {
            source: Arc::new(Source {
                data,
                tables,
                config,
            }),
            normalization,
        })
    }

    /// The data set.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.source.data
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.source.config
    }

    /// The normalization applied.
    pub fn normalization(&self) -> &Normalization {
        &self.normalization
    }

    /// Number of batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.source.data.len();
        let b = self.source.config.batch_size;
        if self.source.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The order in which epoch `epoch` visits the samples (a permutation of `0..len`, or the
    /// identity when not shuffling). Batches take it in consecutive slices.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.source.data.len()).collect();
        if self.source.config.shuffle {
            Rng::stream(self.source.config.seed, &[STREAM_SHUFFLE, epoch]).shuffle(&mut order);
        }
        order
    }

    /// The batches of epoch `epoch` in host memory, prepared on a background thread.
    pub fn host_epoch(&self, epoch: u64) -> HostBatches {
        let plan = EpochPlan {
            source: Arc::clone(&self.source),
            epoch,
            order: self.epoch_order(epoch),
            batches: self.batches_per_epoch(),
        };
        HostBatches::start(plan)
    }

    /// The batches of epoch `epoch` as tensors on `device`, prepared on a background thread.
    pub fn epoch(&self, epoch: u64, device: &Device) -> Batches {
        Batches {
            host: self.host_epoch(epoch),
            device: device.clone(),
        }
    }
}

#[derive(Debug)]
enum Producer {
    /// Batches come from a worker thread.
    Thread {
        rx: Option<Receiver<HostBatch>>,
        handle: Option<JoinHandle<()>>,
    },
    /// The thread could not be started: batches are made on the caller's thread.
    Inline { plan: Arc<EpochPlan>, next: usize },
}

/// Iterator over the host batches of one epoch. Dropping it early stops the worker.
#[derive(Debug)]
pub struct HostBatches {
    producer: Producer,
    remaining: usize,
}

fn work(plan: &EpochPlan, tx: &SyncSender<HostBatch>) {
    for b in 0..plan.batches {
        // An error means the consumer went away: stop quietly.
        if tx.send(plan.batch(b)).is_err() {
            return;
        }
    }
}

impl HostBatches {
    fn start(plan: EpochPlan) -> Self {
        let remaining = plan.batches;
        let (tx, rx) = sync_channel(plan.source.config.prefetch);
        let plan = Arc::new(plan);
        let worker_plan = Arc::clone(&plan);
        let spawned = std::thread::Builder::new()
            .name("qnas-data".into())
            .spawn(move || work(&worker_plan, &tx));
        let producer = match spawned {
            Ok(handle) => Producer::Thread {
                rx: Some(rx),
                handle: Some(handle),
            },
            Err(_) => Producer::Inline { plan, next: 0 },
        };
        Self {
            producer,
            remaining,
        }
    }

    /// Whether the batches are made on a background thread (`false` only if the operating
    /// system refused to start one; the batches are then made on the caller's thread).
    pub fn is_threaded(&self) -> bool {
        matches!(self.producer, Producer::Thread { .. })
    }
}

impl Iterator for HostBatches {
    type Item = HostBatch;

    fn next(&mut self) -> Option<HostBatch> {
        if self.remaining == 0 {
            return None;
        }
        let batch = match &mut self.producer {
            Producer::Inline { plan, next } => {
                let b = plan.batch(*next);
                *next += 1;
                Some(b)
            }
            Producer::Thread { rx, handle } => match rx.as_ref().map(Receiver::recv) {
                Some(Ok(b)) => Some(b),
                _ => {
                    // The worker ended before the last batch: it panicked. Pass the panic on
                    // rather than end the epoch silently short.
                    if let Some(h) = handle.take()
                        && let Err(panic) = h.join()
                    {
                        std::panic::resume_unwind(panic);
                    }
                    None
                }
            },
        };
        if batch.is_some() {
            self.remaining -= 1;
        } else {
            self.remaining = 0;
        }
        batch
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for HostBatches {}

impl Drop for HostBatches {
    fn drop(&mut self) {
        if let Producer::Thread { rx, handle } = &mut self.producer {
            // Closing the channel wakes a worker blocked on a full channel; its send fails
            // and it returns.
            drop(rx.take());
            if let Some(h) = handle.take() {
                // A panic of the worker is not re-raised inside a destructor.
                let _ = h.join();
            }
        }
    }
}

/// Iterator over the tensor batches of one epoch (see [`BatchLoader::epoch`]).
#[derive(Debug)]
pub struct Batches {
    host: HostBatches,
    device: Device,
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.host.next().map(|b| b.to_device(&self.device))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.host.size_hint()
    }
}

impl ExactSizeIterator for Batches {}
