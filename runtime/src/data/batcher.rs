//! Shuffled, full batches from a seed, prepared ahead on a background thread, resumable.
//!
//! Epoch `e` visits the data set in the order of a Fisher–Yates shuffle of `0..N` drawn from
//! `SplitMix64::derive(seed, [SHUFFLE, e])`; batch `k` of the epoch is positions
//! `k·B .. (k+1)·B` of that order, and only the `⌊N / B⌋` full batches are used (the tail of
//! each epoch's order is skipped). A batch's transforms draw from
//! `SplitMix64::derive(seed, [TRANSFORM, e, k])`. So a batch is a pure function of
//! `(data set, transforms, seed, e, k)` ([`make_batch`]): the background thread, the
//! synchronous path and a resumed run all produce the same batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::Dataset;
use super::error::DataError;
use super::rng::{STREAM_SHUFFLE, STREAM_TRANSFORM, SplitMix64};
use super::transform::{Images, Transforms};

/// Where a [`Batcher`] is: enough to continue with exactly the same batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatcherState {
    pub seed: u64,
    /// The epoch of the next batch (from 0).
    pub epoch: u64,
    /// Batches already taken in this epoch.
    pub position: u64,
    /// Images per batch.
    pub batch: usize,
    /// Images in the data set (checked on resume).
    pub len: usize,
}

impl BatcherState {
    /// The start of a run: epoch 0, nothing taken.
    pub fn start(seed: u64, batch: usize, len: usize) -> Self {
        BatcherState { seed, epoch: 0, position: 0, batch, len }
    }

    /// Full batches per epoch: `⌊len / batch⌋`.
    pub fn batches_per_epoch(&self) -> u64 {
        self.len.checked_div(self.batch).unwrap_or(0) as u64
    }

    /// The state after taking one batch.
    fn advanced(mut self) -> Self {
        self.position += 1;
        if self.position >= self.batches_per_epoch() {
            self.epoch += 1;
            self.position = 0;
        }
        self
    }
}

/// One batch, transformed.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The images (B×C×H×W), after the transforms.
    pub images: Images,
    /// The paired input made by [`super::Pair`] (low-resolution image or edge map), if any.
    pub paired: Option<Images>,
    pub labels: Option<Vec<i32>>,
    /// The images' indices in the data set.
    pub indices: Vec<usize>,
    pub epoch: u64,
    /// The batch's index in its epoch.
    pub position: u64,
    /// Whether this is the epoch's last batch (the next one starts a new epoch).
    pub last_in_epoch: bool,
}

/// The visiting order of `epoch`.
pub fn epoch_order(seed: u64, epoch: u64, len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    SplitMix64::derive(seed, &[STREAM_SHUFFLE, epoch]).shuffle(&mut order);
    order
}

/// The batch at `state`, computed from scratch (the order of its epoch included). The state
/// must fit the data set (see [`Batcher::new`]).
pub fn make_batch(dataset: &Dataset, transforms: &Transforms, state: &BatcherState) -> Batch {
    let order = epoch_order(state.seed, state.epoch, dataset.len());
    batch_from_order(dataset, transforms, state, &order)
}

fn batch_from_order(
    dataset: &Dataset,
    transforms: &Transforms,
    state: &BatcherState,
    order: &[usize],
) -> Batch {
    let start = (state.position as usize).saturating_mul(state.batch).min(order.len());
    let end = start.saturating_add(state.batch).min(order.len());
    let indices = order[start..end].to_vec();
    let (c, h, w) = dataset.shape;
    let mut data = Vec::with_capacity(indices.len() * dataset.image_size());
    for &i in &indices {
        data.extend_from_slice(dataset.image(i));
    }
    let labels = dataset.labels.as_ref().map(|l| indices.iter().map(|&i| l[i]).collect());
    let images = Images { data, n: indices.len(), c, h, w };
    let (images, paired) = if state.epoch == IN_ORDER {
        transforms.apply_fixed(images, &indices)
    } else {
        let mut rng = SplitMix64::derive(state.seed, &[STREAM_TRANSFORM, state.epoch, state.position]);
        transforms.apply(images, &mut rng)
    };
    Batch {
        images,
        paired,
        labels,
        indices,
        epoch: state.epoch,
        position: state.position,
        last_in_epoch: state.position + 1 >= state.batches_per_epoch(),
    }
}

/// Walks the states in order, keeping the current epoch's order.
struct Cursor {
    state: BatcherState,
    order: Vec<usize>,
    order_epoch: Option<u64>,
}

impl Cursor {
    fn new(state: BatcherState) -> Self {
        Cursor { state, order: Vec::new(), order_epoch: None }
    }

    fn next(&mut self, dataset: &Dataset, transforms: &Transforms) -> Batch {
        if self.order_epoch != Some(self.state.epoch) {
            self.order = epoch_order(self.state.seed, self.state.epoch, dataset.len());
            self.order_epoch = Some(self.state.epoch);
        }
        let batch = batch_from_order(dataset, transforms, &self.state, &self.order);
        self.state = self.state.advanced();
        batch
    }
}

enum Source {
    Sync(Cursor),
    Prefetch { rx: Option<Receiver<Batch>>, stop: Arc<AtomicBool>, handle: Option<JoinHandle<()>> },
}

/// Yields shuffled full batches forever, epoch after epoch.
///
/// With [`Batcher::new`] a background thread prepares batches ahead (at most two: one waiting
/// in the channel, one being made), so loading overlaps the device's work;
/// [`Batcher::synchronous`] makes each batch when asked. Both yield the same batches.
pub struct Batcher {
    dataset: Arc<Dataset>,
    transforms: Arc<Transforms>,
    state: BatcherState,
    source: Source,
}

impl Batcher {
    /// A prefetching batcher starting at `state` ([`BatcherState::start`] for a new run, a
    /// saved state to resume).
    pub fn new(
        dataset: Arc<Dataset>,
        transforms: Transforms,
        state: BatcherState,
    ) -> Result<Self, DataError> {
        check(&dataset, &transforms, &state)?;
        let transforms = Arc::new(transforms);
        let (tx, rx) = sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (dataset, transforms, stop) = (dataset.clone(), transforms.clone(), stop.clone());
            std::thread::Builder::new()
                .name("genc-data".to_string())
                .spawn(move || produce(&dataset, &transforms, state, &tx, &stop))
                .map_err(|e| DataError::Loader { reason: format!("could not start its thread: {e}") })?
        };
        let source = Source::Prefetch { rx: Some(rx), stop, handle: Some(handle) };
        Ok(Batcher { dataset, transforms, state, source })
    }

    /// A batcher that makes each batch on the caller's thread.
    pub fn synchronous(
        dataset: Arc<Dataset>,
        transforms: Transforms,
        state: BatcherState,
    ) -> Result<Self, DataError> {
        check(&dataset, &transforms, &state)?;
        Ok(Batcher {
            dataset,
            transforms: Arc::new(transforms),
            state,
            source: Source::Sync(Cursor::new(state)),
        })
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> Result<Batch, DataError> {
        let batch = match &mut self.source {
            Source::Sync(cursor) => cursor.next(&self.dataset, &self.transforms),
            Source::Prefetch { rx, handle, .. } => match rx.as_ref().map(Receiver::recv) {
                Some(Ok(batch)) => batch,
                _ => {
                    let reason = match handle.take().map(JoinHandle::join) {
                        Some(Err(panic)) => panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "its thread panicked".to_string()),
                        _ => "its thread ended".to_string(),
                    };
                    return Err(DataError::Loader { reason });
                }
            },
        };
        if batch.epoch != self.state.epoch || batch.position != self.state.position {
            return Err(DataError::Loader {
                reason: format!(
                    "expected batch {} of epoch {}, got batch {} of epoch {}",
                    self.state.position, self.state.epoch, batch.position, batch.epoch
                ),
            });
        }
        self.state = self.state.advanced();
        Ok(batch)
    }

    /// The state before the next batch: save it with a checkpoint to resume there.
    pub fn state(&self) -> BatcherState {
        self.state
    }

    pub fn batches_per_epoch(&self) -> u64 {
        self.state.batches_per_epoch()
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    pub fn transforms(&self) -> &Transforms {
        &self.transforms
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        if let Source::Prefetch { rx, stop, handle } = &mut self.source {
            stop.store(true, Ordering::Relaxed);
            drop(rx.take());
            if let Some(handle) = handle.take() {
                // A panic in the loader was either reported by `next_batch` or is irrelevant now.
                let _ = handle.join();
            }
        }
    }
}

fn produce(
    dataset: &Dataset,
    transforms: &Transforms,
    state: BatcherState,
    tx: &SyncSender<Batch>,
    stop: &AtomicBool,
) {
    let mut cursor = Cursor::new(state);
    while !stop.load(Ordering::Relaxed) {
        if tx.send(cursor.next(dataset, transforms)).is_err() {
            break;
        }
    }
}

fn check(dataset: &Dataset, transforms: &Transforms, state: &BatcherState) -> Result<(), DataError> {
    let setting = |reason: String| Err(DataError::Setting { reason });
    if state.batch == 0 {
        return setting("the batch size must be at least 1".to_string());
    }
    if dataset.is_empty() {
        return setting(format!("the {} set holds no images", dataset.split));
    }
    if state.len != dataset.len() {
        return setting(format!(
            "the saved batch state is for a data set of {} images, this one has {} (was the limit changed?)",
            state.len,
            dataset.len()
        ));
    }
    if state.batch > dataset.len() {
        return setting(format!(
            "a batch of {} is larger than the {} set ({} images)",
            state.batch,
            dataset.split,
            dataset.len()
        ));
    }
    if state.position >= state.batches_per_epoch() {
        return setting(format!(
            "the saved batch state is at batch {} of an epoch of {}",
            state.position,
            state.batches_per_epoch()
        ));
    }
    if dataset.labels.as_ref().is_some_and(|l| l.len() != dataset.len()) {
        return setting("the data set has a different number of labels and images".to_string());
    }
    transforms.check(dataset.shape)
}

/// The epoch of an in-order walk: its random transforms are fixed per example.
const IN_ORDER: u64 = u64::MAX;

/// The data set in its stored order, `batch` images at a time, for evaluation (no shuffle):
/// full batches, then the remaining images as a last, smaller batch when `keep_partial`.
/// Random transforms (a sampled binarisation) are fixed per example by its index alone
/// ([`Transforms::apply_fixed`]), whatever the seed and batch size.
pub fn in_order<'a>(
    dataset: &'a Dataset,
    transforms: &'a Transforms,
    batch: usize,
    seed: u64,
    keep_partial: bool,
) -> Result<impl Iterator<Item = Batch> + 'a, DataError> {
    if batch == 0 {
        return Err(DataError::Setting { reason: "the batch size must be at least 1".to_string() });
    }
    transforms.check(dataset.shape)?;
    let state = BatcherState { seed, epoch: IN_ORDER, position: 0, batch, len: dataset.len() };
    let order: Vec<usize> = (0..dataset.len()).collect();
    let count = if keep_partial { dataset.len().div_ceil(batch) } else { dataset.len() / batch };
    Ok((0..count).map(move |k| {
        let mut b =
            batch_from_order(dataset, transforms, &BatcherState { position: k as u64, ..state }, &order);
        b.last_in_epoch = k + 1 == count;
        b
    }))
}
