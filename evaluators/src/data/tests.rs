//! File-level tests: hand-made IDX and CIFAR files in a temporary directory, the batch loader,
//! the RON description, and the data sets shipped in `data/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::Device;

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "qnas-data-{tag}-{}-{nanos}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    pub(super) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub(super) fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [IDX_IMAGES_MAGIC, count, rows, cols] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// `n` 3x2 images, image i filled with a ramp starting at 10*i; labels i mod 10.
fn toy_idx(n: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..n * 6).map(|k| ((k / 6) * 10 + k % 6) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let img = idx_images(n as u32, 3, 2, &pixels);
    let lab = idx_labels(&labels);
    (img, lab, pixels, labels)
}

/// Writes an MNIST-layout folder with `n_train` / `n_test` toy samples (gz if asked).
fn mnist_dir(dir: &TempDir, n_train: usize, n_test: usize, gzip: bool) {
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let (img, lab, _, _) = toy_idx(n);
        if gzip {
            dir.write(&format!("{prefix}-images-idx3-ubyte.gz"), &gz(&img));
            dir.write(&format!("{prefix}-labels-idx1-ubyte.gz"), &gz(&lab));
        } else {
            dir.write(&format!("{prefix}-images-idx3-ubyte"), &img);
            dir.write(&format!("{prefix}-labels-idx1-ubyte"), &lab);
        }
    }
}

fn cifar_records(labels: &[u8], first_pixel: u8) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        v.push(l);
        v.extend((0..3072).map(|k| (first_pixel as usize + i + k / 1024 * 50 + k % 7) as u8));
    }
    v
}

fn assert_names(err: &DataError, file: &Path, words: &[&str]) {
    let msg = err.to_string();
    assert!(
        msg.contains(&file.display().to_string()),
        "message does not name {}: {msg}",
        file.display()
    );
    for w in words {
        assert!(msg.contains(w), "message lacks {w:?}: {msg}");
    }
}

// ---------- IDX ----------

#[test]
fn idx_round_trip_raw_and_gz_agree() {
    let dir = TempDir::new("idx-rt");
    let (img, lab, pixels, labels) = toy_idx(12);
    let raw_i = dir.write("img", &img);
    let raw_l = dir.write("lab", &lab);
    let gz_i = dir.write("img.gz", &gz(&img));
    let gz_l = dir.write("lab.gz", &gz(&lab));

    let raw = load_idx_pair(&raw_i, &raw_l, 10).unwrap();
    assert_eq!(raw.len(), 12);
    assert_eq!(raw.shape(), ImageShape::new(1, 3, 2));
    assert_eq!(raw.classes(), 10);
    assert_eq!(raw.images(), pixels.as_slice());
    assert_eq!(
        raw.labels(),
        labels
            .iter()
            .map(|&l| u32::from(l))
            .collect::<Vec<_>>()
            .as_slice()
    );
    assert_eq!(raw.image(3), &[30, 31, 32, 33, 34, 35]);

    // Gzip is detected by content, whatever the name; mixing raw and gz works too.
    assert_eq!(load_idx_pair(&gz_i, &gz_l, 10).unwrap(), raw);
    assert_eq!(load_idx_pair(&gz_i, &raw_l, 10).unwrap(), raw);
    let gz_named_plain = dir.write("img-plain-name", &gz(&img));
    assert_eq!(load_idx_pair(&gz_named_plain, &raw_l, 10).unwrap(), raw);

    let header = read_idx_images(&raw_i).unwrap();
    assert_eq!((header.count, header.rows, header.cols), (12, 3, 2));
    assert_eq!(read_idx_labels(&gz_l).unwrap(), labels);
}

#[test]
fn idx_folder_prefers_gz_then_raw() {
    let gz_dir = TempDir::new("idx-dir-gz");
    mnist_dir(&gz_dir, 20, 5, true);
    let raw_dir = TempDir::new("idx-dir-raw");
    mnist_dir(&raw_dir, 20, 5, false);
    for d in [&gz_dir, &raw_dir] {
        let train = load_idx_dir(d.path(), IdxPart::Train, 10).unwrap();
        let test = load_idx_dir(d.path(), IdxPart::Test, 10).unwrap();
        assert_eq!((train.len(), test.len()), (20, 5));
    }
    let (i, _) = idx_part_files(gz_dir.path(), IdxPart::Train).unwrap();
    assert!(i.to_string_lossy().ends_with("train-images-idx3-ubyte.gz"));
}

#[test]
fn idx_missing_file_is_named() {
    let dir = TempDir::new("idx-missing");
    let (img, _, _, _) = toy_idx(3);
    let i = dir.write("img", &img);
    let missing = dir.path().join("no-such-labels");
    let err = load_idx_pair(&i, &missing, 10).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    assert_names(&err, &missing, &["not found"]);

    // In a folder, both candidate names are reported.
    let err = load_idx_dir(dir.path(), IdxPart::Train, 10).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("train-images-idx3-ubyte.gz") && msg.contains("also tried"),
        "{msg}"
    );
}

#[test]
fn idx_wrong_magic_is_named() {
    let dir = TempDir::new("idx-magic");
    let (img, lab, _, _) = toy_idx(3);
    let i = dir.write("img", &img);
    let l = dir.write("lab", &lab);
    // Label and image file swapped.
    let err = load_idx_pair(&l, &i, 10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                found: 0x801,
                expected: 0x803,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &l, &["magic", "0x00000801", "0x00000803"]);

    // Some other file entirely (text), gz-compressed or not.
    let junk = dir.write("junk", b"hello, world\n");
    let err = read_idx_images(&junk).unwrap_err();
    assert_names(&err, &junk, &["wrong magic"]);
    let junk_gz = dir.write("junk.gz", &gz(b"hello, world\n"));
    let err = read_idx_labels(&junk_gz).unwrap_err();
    assert_names(&err, &junk_gz, &["wrong magic"]);
}

#[test]
fn idx_truncated_is_named() {
    let dir = TempDir::new("idx-trunc");
    let (img, lab, _, _) = toy_idx(4);

    // Payload cut short.
    let short = dir.write("short-img", &img[..img.len() - 1]);
    let err = read_idx_images(&short).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    assert_names(&err, &short, &["truncated", &(img.len()).to_string()]);

    // Header cut short, and a file shorter than the magic.
    let head = dir.write("head-img", &img[..10]);
    assert_names(
        &read_idx_images(&head).unwrap_err(),
        &head,
        &["truncated", "header"],
    );
    let tiny = dir.write("tiny", &[0, 0]);
    assert_names(&read_idx_labels(&tiny).unwrap_err(), &tiny, &["truncated"]);
    let empty = dir.write("empty", &[]);
    assert_names(
        &read_idx_labels(&empty).unwrap_err(),
        &empty,
        &["truncated"],
    );

    // Label payload cut short.
    let short_l = dir.write("short-lab", &lab[..lab.len() - 2]);
    assert_names(
        &read_idx_labels(&short_l).unwrap_err(),
        &short_l,
        &["truncated"],
    );

    // A truncated gzip stream.
    let z = gz(&img);
    let cut = dir.write("cut.gz", &z[..z.len() / 2]);
    let err = read_idx_images(&cut).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
    assert_names(&err, &cut, &["gzip"]);

    // Extra bytes after the announced data.
    let mut long = img.clone();
    long.extend_from_slice(&[1, 2, 3]);
    let long = dir.write("long", &long);
    let err = read_idx_images(&long).unwrap_err();
    assert!(
        matches!(err, DataError::TrailingBytes { extra: 3, .. }),
        "{err:?}"
    );
    assert_names(&err, &long, &["3 unexpected bytes"]);
}

#[test]
fn idx_bad_header_dimensions() {
    let dir = TempDir::new("idx-dims");
    let zero = dir.write("zero-rows", &idx_images(2, 0, 5, &[]));
    let err = read_idx_images(&zero).unwrap_err();
    assert!(matches!(err, DataError::BadHeader { .. }), "{err:?}");
    assert_names(&err, &zero, &["bad header"]);
    // A header announcing a huge set is reported as truncated, not allocated.
    let huge = dir.write("huge", &idx_images(u32::MAX, u32::MAX, u32::MAX, &[1, 2]));
    assert!(read_idx_images(&huge).is_err());
}

#[test]
fn idx_label_out_of_range_is_named() {
    let dir = TempDir::new("idx-label");
    let (img, _, _, _) = toy_idx(3);
    let i = dir.write("img", &img);
    let l = dir.write("lab", &idx_labels(&[1, 10, 2]));
    let err = load_idx_pair(&i, &l, 10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                classes: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &l, &["label 10", "sample 1", "10 classes"]);
    // With more classes the same file is fine.
    assert_eq!(load_idx_pair(&i, &l, 11).unwrap().labels(), &[1, 10, 2]);
}

#[test]
fn idx_count_mismatch_names_both_files() {
    let dir = TempDir::new("idx-count");
    let (img, _, _, _) = toy_idx(4);
    let i = dir.write("img", &img);
    let l = dir.write("lab", &idx_labels(&[0, 1, 2]));
    let err = load_idx_pair(&i, &l, 10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 4,
                labels: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &i, &["4 images", "3 labels"]);
    assert_names(&err, &l, &[]);
}

#[test]
fn idx_empty_set_is_named() {
    let dir = TempDir::new("idx-empty");
    let i = dir.write("img", &idx_images(0, 28, 28, &[]));
    let l = dir.write("lab", &idx_labels(&[]));
    let err = load_idx_pair(&i, &l, 10).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
    assert_names(&err, &i, &["empty"]);
}

#[cfg(unix)]
#[test]
fn unreadable_path_is_an_io_error_naming_it() {
    // A directory in place of a file cannot be read as one.
    let dir = TempDir::new("idx-io");
    let sub = dir.path().join("a-directory");
    std::fs::create_dir(&sub).unwrap();
    let err = read_idx_images(&sub).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert_names(&err, &sub, &["cannot read"]);
}

// ---------- CIFAR-10 ----------

#[test]
fn cifar_round_trip_and_folder() {
    let dir = TempDir::new("cifar");
    let b1 = cifar_records(&[3, 0, 9], 0);
    let b2 = cifar_records(&[1, 2], 100);
    let t = cifar_records(&[5, 6, 7, 8], 200);
    dir.write("data_batch_1.bin", &b1);
    dir.write("data_batch_2.bin", &gz(&b2));
    dir.write("test_batch.bin", &t);

    let one = read_cifar10_batch(&dir.path().join("data_batch_1.bin")).unwrap();
    assert_eq!(one.shape(), ImageShape::new(3, 32, 32));
    assert_eq!(one.labels(), &[3, 0, 9]);
    assert_eq!(one.image(1), &b1[CIFAR10_RECORD + 1..2 * CIFAR10_RECORD]);
    // Channel planes: red, green, blue (the writer adds 50 per plane; 1029 and 2051 are
    // multiples of 7).
    assert_eq!(one.image(0)[0], 0);
    assert_eq!(one.image(0)[1029], 50);
    assert_eq!(one.image(0)[2051], 100);

    let train = load_cifar10_train(dir.path()).unwrap();
    assert_eq!(train.labels(), &[3, 0, 9, 1, 2]);
    assert_eq!(train.image(3), &b2[1..CIFAR10_RECORD]);
    let test = load_cifar10_test(dir.path()).unwrap();
    assert_eq!(test.labels(), &[5, 6, 7, 8]);

    // The folder the archive unpacks into works too.
    let outer = TempDir::new("cifar-outer");
    let inner = outer.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&inner).unwrap();
    std::fs::write(inner.join("data_batch_1.bin"), &b1).unwrap();
    std::fs::write(inner.join("test_batch.bin"), &t).unwrap();
    assert_eq!(load_cifar10_train(outer.path()).unwrap().len(), 3);
    assert_eq!(load_cifar10_test(outer.path()).unwrap().len(), 4);
}

#[test]
fn cifar_bad_files_are_named() {
    let dir = TempDir::new("cifar-bad");
    // Truncated: one record and a half.
    let rec = cifar_records(&[1, 2], 0);
    let cut = dir.write("cut.bin", &rec[..CIFAR10_RECORD + 100]);
    let err = read_cifar10_batch(&cut).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    assert_names(&err, &cut, &["truncated", "record 2", "3073"]);

    // Label out of range.
    let bad = dir.write("bad.bin", &cifar_records(&[1, 10], 0));
    let err = read_cifar10_batch(&bad).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &bad, &["label 10", "sample 1"]);

    // Empty file.
    let empty = dir.write("empty.bin", &[]);
    assert_names(&read_cifar10_batch(&empty).unwrap_err(), &empty, &["empty"]);

    // No batches at all, and a gap in the numbering.
    let err = load_cifar10_train(dir.path()).unwrap_err();
    assert_names(&err, &dir.path().join("data_batch_1.bin"), &["not found"]);
    dir.write("data_batch_1.bin", &rec);
    dir.write("data_batch_3.bin", &rec);
    let err = load_cifar10_train(dir.path()).unwrap_err();
    assert_names(&err, &dir.path().join("data_batch_2.bin"), &["not found"]);
    let err = load_cifar10_test(dir.path()).unwrap_err();
    assert_names(&err, &dir.path().join("test_batch.bin"), &["not found"]);

    // Missing directory.
    let nowhere = dir.path().join("nowhere");
    assert_names(
        &load_cifar10_train(&nowhere).unwrap_err(),
        &nowhere,
        &["not found"],
    );
}

// ---------- loader ----------

fn toy_dataset(n: usize, shape: ImageShape) -> Dataset {
    let images = (0..n * shape.len()).map(|k| (k % 251) as u8).collect();
    let labels = (0..n).map(|i| (i % 3) as u32).collect();
    Dataset::new(images, labels, shape, 3).unwrap()
}

#[test]
fn loader_visits_every_sample_once_per_epoch() {
    let shape = ImageShape::new(1, 2, 2);
    let data = Arc::new(toy_dataset(23, shape));
    let loader = BatchLoader::new(
        Arc::clone(&data),
        Normalization::unit(1),
        LoaderConfig::train(5, Augment::NONE, 9),
    )
    .unwrap();
    assert_eq!(loader.batches_per_epoch(), 5);
    let mut orders = Vec::new();
    for epoch in 0..3 {
        let batches: Vec<HostBatch> = loader.host_epoch(epoch).collect();
        assert_eq!(
            batches.iter().map(HostBatch::len).collect::<Vec<_>>(),
            [5, 5, 5, 5, 3]
        );
        let seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_eq!(seen, loader.epoch_order(epoch));
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..23).collect::<Vec<_>>(), "every sample once");
        for b in &batches {
            assert_eq!(b.dims, [b.len(), 1, 2, 2]);
            assert_eq!(b.images.len(), b.len() * 4);
            for (k, &i) in b.indices.iter().enumerate() {
                assert_eq!(b.labels[k], i64::from(data.label(i)));
                let expect: Vec<f32> = data.image(i).iter().map(|&p| p as f32 / 255.0).collect();
                assert_eq!(&b.images[k * 4..(k + 1) * 4], expect.as_slice());
            }
        }
        orders.push(seen);
    }
    assert_ne!(orders[0], orders[1], "shuffled anew each epoch");
    assert_ne!(orders[1], orders[2]);

    // Same (seed, epoch): same batches, from a fresh loader too.
    let again = BatchLoader::new(
        data,
        Normalization::unit(1),
        LoaderConfig::train(5, Augment::NONE, 9),
    )
    .unwrap();
    assert_eq!(again.epoch_order(1), orders[1]);
}

#[test]
fn loader_drop_last_and_eval_order() {
    let shape = ImageShape::new(1, 1, 1);
    let data = Arc::new(toy_dataset(10, shape));
    let mut cfg = LoaderConfig::train(4, Augment::NONE, 0);
    cfg.drop_last = true;
    let l = BatchLoader::new(Arc::clone(&data), Normalization::unit(1), cfg).unwrap();
    assert_eq!(l.batches_per_epoch(), 2);
    assert_eq!(l.host_epoch(0).map(|b| b.len()).collect::<Vec<_>>(), [4, 4]);

    let e = BatchLoader::new(data, Normalization::unit(1), LoaderConfig::eval(4)).unwrap();
    let idx: Vec<usize> = e.host_epoch(5).flat_map(|b| b.indices).collect();
    assert_eq!(idx, (0..10).collect::<Vec<_>>());
}

#[test]
fn loader_augmentation_is_seeded_and_normalizes() {
    let shape = ImageShape::new(3, 8, 8);
    let data = Arc::new(toy_dataset(6, shape));
    let norm = Normalization::from_dataset(&data).unwrap();
    let make = |seed| {
        BatchLoader::new(
            Arc::clone(&data),
            norm.clone(),
            LoaderConfig::train(4, Augment::CROP_FLIP, seed),
        )
        .unwrap()
    };
    let a: Vec<HostBatch> = make(1).host_epoch(0).collect();
    let b: Vec<HostBatch> = make(1).host_epoch(0).collect();
    let c: Vec<HostBatch> = make(1).host_epoch(1).collect();
    assert_eq!(a, b, "same seed and epoch, same batches");
    assert_ne!(a, c, "another epoch, other crops");
    for batch in &a {
        assert_eq!(batch.dims, [batch.len(), 3, 8, 8]);
        // Every value is the normalization of some pixel value of its channel (0 from padding).
        for img in batch.images.chunks_exact(shape.len()) {
            for (c, plane) in img.chunks_exact(64).enumerate() {
                for &x in plane {
                    let p = (x * norm.std[c] + norm.mean[c]) * 255.0;
                    assert!((p - p.round()).abs() < 1e-3 && (-0.01..255.01).contains(&p));
                }
            }
        }
    }
    // Unaugmented evaluation of the same data gives exactly the normalized pixels.
    let e = BatchLoader::new(Arc::clone(&data), norm.clone(), LoaderConfig::eval(6)).unwrap();
    let batch = e.host_epoch(0).next().unwrap();
    let mut expect = vec![0f32; shape.len()];
    norm.apply(data.image(2), shape, &mut expect);
    assert_eq!(
        &batch.images[2 * shape.len()..3 * shape.len()],
        expect.as_slice()
    );
}

#[test]
fn loader_rejects_bad_configuration() {
    let data = Arc::new(toy_dataset(4, ImageShape::new(1, 1, 1)));
    assert!(
        BatchLoader::new(
            Arc::clone(&data),
            Normalization::unit(3),
            LoaderConfig::eval(2)
        )
        .is_err()
    );
    assert!(
        BatchLoader::new(
            Arc::clone(&data),
            Normalization::unit(1),
            LoaderConfig::eval(0)
        )
        .is_err()
    );
    let mut cfg = LoaderConfig::eval(2);
    cfg.prefetch = 0;
    assert!(BatchLoader::new(data, Normalization::unit(1), cfg).is_err());
}

#[test]
fn loader_stops_cleanly_when_dropped_early() {
    let data = Arc::new(toy_dataset(100, ImageShape::new(1, 4, 4)));
    let mut cfg = LoaderConfig::train(2, Augment::NONE, 3);
    cfg.prefetch = 1;
    let loader = BatchLoader::new(data, Normalization::unit(1), cfg).unwrap();
    let mut it = loader.host_epoch(0);
    assert!(it.is_threaded());
    assert_eq!(it.len(), 50);
    assert!(it.next().is_some());
    assert_eq!(it.len(), 49);
    drop(it); // must not hang on the blocked worker
}

#[test]
fn loader_yields_burn_tensors() {
    let shape = ImageShape::new(3, 4, 5);
    let data = Arc::new(toy_dataset(7, shape));
    let norm = Normalization::from_dataset(&data).unwrap();
    let loader = BatchLoader::new(
        Arc::clone(&data),
        norm,
        LoaderConfig::train(3, Augment::CROP_FLIP, 5),
    )
    .unwrap();
    let device = Device::flex();
    let host: Vec<HostBatch> = loader.host_epoch(2).collect();
    let batches: Vec<Batch> = loader.epoch(2, &device).collect();
    assert_eq!(batches.len(), 3);
    let mut seen = Vec::new();
    for (b, h) in batches.into_iter().zip(host) {
        let n = b.indices.len();
        assert_eq!(b.images.dims(), [n, 3, 4, 5]);
        assert_eq!(b.labels.dims(), [n]);
        let images = b.images.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(images, h.images);
        let labels = b.labels.into_data().try_to_vec_as::<i64>().unwrap();
        assert_eq!(labels, h.labels);
        seen.extend(b.indices);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..7).collect::<Vec<_>>());
}

// ---------- description ----------

#[test]
fn spec_parses_from_ron_with_defaults_and_rejects_unknown_fields() {
    let s: DataSpec = ron::from_str(r#"(kind: Mnist, path: "data/mnist-5k")"#).unwrap();
    assert_eq!(s, DataSpec::new(DataKind::Mnist, "data/mnist-5k"));
    assert_eq!(s.validation_fraction, 0.1);
    assert_eq!(s.augment(), Augment::NONE);

    let s: DataSpec = ron::from_str(
        r#"(kind: Cifar10, path: "/abs/cifar", validation_fraction: 0.2, seed: 7,
            augment: Some((crop_padding: 2)))"#,
    )
    .unwrap();
    assert_eq!(s.seed, 7);
    assert_eq!(
        s.augment(),
        Augment {
            crop_padding: 2,
            horizontal_flip: false
        }
    );
    assert_eq!(s.resolve(Path::new("/base")), PathBuf::from("/abs/cifar"));
    assert_eq!(
        DataSpec::new(DataKind::Cifar10, "c").augment(),
        Augment::CROP_FLIP
    );

    let err = ron::from_str::<DataSpec>(r#"(kind: Mnist, path: "x", valdation_fraction: 0.2)"#)
        .unwrap_err();
    assert!(err.to_string().contains("valdation_fraction"), "{err}");
    assert!(ron::from_str::<DataSpec>(r#"(kind: Svhn, path: "x")"#).is_err());
    assert!(
        ron::from_str::<DataSpec>(
            r#"(kind: Mnist, path: "x", augment: Some((crop_padding: 1, flip: true)))"#
        )
        .is_err()
    );

    let back: DataSpec = ron::from_str(&ron::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn spec_load_splits_relative_to_base_and_normalizes_on_train_only() {
    let base = TempDir::new("spec");
    let sub = TempDir(base.path().join("digits"));
    std::fs::create_dir(sub.path()).unwrap();
    mnist_dir(&sub, 50, 10, true);
    let mut spec = DataSpec::new(DataKind::Mnist, "digits");
    spec.validation_fraction = 0.2;
    spec.seed = 3;
    let d = spec.load(base.path()).unwrap();
    assert_eq!((d.train.len(), d.validation.len()), (40, 10));
    assert_eq!(d.validation.class_counts(), vec![1; 10]);
    assert_eq!(
        d.normalization,
        Normalization::from_dataset(&d.train).unwrap()
    );
    let all = spec.load_train_files(base.path()).unwrap();
    assert_eq!(d.train.as_ref(), &all.subset(&d.split.train).unwrap());
    assert_eq!(
        d.validation.as_ref(),
        &all.subset(&d.split.validation).unwrap()
    );
    assert_eq!(
        spec.load(base.path()).unwrap().split,
        d.split,
        "deterministic"
    );
    assert_eq!(spec.load_test(base.path()).unwrap().len(), 10);

    let loader = d.train_loader(16).unwrap();
    assert_eq!(loader.batches_per_epoch(), 3);
    assert!(!loader.config().augment.horizontal_flip);
    let v = d.validation_loader(16).unwrap();
    assert_eq!(v.host_epoch(0).map(|b| b.len()).sum::<usize>(), 10);

    // Errors name the resolved path.
    let missing = DataSpec::new(DataKind::Mnist, "elsewhere");
    let err = missing.load(base.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains(&base.path().join("elsewhere").display().to_string()),
        "{err}"
    );
    spec.validation_fraction = 1.0;
    assert!(matches!(spec.load(base.path()), Err(DataError::Invalid(_))));
}

// ---------- shipped data ----------

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
        .join(name)
}

#[test]
fn shipped_data_sets_load_with_the_documented_counts() {
    for (name, rows, train_n, test_n, train_counts) in [
        ("mnist-5k", 28, 4000, 1000, vec![400; 10]),
        (
            "uci-digits-8x8",
            8,
            1438,
            359,
            vec![142, 146, 142, 146, 145, 146, 145, 143, 139, 144],
        ),
    ] {
        let dir = shipped(name);
        let train = load_idx_dir(&dir, IdxPart::Train, 10).unwrap();
        let test = load_idx_dir(&dir, IdxPart::Test, 10).unwrap();
        assert_eq!((train.len(), test.len()), (train_n, test_n), "{name}");
        assert_eq!(train.shape(), ImageShape::new(1, rows, rows), "{name}");
        assert_eq!(test.shape(), train.shape(), "{name}");
        assert_eq!(train.class_counts(), train_counts, "{name}");
        assert!(train.labels().iter().chain(test.labels()).all(|&l| l < 10));
        assert_eq!(*train.labels().iter().max().unwrap(), 9);
        assert_eq!(*train.labels().iter().min().unwrap(), 0);

        let spec = DataSpec::new(DataKind::Mnist, name);
        let d = spec.load(&shipped("")).unwrap();
        assert_eq!(d.train.len() + d.validation.len(), train_n, "{name}");
        // Mean pixel of the shipped training files (README: 33.465 and 77.89 of 255).
        let mean = Normalization::from_dataset(&train).unwrap().mean[0] * 255.0;
        let documented = if name == "mnist-5k" { 33.465 } else { 77.89 };
        assert!((mean - documented).abs() < 0.01, "{name}: mean {mean}");
    }
}

#[test]
fn a_hold_out_comes_from_the_training_part_only_stratified_and_disjoint() {
    let base = TempDir::new("holdout");
    let sub = TempDir(base.path().join("digits"));
    std::fs::create_dir(sub.path()).unwrap();
    mnist_dir(&sub, 100, 10, true);
    let mut spec = DataSpec::new(DataKind::Mnist, "digits");
    spec.validation_fraction = 0.2;
    let d = spec.load(base.path()).unwrap();
    let (rest, held) = d.hold_out(0.25).unwrap();
    assert_eq!((rest.train.len(), held.len()), (60, 20));
    assert_eq!(held.class_counts(), vec![2; 10], "stratified");
    // the validation split and the normalization are untouched
    assert_eq!(rest.validation, d.validation);
    assert_eq!(rest.normalization, d.normalization);
    // every held-out and every remaining image is a training image, and none is both
    let key = |ds: &Dataset, i: usize| (ds.image(i).to_vec(), ds.label(i));
    let train: Vec<_> = (0..d.train.len()).map(|i| key(&d.train, i)).collect();
    let mut seen: Vec<_> = (0..rest.train.len()).map(|i| key(&rest.train, i)).collect();
    seen.extend((0..held.len()).map(|i| key(&held, i)));
    seen.sort();
    let mut all = train.clone();
    all.sort();
    assert_eq!(
        seen, all,
        "the two parts are the training part, each image once"
    );
    assert_eq!(
        d.hold_out(0.25).unwrap().0.train,
        rest.train,
        "deterministic"
    );
}
