//! A data loader whose batches are a function of (seed, epoch, index): the permutation of epoch `e`
//! is drawn from `(seed, e)` alone and batches arrive in order, however many threads render them.
//! A resumed run that starts the loader at its next epoch therefore sees exactly the batches an
//! uninterrupted run would have seen. (burn's multi-threaded loader delivers batches in completion
//! order and draws every epoch's permutation from one generator that restarts with the process.)
//!
//! An item that cannot be loaded is never an early end of the epoch: a dataset's `get` reports why
//! with [`load_failed`], and the loader either stops the epoch with that error in its
//! [`LoaderStatus`] (the training loop turns it into the run's error) or, with
//! [`EpochLoader::skip_failures`], leaves the item out and counts it. A producer thread that dies for
//! any other reason is an error too.

use std::{
    cell::RefCell,
    fmt::Display,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
};

use burn::{
    data::{
        dataloader::{DataLoader, DataLoaderIterator, Progress, batcher::Batcher},
        dataset::Dataset,
    },
    tensor::backend::Backend,
};
use rand::{SeedableRng, rngs::Xoshiro256PlusPlus, seq::SliceRandom};

/// Batches prepared ahead of the consumer.
const PREFETCH: usize = 2;

thread_local! {
    static LOAD_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// For `Dataset::get`: records why the item could not be loaded (naming its file and what was
/// wrong) and returns `None`, which the loader reads as that failure rather than as the end of the
/// data (burn's `Dataset` has no error channel).
pub fn load_failed<I>(error: impl Display) -> Option<I> {
    LOAD_ERROR.with(|slot| *slot.borrow_mut() = Some(error.to_string()));
    None
}

/// The failure a dataset recorded with [`load_failed`] on this thread, if any (for code that reads
/// a dataset outside a loader).
pub fn take_load_error() -> Option<String> {
    LOAD_ERROR.with(|slot| slot.borrow_mut().take())
}

type FailureHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What went wrong while loading, shared by a loader, its iterators and the training loop.
#[derive(Clone, Default)]
pub struct LoaderStatus {
    failure: Arc<Mutex<Option<String>>>,
    skipped: Arc<Mutex<Vec<String>>>,
    hook: Arc<Mutex<Option<FailureHook>>>,
}

impl LoaderStatus {
    /// The first error that stopped an epoch, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("loader status").clone()
    }

    /// Why each skipped item was skipped (with [`EpochLoader::skip_failures`]).
    pub fn skipped(&self) -> Vec<String> {
        self.skipped.lock().expect("loader status").clone()
    }

    /// Called once with the error that stops an epoch (e.g. to interrupt burn-train's loop
    /// before the partial epoch is checkpointed).
    pub fn on_failure(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        *self.hook.lock().expect("loader status") = Some(Arc::new(hook));
    }

    fn fail(&self, message: String) {
        let first = {
            let mut failure = self.failure.lock().expect("loader status");
            let first = failure.is_none();
            if first {
                *failure = Some(message.clone());
            }
            first
        };
        let hook = self.hook.lock().expect("loader status").clone();
        if let (true, Some(hook)) = (first, hook) {
            hook(&message);
        }
    }
}

/// What the producer thread sends.
enum Message<O> {
    Batch(O),
    Failed(String),
    End,
}

pub struct EpochLoader<B: Backend, I, O> {
    dataset: Arc<dyn Dataset<I>>,
    batcher: Arc<dyn Batcher<B, I, O>>,
    batch_size: usize,
    /// `Some(seed)`: a fresh permutation every epoch; `None`: dataset order.
    shuffle: Option<u64>,
    device: B::Device,
    /// Threads that render the items of one batch.
    workers: usize,
    /// The epoch the next `iter()` serves (0-based).
    next_epoch: Arc<AtomicUsize>,
    /// The part of the (permuted) index range this loader serves, for `slice`.
    range: (usize, usize),
    /// Set to the epoch each `iter()` serves, for datasets whose items depend on it
    /// ([`crate::Augmented`]).
    epoch_sink: Option<Arc<AtomicUsize>>,
    /// Leave out items that fail to load (counted in `status`) instead of stopping.
    skip_failures: bool,
    /// Serve only full batches (MoCo's queue takes a batch at a time).
    drop_last: bool,
    status: LoaderStatus,
}

impl<B: Backend, I: Send + Sync + 'static, O: Send + 'static> EpochLoader<B, I, O> {
    pub fn new(
        dataset: Arc<dyn Dataset<I>>,
        batcher: impl Batcher<B, I, O> + 'static,
        batch_size: usize,
        device: B::Device,
    ) -> Self {
        let len = dataset.len();
        Self {
            dataset,
            batcher: Arc::new(batcher),
            batch_size: batch_size.max(1),
            shuffle: None,
            device,
            workers: 1,
            next_epoch: Arc::new(AtomicUsize::new(0)),
            range: (0, len),
            epoch_sink: None,
            skip_failures: false,
            drop_last: false,
            status: LoaderStatus::default(),
        }
    }

    /// Leave out the last batch of an epoch when it is not full (PyTorch's `drop_last`).
    pub fn drop_last(mut self) -> Self {
        self.drop_last = true;
        self
    }

    /// Leave out items whose file cannot be loaded, warning once per item and recording it in
    /// [`Self::status`], instead of stopping the epoch with the error (`data.skip_corrupt`).
    pub fn skip_failures(mut self, skip: bool) -> Self {
        self.skip_failures = skip;
        self
    }

    /// Failures and skipped items of this loader (and of its slices).
    pub fn status(&self) -> LoaderStatus {
        self.status.clone()
    }

    /// Publishes the epoch of each `iter()` to `epoch` before any of its items is rendered: pass
    /// [`crate::Augmented::epoch`] so that augmentations are a function of (seed, epoch, index).
    /// Items are only rendered within the `iter()` of their epoch, so the value is never stale.
    pub fn sharing_epoch(mut self, epoch: Arc<AtomicUsize>) -> Self {
        self.epoch_sink = Some(epoch);
        self
    }

    pub fn shuffle(mut self, seed: u64) -> Self {
        self.shuffle = Some(seed);
        self
    }

    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Serve epoch `epoch` (0-based) next: a run resumed after `k` completed epochs starts at `k`.
    pub fn starting_at_epoch(self, epoch: usize) -> Self {
        self.next_epoch.store(epoch, Ordering::SeqCst);
        self
    }

    /// The dataset indices of `epoch`, in the order they are served.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if let Some(seed) = self.shuffle {
            let stream = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(stream));
        }
        order[self.range.0..self.range.1].to_vec()
    }
}

/// Renders `indices` on `workers` threads, in order; an item that failed carries its reason.
fn load_items<I: Send>(
    dataset: &dyn Dataset<I>,
    indices: &[usize],
    workers: usize,
) -> Vec<Result<I, String>> {
    let get = |i: &usize| {
        dataset.get(*i).ok_or_else(|| {
            take_load_error().unwrap_or_else(|| {
                format!(
                    "item {i} of a dataset of {} could not be loaded",
                    dataset.len()
                )
            })
        })
    };
    if workers <= 1 || indices.len() <= 1 {
        return indices.iter().map(get).collect();
    }
    let chunk = indices.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let parts: Vec<_> = indices
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(get).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("a data-loading thread panicked"))
            .collect()
    })
}

struct EpochIterator<O> {
    receiver: mpsc::Receiver<Message<O>>,
    progress: Progress,
    batch_size: usize,
    status: LoaderStatus,
    done: bool,
}

impl<O> Iterator for EpochIterator<O> {
    type Item = O;

    fn next(&mut self) -> Option<O> {
        if self.done {
            return None;
        }
        let failure = match self.receiver.recv() {
            Ok(Message::Batch(batch)) => {
                self.progress.items_processed = (self.progress.items_processed + self.batch_size)
                    .min(self.progress.items_total);
                return Some(batch);
            }
            Ok(Message::End) => None,
            Ok(Message::Failed(message)) => Some(message),
            Err(_) => Some("the data-loading thread stopped before the end of the epoch".into()),
        };
        self.done = true;
        if let Some(message) = failure {
            self.status.fail(message);
        }
        None
    }
}

impl<O> DataLoaderIterator<O> for EpochIterator<O> {
    fn progress(&self) -> Progress {
        self.progress.clone()
    }
}

impl<B, I, O> DataLoader<B, O> for EpochLoader<B, I, O>
where
    B: Backend,
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(sink) = &self.epoch_sink {
            sink.store(epoch, Ordering::SeqCst);
        }
        let mut order = self.order(epoch);
        if self.drop_last {
            order.truncate(order.len() / self.batch_size * self.batch_size);
        }
        let total = order.len();
        let (sender, receiver) = mpsc::sync_channel(PREFETCH);
        let (dataset, batcher, device) = (
            self.dataset.clone(),
            self.batcher.clone(),
            self.device.clone(),
        );
        let (batch_size, workers, skip) = (self.batch_size, self.workers, self.skip_failures);
        let drop_last = self.drop_last;
        let status = self.status.clone();
        let skipped = status.skipped.clone();
        // The producer stops when the iterator (and so the receiver) is dropped.
        std::thread::spawn(move || {
            let produce = || -> Message<O> {
                for indices in order.chunks(batch_size) {
                    let mut items = Vec::with_capacity(indices.len());
                    for item in load_items(dataset.as_ref(), indices, workers) {
                        match item {
                            Ok(item) => items.push(item),
                            Err(message) if skip => {
                                eprintln!("warning: skipped: {message}");
                                skipped.lock().expect("loader status").push(message);
                            }
                            Err(message) => return Message::Failed(message),
                        }
                    }
                    // Skipped items can leave a batch short: with drop_last it is dropped too.
                    if items.is_empty() || (drop_last && items.len() < batch_size) {
                        continue;
                    }
                    if sender
                        .send(Message::Batch(batcher.batch(items, &device)))
                        .is_err()
                    {
                        return Message::End;
                    }
                }
                Message::End
            };
            let last = catch_unwind(AssertUnwindSafe(produce)).unwrap_or_else(|panic| {
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "no message".into());
                Message::Failed(format!("the data-loading thread panicked: {reason}"))
            });
            let _ = sender.send(last);
        });
        Box::new(EpochIterator {
            receiver,
            progress: Progress::new(0, total),
            batch_size,
            status,
            done: false,
        })
    }

    fn num_items(&self) -> usize {
        self.range.1 - self.range.0
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, O>> {
        Arc::new(Self {
            device: device.clone(),
            ..self.share()
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, O>> {
        let base = self.range.0;
        // A slice (one device's share) counts its own epochs, from the same starting point.
        let next_epoch = Arc::new(AtomicUsize::new(self.next_epoch.load(Ordering::SeqCst)));
        Arc::new(Self {
            range: (base + start, (base + end).min(self.range.1)),
            next_epoch,
            ..self.share()
        })
    }
}

impl<B: Backend, I, O> EpochLoader<B, I, O> {
    /// A loader over the same data and epoch counter.
    fn share(&self) -> Self {
        Self {
            dataset: self.dataset.clone(),
            batcher: self.batcher.clone(),
            batch_size: self.batch_size,
            shuffle: self.shuffle,
            device: self.device.clone(),
            workers: self.workers,
            next_epoch: self.next_epoch.clone(),
            range: self.range,
            epoch_sink: self.epoch_sink.clone(),
            skip_failures: self.skip_failures,
            drop_last: self.drop_last,
            status: self.status.clone(),
        }
    }
}

/// A burn-train interrupter that the first load failure of any of `statuses` stops, with
/// "loading data: <error>": a file that cannot be loaded stops the run before its epoch is
/// checkpointed.
pub fn stop_on_load_failure(statuses: &[LoaderStatus]) -> burn::train::Interrupter {
    let stop = burn::train::Interrupter::new();
    for status in statuses {
        let stop = stop.clone();
        status.on_failure(move |message| stop.stop(Some(&format!("loading data: {message}"))));
    }
    stop
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::{backend::Flex, data::dataset::InMemDataset};

    /// Batches of the raw indices, to see the order.
    #[derive(Clone)]
    struct Identity;

    impl Batcher<Flex, usize, Vec<usize>> for Identity {
        fn batch(&self, items: Vec<usize>, _device: &burn::tensor::Device<Flex>) -> Vec<usize> {
            items
        }
    }

    fn loader(workers: usize) -> EpochLoader<Flex, usize, Vec<usize>> {
        let data: Arc<dyn Dataset<usize>> = Arc::new(InMemDataset::new((0..23).collect()));
        EpochLoader::new(data, Identity, 5, Default::default())
            .shuffle(7)
            .workers(workers)
    }

    fn epoch(loader: &EpochLoader<Flex, usize, Vec<usize>>) -> Vec<Vec<usize>> {
        DataLoader::iter(loader).collect()
    }

    #[test]
    fn every_epoch_is_a_permutation_in_order_whatever_the_threads() {
        let (one, four) = (loader(1), loader(4));
        let (a1, a2) = (epoch(&one), epoch(&one));
        assert_eq!(a1, epoch(&four));
        assert_eq!(a2, epoch(&four));
        assert_ne!(a1, a2, "each epoch draws its own permutation");
        let mut seen: Vec<usize> = a1.concat();
        seen.sort();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        assert_eq!(a1.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 5, 5, 3]);
    }

    #[test]
    fn a_resumed_loader_serves_the_epochs_an_uninterrupted_one_would() {
        let full = loader(2);
        let epochs: Vec<_> = (0..3).map(|_| epoch(&full)).collect();
        let resumed = loader(2).starting_at_epoch(2);
        assert_eq!(epoch(&resumed), epochs[2]);
    }

    #[test]
    fn augmented_items_follow_the_epoch_of_the_loader() {
        use crate::{Augmented, ClassificationItem, Pipeline};
        #[derive(Clone)]
        struct Pixels;
        impl Batcher<Flex, ClassificationItem, Vec<f32>> for Pixels {
            fn batch(
                &self,
                items: Vec<ClassificationItem>,
                _: &burn::tensor::Device<Flex>,
            ) -> Vec<f32> {
                items.into_iter().flat_map(|i| i.pixels).collect()
            }
        }
        let item = |k: usize| ClassificationItem {
            pixels: (0..12 * 12 * 3)
                .map(|p| ((p * 7 + k) % 13) as f32 / 13.0)
                .collect(),
            size: [12, 12],
            label: 0,
        };
        let make = |start: usize| {
            let images = InMemDataset::new((0..4).map(item).collect());
            let augmented = Augmented::new(images, Pipeline::imagenet_train(6), 3).unwrap();
            let epoch = augmented.epoch();
            EpochLoader::new(Arc::new(augmented), Pixels, 4, Default::default())
                .sharing_epoch(epoch)
                .starting_at_epoch(start)
        };
        let full = make(0);
        let epochs: Vec<Vec<Vec<f32>>> =
            (0..3).map(|_| DataLoader::iter(&full).collect()).collect();
        assert_ne!(epochs[0], epochs[1], "each epoch augments anew");
        let resumed: Vec<Vec<f32>> = DataLoader::iter(&make(2)).collect();
        assert_eq!(resumed, epochs[2]);
    }

    /// Items 3 and 17 fail to load, as a corrupt file would.
    struct Flaky;
    impl Dataset<usize> for Flaky {
        fn get(&self, index: usize) -> Option<usize> {
            match index {
                3 | 17 => load_failed(format!("/data/img{index}.jpg: not a JPEG")),
                i if i < 23 => Some(i),
                _ => None,
            }
        }
        fn len(&self) -> usize {
            23
        }
    }

    #[test]
    fn a_failing_item_is_an_error_naming_it_never_a_short_epoch() {
        for workers in [1, 3] {
            let l =
                EpochLoader::<Flex, _, _>::new(Arc::new(Flaky), Identity, 5, Default::default())
                    .workers(workers);
            let called = Arc::new(AtomicUsize::new(0));
            let hook = called.clone();
            l.status().on_failure(move |_| {
                hook.fetch_add(1, Ordering::SeqCst);
            });
            let served: Vec<Vec<usize>> = DataLoader::iter(&l).collect();
            assert!(served.is_empty(), "{served:?}");
            assert_eq!(
                l.status().failure().as_deref(),
                Some("/data/img3.jpg: not a JPEG")
            );
            assert_eq!(called.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn skipped_items_are_left_out_and_counted() {
        let l = EpochLoader::<Flex, _, _>::new(Arc::new(Flaky), Identity, 5, Default::default())
            .workers(2)
            .skip_failures(true);
        let served: Vec<usize> = DataLoader::iter(&l).flatten().collect();
        assert_eq!(served.len(), 21);
        // With drop_last, the batches a skipped item made short are left out as well.
        let full = EpochLoader::<Flex, _, _>::new(Arc::new(Flaky), Identity, 5, Default::default())
            .skip_failures(true)
            .drop_last();
        let batches: Vec<Vec<usize>> = DataLoader::iter(&full).collect();
        assert!(batches.iter().all(|b| b.len() == 5), "{batches:?}");
        assert_eq!(batches.len(), 2);
        assert!(!served.contains(&3) && !served.contains(&17));
        assert_eq!(l.status().failure(), None);
        assert_eq!(l.status().skipped().len(), 2);
    }

    #[test]
    fn a_panicking_producer_is_an_error() {
        #[derive(Clone)]
        struct Broken;
        impl Batcher<Flex, usize, Vec<usize>> for Broken {
            fn batch(&self, items: Vec<usize>, _: &burn::tensor::Device<Flex>) -> Vec<usize> {
                assert!(!items.contains(&7), "batcher bug at 7");
                items
            }
        }
        let data: Arc<dyn Dataset<usize>> = Arc::new(InMemDataset::new((0..23).collect()));
        let l = EpochLoader::<Flex, _, _>::new(data, Broken, 5, Default::default());
        assert_eq!(DataLoader::iter(&l).count(), 1);
        let failure = l.status().failure().unwrap();
        assert!(
            failure.contains("panicked") && failure.contains("batcher bug at 7"),
            "{failure}"
        );
    }

    #[test]
    fn progress_counts_items_and_slices_split_the_range() {
        let l = loader(1);
        let mut it = DataLoader::iter(&l);
        it.next();
        assert_eq!(
            (it.progress().items_processed, it.progress().items_total),
            (5, 23)
        );
        assert_eq!(l.slice(5, 15).num_items(), 10);
    }
}
