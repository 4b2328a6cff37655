//! `qnas finetune` through the library: a model folder cut from an untrained digits supernet
//! (near chance), fine-tuned 30 steps, must improve, load back with exactly the reported
//! accuracy, and leave its input untouched; bad arguments are refused as invalid input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use evaluators::data::DataSpec;
use evaluators::evaluate_static;
use qnas_cli::finetune_cmd::{
    FINETUNE_SCHEMA, FinetuneError, FinetuneOptions, FinetuneProgress, FinetuneReport, finetune,
};
use qnas_cli::model_dir::{
    AccuracyInfo, CostInfo, DataInfo, INFO_FILE, InputInfo, MODEL_SCHEMA, Measured, ModelInfo,
    WEIGHTS_FILE, evaluate_model, load_model, sizes, write_model_dir,
};
use spaces::{Format, Space};
use supernet::int::Engine;
use supernet::{StaticNet, Supernet};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qnas-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `dir`: a member of a fresh (untrained) digits supernet, BN-recalibrated on a few
/// training batches, as `qnas export` would.
fn untrained_model(dir: &Path) {
    let space_file = root().join("spaces/presets/digits.ron");
    let space = Space::load(&space_file).unwrap();
    let device = Device::flex();
    device.seed(1);
    let data_cfg = space.data.clone().unwrap();
    let spec = DataSpec::from(&data_cfg);
    let data = spec.load(Path::new("")).unwrap();
    let train = data.train_loader(32).unwrap();
    let eval_bs = 100;
    let val = data.validation_loader(eval_bs).unwrap();
    let test = data
        .eval_loader(Arc::new(spec.load_test(Path::new("")).unwrap()), eval_bs)
        .unwrap();

    let arch = space
        .with_uniform_formats(&space.smallest(), Format::Int(4), Format::Int(4))
        .unwrap();
    let net = Supernet::new(&space, &device);
    let batches = train.epoch(0, &device).take(4).map(|b| b.images);
    net.recalibrate(&arch, batches).unwrap();
    let extracted = net.extract(&arch).unwrap();
    let bytes = extracted.to_safetensors().unwrap();
    let model = StaticNet::from_safetensors(extracted.plan.clone(), &bytes, &device).unwrap();
    let validation = Measured::from(evaluate_static(&model, val.epoch(0, &device)));
    let test = Measured::from(evaluate_static(&model, test.epoch(0, &device)));
    let cost = space.cost(&arch).unwrap();
    let i = space.input;
    let info = ModelInfo {
        schema: MODEL_SCHEMA.to_string(),
        name: dir.file_name().unwrap().to_string_lossy().to_string(),
        space: space.name.clone(),
        origin: search::Origin::ArchFile("test: untrained supernet".into()),
        input: InputInfo {
            channels: i.channels as usize,
            height: i.height as usize,
            width: i.width as usize,
        },
        classes: space.classes as usize,
        normalization: data.normalization.clone(),
        data: DataInfo {
            kind: spec.kind,
            path: std::fs::canonicalize(&data_cfg.path).unwrap(),
            validation_fraction: data_cfg.validation_fraction,
            seed: data_cfg.seed,
            batch_size: eval_bs,
        },
        accuracy: AccuracyInfo {
            search: validation.accuracy,
            validation,
            test,
        },
        cost: CostInfo {
            macs: cost.macs,
            bitops: cost.bitops,
            params: cost.params,
            weight_bits: cost.weight_bits,
        },
        size: sizes(&bytes).unwrap(),
        max_logit_difference: 0.0,
        finetune_steps: 0,
        onnx: None,
    };
    let src = std::fs::read(&space_file).unwrap();
    write_model_dir(dir, &src, &arch, &model, &info, &bytes, &[]).unwrap();
}

#[derive(Default)]
struct Record {
    begun: Option<u64>,
    losses: Vec<(u64, f64)>,
    ended: bool,
}

impl FinetuneProgress for Record {
    fn begin(&mut self, total: u64) {
        self.begun = Some(total);
    }
    fn step(&mut self, step: u64, loss: f64) {
        self.losses.push((step, loss));
    }
    fn note(&mut self, _: &str) {}
    fn end(&mut self) {
        self.ended = true;
    }
}

fn options(model: &Path, out: Option<PathBuf>, steps: u64) -> FinetuneOptions {
    FinetuneOptions {
        model: model.to_path_buf(),
        out,
        steps,
        lr: None,
        batch_size: None,
        seed: 0,
        device: Device::flex(),
    }
}

fn refused(opts: &FinetuneOptions) -> FinetuneError {
    let e = finetune(opts, &mut Record::default()).expect_err("must be refused");
    assert!(e.is_invalid_input(), "{e} must be invalid input");
    e
}

fn counts(m: &Measured) -> (usize, usize) {
    (m.correct, m.total)
}

#[test]
fn finetuning_improves_an_untrained_model_and_writes_a_loadable_folder() {
    let dir = tmp("finetune");
    let input = dir.join("front-01");
    untrained_model(&input);
    let weights_before = std::fs::read(input.join(WEIGHTS_FILE)).unwrap();
    let info_before = std::fs::read(input.join(INFO_FILE)).unwrap();

    // the default output: a sibling folder
    let mut rec = Record::default();
    let r: FinetuneReport = finetune(&options(&input, None, 30), &mut rec).unwrap();
    let out = dir.join("front-01-ft30");
    assert_eq!(r.schema, FINETUNE_SCHEMA);
    assert_eq!(r.out, out);
    assert_eq!(r.steps, 30);
    assert_eq!(rec.begun, Some(30));
    assert!(rec.ended);
    assert_eq!(
        rec.losses.iter().map(|s| s.0).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    // default lr: 0.1 x the space's 0.05; default batch: the space's 32
    assert!((r.lr - 0.005).abs() < 1e-12, "lr {}", r.lr);
    assert_eq!(r.batch_size, 32);

    // before is the input as model.json describes it; fine-tuning improved it
    let input_info = load_model(&input, &Device::flex()).unwrap().info;
    assert_eq!(
        counts(&r.before.validation),
        counts(&input_info.accuracy.validation)
    );
    assert_eq!(counts(&r.before.test), counts(&input_info.accuracy.test));
    assert!(
        r.after.validation.accuracy > r.before.validation.accuracy + 0.1,
        "validation {} -> {}",
        r.before.validation.accuracy,
        r.after.validation.accuracy
    );

    // the folder loads and `qnas eval` gives exactly the reported accuracy
    let device = Device::flex();
    let m = load_model(&out, &device).unwrap();
    let ev = evaluate_model(&m, None, &device, Engine::Float).unwrap();
    assert!(ev.matches_report);
    assert_eq!(counts(&ev.validation), counts(&r.after.validation));
    assert_eq!(counts(&ev.test), counts(&r.after.test));
    assert_eq!(m.info.name, "front-01-ft30");
    assert_eq!(m.info.finetune_steps, 30);
    assert_eq!(m.info.max_logit_difference, 0.0);
    assert_eq!(m.info.accuracy.search, input_info.accuracy.search);
    assert_eq!(m.info.cost, input_info.cost);
    assert_eq!(m.arch, load_model(&input, &device).unwrap().arch);
    assert_eq!(
        m.info.size.weights_file_bytes,
        std::fs::metadata(out.join(WEIGHTS_FILE)).unwrap().len()
    );

    // the input is untouched
    assert_eq!(
        std::fs::read(input.join(WEIGHTS_FILE)).unwrap(),
        weights_before
    );
    assert_eq!(std::fs::read(input.join(INFO_FILE)).unwrap(), info_before);

    // fine-tuning the fine-tuned model counts on, into an explicit folder
    let again = dir.join("again");
    let mut o = options(&out, Some(again.clone()), 2);
    o.lr = Some(0.001);
    o.batch_size = Some(8);
    let r2 = finetune(&o, &mut Record::default()).unwrap();
    assert_eq!(r2.batch_size, 8);
    assert_eq!(counts(&r2.before.validation), counts(&r.after.validation));
    assert_eq!(load_model(&again, &device).unwrap().info.finetune_steps, 32);

    // refused, exit code 2
    assert!(matches!(
        refused(&options(&input, None, 0)),
        FinetuneError::NoSteps
    ));
    assert!(matches!(
        refused(&options(&dir.join("missing"), None, 5)),
        FinetuneError::NotFound { .. }
    ));
    for bad_out in [
        input.clone(),
        input.join("."),
        dir.join("x").join("..").join("front-01"),
        dir.clone(),
        input.join("inside"),
    ] {
        let e = refused(&options(&input, Some(bad_out.clone()), 5));
        assert!(
            matches!(e, FinetuneError::BadOut { .. }),
            "{}: {e}",
            bad_out.display()
        );
    }
    // an existing folder that is not a model folder is not replaced
    let other = dir.join("notes");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "x").unwrap();
    assert!(matches!(
        refused(&options(&input, Some(other.clone()), 5)),
        FinetuneError::BadOut { .. }
    ));
    assert!(other.join("keep.txt").exists());
    let mut o = options(&input, None, 5);
    o.lr = Some(-1.0);
    assert!(matches!(refused(&o), FinetuneError::BadSetting(_)));
    let mut o = options(&input, None, 5);
    o.batch_size = Some(0);
    assert!(matches!(refused(&o), FinetuneError::BadSetting(_)));
    // nothing above touched the input
    assert_eq!(
        std::fs::read(input.join(WEIGHTS_FILE)).unwrap(),
        weights_before
    );
    assert_eq!(std::fs::read(input.join(INFO_FILE)).unwrap(), info_before);
    let _ = std::fs::remove_dir_all(&dir);
}
