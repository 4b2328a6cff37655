//! Mutation tests of the data loaders: the shipped IDX files (`data/uci-digits-8x8`,
//! `data/mnist-5k`) and a synthesized CIFAR-10 folder, edited at random (header fields at the
//! limits, truncations, byte flips, bytes added and removed, image and label counts that
//! disagree, labels out of range, gzip streams corrupted, files missing or misnamed), must each
//! load through the public API or give an error that names the file; never a panic, and never
//! an allocation larger than the files justify (a header announcing 2^31 images is refused
//! before anything of that size is allocated: a counting allocator checks it).
//!
//! Every input comes from a fixed seed, so a failure reproduces; a failure names its case.
//! `QNAS_FUZZ_CASES=N` runs `N` cases in each mutation test instead of the defaults (a longer
//! campaign: `QNAS_FUZZ_CASES=20000 cargo test --release -p qnas-evaluators --test fuzz_data`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use evaluators::data::{
    CIFAR10_RECORD, DataError, DataKind, DataSpec, Dataset, IdxPart, ImageShape,
    cifar10_train_files, idx_part_files, load_images, read_cifar10_batch, read_idx_images,
    read_idx_labels,
};
use spaces::Rng;

// ---------------------------------------------------------------------------------------------
// The largest allocation of each thread, so that a case can check that no header made the
// loader ask for an absurd amount of memory.

/// The system allocator, noting the largest single request of the current thread.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // a const-initialized `Cell<usize>` has no destructor: this never allocates
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size);
        }
    });
}

// The only unsafe code of the test: forwarding to the system allocator.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract of `GlobalAlloc::alloc`, passed on unchanged
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `alloc`; `ptr` was allocated by `System` with `layout`
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest single allocation any case may make: several times the largest file
/// (`mnist-5k`'s 3 MB of training images), far below what a lying header would ask for.
const ALLOCATION_LIMIT: usize = 64 << 20;

/// Runs `f`, failing the test if it allocated more than [`ALLOCATION_LIMIT`] at once.
fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    LARGEST.with(|l| l.set(0));
    let out = f();
    let largest = LARGEST.with(Cell::get);
    assert!(
        largest <= ALLOCATION_LIMIT,
        "{what}: an allocation of {largest} bytes"
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Shared helpers.

/// Cases of a test: `QNAS_FUZZ_CASES` when set, else `default`.
fn cases(default: usize) -> usize {
    std::env::var("QNAS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh, empty folder of the test's own.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qnas-data-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn set_be_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// 32-bit values written over header fields.
fn limit_u32(rng: &mut Rng, original: u32) -> u32 {
    const LIMITS: &[u32] = &[
        0,
        1,
        2,
        3,
        7,
        8,
        9,
        10,
        28,
        255,
        256,
        0xFFFF,
        0x1_0000,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFFE,
        0xFFFF_FFFF,
    ];
    match rng.below(LIMITS.len() + 4) {
        i if i < LIMITS.len() => LIMITS[i],
        i if i == LIMITS.len() => original.wrapping_add(1),
        i if i == LIMITS.len() + 1 => original.wrapping_sub(1),
        i if i == LIMITS.len() + 2 => original.wrapping_mul(2),
        _ => rng.next_u64() as u32,
    }
}

/// One edit of the bytes of any file: a byte changed, a range deleted or duplicated, bytes
/// appended, a truncation.
fn edit_bytes(rng: &mut Rng, b: &mut Vec<u8>) {
    // edits near the start (headers) half of the time
    let at = if rng.chance(0.5) {
        rng.below(b.len().min(24) + 1)
    } else {
        rng.below(b.len() + 1)
    };
    match rng.below(6) {
        0 | 1 => {
            if at < b.len() {
                b[at] ^= 1 + rng.below(255) as u8;
            }
        }
        2 => {
            let end = (at + 1 + rng.below(64)).min(b.len());
            b.drain(at..end);
        }
        3 => {
            let end = (at + 1 + rng.below(64)).min(b.len());
            let piece = b[at..end].to_vec();
            let to = rng.below(b.len() + 1);
            b.splice(to..to, piece);
        }
        4 => {
            let n = 1 + rng.below(100);
            b.extend((0..n).map(|_| rng.next_u64() as u8));
        }
        _ => b.truncate(at),
    }
}

/// Damage to a gzip stream: a byte of the compressed data, header or trailer changed, a
/// truncation, garbage or a second member after it.
fn damage_gzip(rng: &mut Rng, gz: &mut Vec<u8>, raw: &[u8]) {
    match rng.below(7) {
        // the deflate data
        0 | 1 => {
            let at = 10 + rng.below(gz.len().saturating_sub(18).max(1));
            if at < gz.len() {
                gz[at] ^= 1 + rng.below(255) as u8;
            }
        }
        // the header: method, flags, ...
        2 => {
            let at = 2 + rng.below(8);
            gz[at] = rng.next_u64() as u8;
        }
        // the trailer: CRC-32 and length
        3 => {
            let at = gz.len() - 1 - rng.below(8);
            gz[at] ^= 1 + rng.below(255) as u8;
        }
        4 => {
            let at = rng.below(gz.len());
            gz.truncate(at);
        }
        5 => gz.extend((0..1 + rng.below(40)).map(|_| rng.next_u64() as u8)),
        // a valid second member: the file decompresses to the bytes twice, or to a part
        _ => {
            let cut = rng.below(raw.len() + 1);
            gz.extend(gzip(&raw[..cut]));
        }
    }
}

/// Whether `message` names `path`.
fn names(message: &str, path: &Path) -> bool {
    message.contains(&path.display().to_string())
}

// ---------------------------------------------------------------------------------------------
// IDX files.

const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The four files of a shipped IDX folder: name and decompressed bytes.
struct IdxFolder {
    files: Vec<(&'static str, Vec<u8>)>,
    /// The original gzipped bytes, written for the files a case does not touch.
    gz: Vec<Vec<u8>>,
}

fn idx_folder(name: &str) -> IdxFolder {
    let dir = root().join("data").join(name);
    let mut files = Vec::new();
    let mut gz = Vec::new();
    for f in IDX_FILES {
        let bytes = std::fs::read(dir.join(format!("{f}.gz"))).unwrap();
        files.push((f, gunzip(&bytes)));
        gz.push(bytes);
    }
    IdxFolder { files, gz }
}

/// The header length, the record length and the record count of an IDX file of this test.
fn idx_layout(name: &str, b: &[u8]) -> (usize, usize, usize) {
    if name.contains("images") {
        let record = u64::from(be_u32(b, 8)) * u64::from(be_u32(b, 12));
        (16, record as usize, be_u32(b, 4) as usize)
    } else {
        (8, 1, be_u32(b, 4) as usize)
    }
}

/// `b` (a valid IDX file) with `count` records: cut, or grown with copies of its records; the
/// header says so, so the file stays valid.
fn with_count(name: &str, b: &[u8], count: usize) -> Vec<u8> {
    let (header, record, _) = idx_layout(name, b);
    // the records present (an earlier edit may have made the header lie)
    let n = (b.len() - header).checked_div(record).unwrap_or(0);
    if n == 0 {
        return b.to_vec();
    }
    let mut out = b[..header].to_vec();
    set_be_u32(&mut out, 4, count as u32);
    for i in 0..count {
        let r = i % n;
        out.extend_from_slice(&b[header + r * record..header + (r + 1) * record]);
    }
    out
}

/// A valid edit that changes the count of records (applied to an image file and its label
/// file alike, the files stay consistent; applied to one, the counts disagree).
fn pick_count(rng: &mut Rng, n: usize) -> usize {
    [0, 1, 2, 3, 9, 10, 11, 20, n - 1, n + 1, n / 2][rng.below(11)]
}

/// One edit of a decompressed IDX file, described.
fn edit_idx(rng: &mut Rng, name: &str, b: &mut Vec<u8>) -> &'static str {
    let images = name.contains("images");
    let header_words = if images { 4 } else { 2 };
    match rng.below(10) {
        // a header field at a limit (magic, count, rows, columns)
        0..=2 if b.len() >= 4 * header_words => {
            let word = rng.below(header_words);
            let v = if word == 0 {
                const MAGICS: &[u32] = &[
                    0x0801,
                    0x0802,
                    0x0803,
                    0x0804,
                    0x0800,
                    0x0B03,
                    0x0C03,
                    0x0D03,
                    0x0E03,
                    0x0903,
                    0x0001_0803,
                    0x0803_0000,
                    0,
                ];
                MAGICS[rng.below(MAGICS.len())]
            } else {
                limit_u32(rng, be_u32(b, 4 * word))
            };
            set_be_u32(b, 4 * word, v);
            "header field"
        }
        // a consistent change of the number of records
        3 if b.len() >= 4 * header_words => {
            // from the records present (an earlier edit may have made the header lie)
            let (header, record, _) = idx_layout(name, b);
            let n = (b.len() - header).checked_div(record).unwrap_or(0);
            if n == 0 {
                return "none";
            }
            let count = pick_count(rng, n);
            *b = with_count(name, b, count);
            "count"
        }
        // the same pixels, another shape (rows x columns)
        4 if images && b.len() >= 16 => {
            let (rows, cols) = (be_u32(b, 8), be_u32(b, 12));
            let (r, c) = match rng.below(4) {
                // an earlier edit may have set the sizes anywhere: wrap, as a corrupt file would
                0 => (rows.wrapping_mul(cols), 1),
                1 => (1, rows.wrapping_mul(cols)),
                2 => (rows.wrapping_mul(2), cols / 2),
                _ => (rows / 2, cols.wrapping_mul(2)),
            };
            set_be_u32(b, 8, r);
            set_be_u32(b, 12, c);
            "shape"
        }
        // a label out of range
        5 if !images && b.len() > 8 => {
            let at = 8 + rng.below(b.len() - 8);
            b[at] = 10 + rng.below(246) as u8;
            "label"
        }
        // header only, or nothing at all
        6 if rng.chance(0.3) => {
            b.truncate([0, 2, 4, 8, 12, 16][rng.below(6)]);
            "header only"
        }
        _ => {
            edit_bytes(rng, b);
            "bytes"
        }
    }
}

/// How a case writes a mutated IDX file.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    Raw,
    Gzip,
    DamagedGzip,
}

/// One file of a case, written.
struct Written {
    path: PathBuf,
}

/// Writes `bytes` as the file `stem` of `dir` in `form`, under the name with `.gz` or without
/// (the loaders look at the bytes, not the name).
fn write_idx(rng: &mut Rng, dir: &Path, stem: &str, bytes: &[u8], form: Form) -> Written {
    let file = match form {
        Form::Raw => bytes.to_vec(),
        Form::Gzip => gzip(bytes),
        Form::DamagedGzip => {
            let mut gz = gzip(bytes);
            damage_gzip(rng, &mut gz, bytes);
            gz
        }
    };
    let gz_name = match form {
        Form::Raw => rng.chance(0.2),
        _ => rng.chance(0.8),
    };
    let path = if gz_name {
        dir.join(format!("{stem}.gz"))
    } else {
        dir.join(stem)
    };
    std::fs::write(&path, file).unwrap();
    Written { path }
}

/// Checks a data set loaded from mutated files: what the public API promises of one.
fn check_dataset(d: &Dataset, what: &str) {
    assert!(!d.is_empty(), "{what}: an empty data set loaded");
    assert_eq!(d.images().len(), d.len() * d.shape().len(), "{what}");
    assert!(d.labels().iter().all(|&l| l < 10), "{what}");
}

/// Checks the error of a load that read the mutated files `mutated` (and pristine ones): it
/// names one of them, or it is the split of a too small set and names the data folder `dir`.
fn check_error(e: &DataError, mutated: &[&Path], dir: &Path, what: &str) {
    let m = e.to_string();
    if let DataError::Split { path, .. } = e {
        assert_eq!(path, dir, "{what}: {m}");
        assert!(names(&m, dir), "{what}: {m}");
        return;
    }
    assert!(
        mutated.iter().any(|p| names(&m, p)),
        "{what}: `{m}` names no mutated file ({mutated:?})"
    );
}

#[test]
fn mutated_idx_folders_load_or_give_errors_naming_the_file() {
    let digits = idx_folder("uci-digits-8x8");
    let mnist = idx_folder("mnist-5k");
    let n = cases(2_000);
    let dir = temp_dir("idx");
    let mut rng = Rng::new(0x1D_F0_22);
    let (mut loaded, mut refused) = (0, 0);
    for case in 0..n {
        let mut r = rng.fork(case as u64);
        // one case in eight reads the larger MNIST files
        let folder = if case % 8 == 7 { &mnist } else { &digits };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // one file, or an image file and its labels with the same change of count
        let first = r.below(4);
        let pair = r.chance(0.2);
        let targets: Vec<usize> = if pair {
            let part = first & 2;
            vec![part, part + 1]
        } else {
            vec![first]
        };
        let count = pair.then(|| {
            let (name, b) = &folder.files[targets[0]];
            pick_count(&mut r, idx_layout(name, b).2)
        });
        let form = match r.below(10) {
            0..=3 => Form::Raw,
            4..=7 => Form::Gzip,
            _ => Form::DamagedGzip,
        };
        let mut written: Vec<Written> = Vec::new();
        let mut edits: Vec<&str> = Vec::new();
        for (i, (name, bytes)) in folder.files.iter().enumerate() {
            if !targets.contains(&i) {
                std::fs::write(dir.join(format!("{name}.gz")), &folder.gz[i]).unwrap();
                continue;
            }
            let mut b = match count {
                Some(c) => with_count(name, bytes, c),
                None => bytes.clone(),
            };
            if count.is_none() || r.chance(0.3) {
                for _ in 0..1 + r.below(3) {
                    edits.push(edit_idx(&mut r, name, &mut b));
                }
            }
            written.push(write_idx(&mut r, &dir, name, &b, form));
        }
        // sometimes a mutated file is removed
        let removed = r.chance(0.03);
        if removed {
            std::fs::remove_file(&written[0].path).unwrap();
        }
        let what = format!("case {case} ({edits:?}, {form:?}, files {targets:?})");
        let mutated: Vec<&Path> = written.iter().map(|w| w.path.as_path()).collect();
        let train_touched = targets.iter().any(|&t| t < 2);
        let test_touched = targets.iter().any(|&t| t >= 2);

        // the folder, as the search and the final report read it
        let spec = DataSpec::new(DataKind::Mnist, &dir);
        match bounded(&what, || spec.load(Path::new(""))) {
            Ok(d) => {
                check_dataset(&d.train, &what);
                check_dataset(&d.validation, &what);
                assert!(d.normalization.check(1).is_ok(), "{what}");
                loaded += 1;
            }
            Err(e) => {
                assert!(
                    train_touched,
                    "{what}: pristine training files refused: {e}"
                );
                check_error(&e, &mutated, &dir, &what);
                refused += 1;
            }
        }
        match bounded(&what, || spec.load_test(Path::new(""))) {
            Ok(d) => check_dataset(&d, &what),
            Err(e) => {
                assert!(test_touched, "{what}: pristine test files refused: {e}");
                check_error(&e, &mutated, &dir, &what);
            }
        }
        // which files a part reads: a name that exists
        for part in [IdxPart::Train, IdxPart::Test] {
            if let Err(e) = idx_part_files(&dir, part) {
                assert!(removed, "{what}: {e}");
                check_error(&e, &mutated, &dir, &what);
            }
        }
        // each mutated file on its own, and through the reader of `qnas predict`
        for (w, &t) in written.iter().zip(&targets).filter(|_| !removed) {
            let one = [w.path.as_path()];
            let images = folder.files[t].0.contains("images");
            if images {
                if let Err(e) = bounded(&what, || read_idx_images(&w.path)) {
                    check_error(&e, &one, &w.path, &what);
                }
            } else if let Err(e) = bounded(&what, || read_idx_labels(&w.path)) {
                check_error(&e, &one, &w.path, &what);
            }
            let shape = ImageShape::new(1 + 2 * r.below(2), 8, 8);
            match bounded(&what, || load_images(&w.path, shape)) {
                Ok(images) => {
                    assert!(!images.is_empty(), "{what}");
                    assert!(
                        images.iter().all(|i| i.pixels.len() == shape.len()),
                        "{what}"
                    );
                }
                Err(e) => check_error(&e, &one, &w.path, &what),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        loaded > n / 10 && refused > n / 4,
        "{loaded} loaded, {refused} refused"
    );
}

#[test]
fn idx_headers_announcing_huge_sizes_are_refused_before_allocating() {
    let digits = idx_folder("uci-digits-8x8");
    let dir = temp_dir("idx-huge");
    let (_, images) = &digits.files[2];
    let (_, labels) = &digits.files[3];
    for (count, rows, cols) in [
        (0x8000_0000u32, 8, 8),
        (0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF),
        (1, 0xFFFF_FFFF, 0xFFFF_FFFF),
        (0xFFFF_FFFF, 1, 1),
        (0x7FFF_FFFF, 28, 28),
    ] {
        let mut b = images.clone();
        set_be_u32(&mut b, 4, count);
        set_be_u32(&mut b, 8, rows);
        set_be_u32(&mut b, 12, cols);
        for gz in [false, true] {
            let path = dir.join(format!("images-{count}-{rows}-{cols}-{gz}"));
            std::fs::write(&path, if gz { gzip(&b) } else { b.clone() }).unwrap();
            let what = path.display().to_string();
            let e = bounded(&what, || read_idx_images(&path)).expect_err(&what);
            assert!(names(&e.to_string(), &path), "{what}: {e}");
            let e =
                bounded(&what, || load_images(&path, ImageShape::new(1, 8, 8))).expect_err(&what);
            assert!(names(&e.to_string(), &path), "{what}: {e}");
        }
    }
    let mut b = labels.clone();
    set_be_u32(&mut b, 4, 0xFFFF_FFFF);
    let path = dir.join("labels-huge");
    std::fs::write(&path, &b).unwrap();
    let e = bounded("labels", || read_idx_labels(&path)).expect_err("labels");
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    assert!(names(&e.to_string(), &path), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn training_files_too_small_to_split_are_an_error_naming_the_folder() {
    // found by the mutation test: the split's error named no file
    let digits = idx_folder("uci-digits-8x8");
    let dir = temp_dir("idx-small");
    for (i, (name, bytes)) in digits.files.iter().enumerate() {
        let b = if i < 2 {
            with_count(name, bytes, 3)
        } else {
            bytes.clone()
        };
        std::fs::write(dir.join(name), b).unwrap();
    }
    let e = DataSpec::new(DataKind::Mnist, &dir)
        .load(Path::new(""))
        .expect_err("3 samples do not split");
    assert!(matches!(e, DataError::Split { .. }), "{e}");
    assert!(names(&e.to_string(), &dir), "{e}");
    // relative to the base folder, as a space file gives it
    let spec = DataSpec::new(DataKind::Mnist, dir.file_name().unwrap());
    let e = spec.load(dir.parent().unwrap()).expect_err("3 samples");
    assert!(names(&e.to_string(), &dir), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10 binary batches.

/// Records per synthesized batch: with two training batches, every class has ten samples, so
/// the default validation fraction holds out one of each.
const CIFAR_RECORDS: usize = 50;

/// A batch of `CIFAR_RECORDS` records, labels cycling through the classes.
fn cifar_batch(rng: &mut Rng) -> Vec<u8> {
    let mut b = Vec::with_capacity(CIFAR_RECORDS * CIFAR10_RECORD);
    for i in 0..CIFAR_RECORDS {
        b.push((i % 10) as u8);
        b.extend((0..CIFAR10_RECORD - 1).map(|_| rng.next_u64() as u8));
    }
    b
}

const CIFAR_FILES: [&str; 3] = ["data_batch_1.bin", "data_batch_2.bin", "test_batch.bin"];

/// One edit of a batch file.
fn edit_cifar(rng: &mut Rng, b: &mut Vec<u8>) -> &'static str {
    let records = b.len() / CIFAR10_RECORD;
    match rng.below(8) {
        // cut at a record boundary (a valid, smaller file; at 0 an empty one)
        0 => {
            b.truncate(rng.below(records + 1) * CIFAR10_RECORD);
            "whole records"
        }
        // cut inside a record
        1 => {
            b.truncate(rng.below(b.len() + 1));
            "truncated"
        }
        // a part of a record appended
        2 => {
            let n = 1 + rng.below(CIFAR10_RECORD - 1);
            b.extend((0..n).map(|_| rng.next_u64() as u8));
            "partial record"
        }
        // a label out of range
        3 if records > 0 => {
            let at = rng.below(records) * CIFAR10_RECORD;
            b[at] = 10 + rng.below(246) as u8;
            "label"
        }
        _ => {
            edit_bytes(rng, b);
            "bytes"
        }
    }
}

/// A change of the folder: files missing, a gap in the numbering, names that look like batch
/// files, a folder where a file should be, the nested layout of the archive.
fn edit_cifar_folder(rng: &mut Rng, dir: &Path) -> &'static str {
    match rng.below(8) {
        0 => {
            let f = CIFAR_FILES[rng.below(3)];
            std::fs::remove_file(dir.join(f)).unwrap();
            "missing file"
        }
        1 => {
            std::fs::copy(dir.join("data_batch_1.bin"), dir.join("data_batch_4.bin")).unwrap();
            "gap"
        }
        2 => {
            std::fs::copy(dir.join("data_batch_2.bin"), dir.join("data_batch_3.bin")).unwrap();
            "third batch"
        }
        3 => {
            let name = [
                "data_batch_01.bin",
                "data_batch_x.bin",
                "data_batch_.bin",
                "data_batch_1.bin.gz",
                "data_batch_99999999999.bin",
                "data_batch_-1.bin",
                "data_batch_+2.bin",
            ][rng.below(7)];
            std::fs::write(dir.join(name), b"not a batch").unwrap();
            "odd name"
        }
        4 => {
            let f = CIFAR_FILES[rng.below(3)];
            std::fs::remove_file(dir.join(f)).unwrap();
            std::fs::create_dir(dir.join(f)).unwrap();
            "folder for a file"
        }
        5 => {
            // the archive's layout: the batches one level down
            let nested = dir.join("cifar-10-batches-bin");
            std::fs::create_dir(&nested).unwrap();
            for f in CIFAR_FILES {
                std::fs::rename(dir.join(f), nested.join(f)).unwrap();
            }
            "nested"
        }
        _ => "none",
    }
}

#[test]
fn only_canonical_batch_names_are_batches() {
    // found by the mutation test: `data_batch_01.bin` counted as batch 1, so the folder was
    // refused as missing `data_batch_2.bin`, which was there
    let mut rng = Rng::new(3);
    let dir = temp_dir("cifar-names");
    for f in CIFAR_FILES {
        std::fs::write(dir.join(f), cifar_batch(&mut rng)).unwrap();
    }
    for odd in [
        "data_batch_01.bin",
        "data_batch_+2.bin",
        "data_batch_99999999999.bin",
    ] {
        std::fs::write(dir.join(odd), b"not a batch").unwrap();
    }
    let files = cifar10_train_files(&dir).unwrap();
    assert_eq!(
        files,
        vec![dir.join("data_batch_1.bin"), dir.join("data_batch_2.bin")]
    );
    let d = DataSpec::new(DataKind::Cifar10, &dir)
        .load(Path::new(""))
        .unwrap();
    assert_eq!(d.train.len() + d.validation.len(), 2 * CIFAR_RECORDS);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mutated_cifar_folders_load_or_give_errors_naming_the_file() {
    let mut seed_rng = Rng::new(0xC1FA);
    let batches: Vec<Vec<u8>> = (0..3).map(|_| cifar_batch(&mut seed_rng)).collect();
    let n = cases(1_000);
    let dir = temp_dir("cifar");
    let mut rng = Rng::new(0xC1FA_0010);
    let (mut loaded, mut refused) = (0, 0);
    for case in 0..n {
        let mut r = rng.fork(case as u64);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = r.below(3);
        let form = match r.below(10) {
            0..=5 => Form::Raw,
            6..=7 => Form::Gzip,
            _ => Form::DamagedGzip,
        };
        let mut edits: Vec<&str> = Vec::new();
        for (i, f) in CIFAR_FILES.iter().enumerate() {
            let mut b = batches[i].clone();
            if i == target {
                if r.chance(0.85) {
                    for _ in 0..1 + r.below(2) {
                        edits.push(edit_cifar(&mut r, &mut b));
                    }
                }
                b = match form {
                    Form::Raw => b,
                    Form::Gzip => gzip(&b),
                    Form::DamagedGzip => {
                        let mut gz = gzip(&b);
                        damage_gzip(&mut r, &mut gz, &b);
                        gz
                    }
                };
            }
            std::fs::write(dir.join(f), b).unwrap();
        }
        let folder_edit = if r.chance(0.25) {
            edit_cifar_folder(&mut r, &dir)
        } else {
            "none"
        };
        let what = format!("case {case} ({edits:?} of {target}, {form:?}, folder: {folder_edit})");
        // the files as the loader finds them (the folder edit may have moved them)
        let batch_dir = evaluators::data::cifar10_batch_dir(&dir);
        let mutated = batch_dir.join(CIFAR_FILES[target]);
        // a folder edit may make the error about another file of the folder
        let touched: Vec<&Path> = if matches!(folder_edit, "none" | "odd name") {
            vec![&mutated]
        } else {
            vec![&mutated, &batch_dir]
        };

        let spec = DataSpec::new(DataKind::Cifar10, &dir);
        match bounded(&what, || spec.load(Path::new(""))) {
            Ok(d) => {
                check_dataset(&d.train, &what);
                check_dataset(&d.validation, &what);
                assert_eq!(d.train.shape(), ImageShape::new(3, 32, 32), "{what}");
                loaded += 1;
            }
            Err(e) => {
                assert!(
                    target < 2 || folder_edit != "none",
                    "{what}: pristine training files refused: {e}"
                );
                check_error(&e, &touched, &dir, &what);
                refused += 1;
            }
        }
        match bounded(&what, || spec.load_test(Path::new(""))) {
            Ok(d) => check_dataset(&d, &what),
            Err(e) => {
                assert!(
                    target == 2 || folder_edit != "none",
                    "{what}: a pristine test file refused: {e}"
                );
                check_error(&e, &touched, &dir, &what);
            }
        }
        match cifar10_train_files(&dir) {
            Ok(files) => assert!(!files.is_empty(), "{what}"),
            Err(e) => check_error(&e, &touched, &dir, &what),
        }
        if let Err(e) = bounded(&what, || read_cifar10_batch(&mutated)) {
            assert!(names(&e.to_string(), &mutated), "{what}: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        loaded > n / 10 && refused > n / 4,
        "{loaded} loaded, {refused} refused"
    );
}
