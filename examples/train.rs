//! The main job: train an MLP or a CNN on the MNIST shipped in `data/mnist`.
//!
//! Defaults reproduce the book's TwoLayerNet: 784-50-10, ReLU, He init, SGD
//! with lr 0.1, batch 100, 17 epochs (10 200 iterations). `--model cnn`
//! trains the book's SimpleConvNet instead (conv 30×5×5 → ReLU → max-pool
//! 2×2 → Affine 100 → ReLU → Affine 10), by default with Adam, lr 0.001
//! decayed ×0.85 per epoch, batch 100, random shifts of up to 2 pixels,
//! 15 epochs. Each epoch shows a
//! progress bar, then a table row of train/test loss and accuracy; at the end
//! the curves are plotted to `<out>/curves.svg`, the network saved to
//! `<out>/model.safetensors` and the test-set predictions to
//! `<out>/test_predictions.txt` (for `scripts/check_checkpoint.py`).
//!
//!     cargo run --release --example train
//!     cargo run --release --example train -- --model cnn
//!     cargo run --release --example train -- --sizes 784,1024,1024,10 --optimizer adam --lr 0.001 --batch 128 --epochs 10

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use clap::{CommandFactory, Parser, ValueEnum};
use densegrad::data::{load_mnist, Dataset};
use densegrad::optim::{AdaGrad, Adam, Momentum, Nesterov, Optimizer, RmsProp, Sgd};
use densegrad::{
    Activation, Affine, Convolution, Init, Labels, Pooling, Relu, Reshape, Sequential, Tensor,
};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "Train a densegrad MLP or CNN on MNIST")]
struct Args {
    /// Directory with the four MNIST IDX files (.gz or raw).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))]
    data: PathBuf,
    /// The network: the book's TwoLayerNet-style MLP, or its SimpleConvNet.
    #[arg(long, value_enum, default_value_t = Model::Mlp)]
    model: Model,
    /// Layer sizes of the MLP, input first [default: 784,50,10].
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Activation between layers.
    #[arg(long, value_enum, default_value_t = Act::Relu)]
    activation: Act,
    /// Weight initialization.
    #[arg(long, value_enum, default_value_t = InitArg::He)]
    init: InitArg,
    /// Optimizer [default: sgd for the MLP, adam for the CNN].
    #[arg(long, value_enum)]
    optimizer: Option<Opt>,
    /// Learning rate [default: 0.1 for the MLP, 0.001 for the CNN].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Learning-rate factor applied after every epoch [default: 1 for the
    /// MLP, 0.85 for the CNN].
    #[arg(long, allow_negative_numbers = true)]
    lr_decay: Option<f32>,
    /// Shift each training image by a random whole number of pixels in
    /// −N..=N along each axis (zero fill) before each step [default: 0 for
    /// the MLP, 2 for the CNN].
    #[arg(long)]
    shift: Option<usize>,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    weight_decay: f32,
    /// Mini-batch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Passes over the training set [default: 17 for the MLP, 15 for the CNN].
    #[arg(long)]
    epochs: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed for initialization and shuffling.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where to write curves.svg, model.safetensors and test_predictions.txt.
    #[arg(long, default_value = "target/train")]
    out: PathBuf,
    /// No progress bars (for logs and CI).
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Model {
    Mlp,
    Cnn,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Act {
    Relu,
    Sigmoid,
    Tanh,
    LeakyRelu,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum InitArg {
    He,
    Xavier,
    Normal,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Opt {
    Sgd,
    Momentum,
    Nesterov,
    Adagrad,
    Rmsprop,
    Adam,
}

/// The settings after model-dependent defaults are filled in.
struct Plan {
    sizes: Vec<usize>,
    optimizer: Opt,
    lr: f32,
    lr_decay: f32,
    shift: usize,
    epochs: usize,
}

/// Fills in the defaults and checks every flag before any work starts:
/// `Err` holds the sentence for a usage error (exit code 2).
fn plan(args: &Args) -> Result<Plan, String> {
    let cnn = args.model == Model::Cnn;
    if cnn && args.sizes.is_some() {
        return Err("--sizes sets the MLP's layers; it does not apply to --model cnn".into());
    }
    let sizes = args.sizes.clone().unwrap_or_else(|| vec![784, 50, 10]);
    if sizes.len() < 2 || sizes[0] != 784 || sizes[sizes.len() - 1] != 10 || sizes.contains(&0) {
        return Err(format!(
            "--sizes {} must start with 784 (pixels), end with 10 (classes), and have no 0",
            sizes
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    let plan = Plan {
        sizes,
        optimizer: args
            .optimizer
            .unwrap_or(if cnn { Opt::Adam } else { Opt::Sgd }),
        lr: args.lr.unwrap_or(if cnn { 0.001 } else { 0.1 }),
        lr_decay: args.lr_decay.unwrap_or(if cnn { 0.85 } else { 1.0 }),
        shift: args.shift.unwrap_or(if cnn { 2 } else { 0 }),
        epochs: args.epochs.unwrap_or(if cnn { 15 } else { 17 }),
    };
    if !(plan.lr.is_finite() && plan.lr > 0.0) {
        return Err(format!("--lr {} must be a finite number above 0", plan.lr));
    }
    if !(plan.lr_decay.is_finite() && plan.lr_decay > 0.0 && plan.lr_decay <= 1.0) {
        return Err(format!(
            "--lr-decay {} must be a factor in (0, 1]",
            plan.lr_decay
        ));
    }
    if !(args.weight_decay.is_finite() && args.weight_decay >= 0.0) {
        return Err(format!(
            "--weight-decay {} must be a finite number of at least 0",
            args.weight_decay
        ));
    }
    if plan.shift >= 28 {
        return Err(format!(
            "--shift {} must be below 28, the image size",
            plan.shift
        ));
    }
    if args.batch == 0 {
        return Err("--batch 0: a batch needs at least one example".into());
    }
    if plan.epochs == 0 {
        return Err("--epochs 0: training needs at least one epoch".into());
    }
    if args.threads == Some(0) {
        return Err("--threads 0: training needs at least one thread".into());
    }
    Ok(plan)
}

/// The book's SimpleConvNet on (N, 784) rows: reshape to (N, 1, 28, 28),
/// conv 30×5×5 → ReLU → max-pool 2×2 stride 2 → Affine 4320→100 → ReLU →
/// Affine 100→10, every weight drawn by `init` from seeds derived from `seed`.
fn simple_conv_net(init: Init, seed: u64) -> Result<Sequential, densegrad::Error> {
    Ok(Sequential::new()
        .with(Reshape::new(&[1, 28, 28])?)
        .with(Convolution::with_init([30, 1, 5, 5], 1, 0, init, seed)?)
        .with(Relu::new())
        .with(Pooling::new(2, 2, 2, 0)?)
        .with(Affine::with_init(
            30 * 12 * 12,
            100,
            init,
            seed.wrapping_add(1),
        )?)
        .with(Relu::new())
        .with(Affine::with_init(100, 10, init, seed.wrapping_add(2))?))
}

/// A small seeded generator for the augmentation (xorshift64).
struct XorShift(u64);

impl XorShift {
    /// A value in 0..n.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (((self.0 >> 32) * n as u64) >> 32) as usize
    }
}

/// Moves each 28×28 image of `batch` by (dy, dx), each drawn from
/// −shift..=shift, filling the uncovered border with 0 (the background).
fn shift_images(batch: &mut [f32], shift: usize, rng: &mut XorShift) {
    const S: usize = 28;
    let mut tmp = [0.0f32; S * S];
    for img in batch.chunks_exact_mut(S * S) {
        let dy = rng.below(2 * shift + 1) as isize - shift as isize;
        let dx = rng.below(2 * shift + 1) as isize - shift as isize;
        if (dy, dx) == (0, 0) {
            continue;
        }
        tmp.copy_from_slice(img);
        img.fill(0.0);
        for y in 0..S as isize {
            let sy = y - dy;
            if !(0..S as isize).contains(&sy) {
                continue;
            }
            let (x0, x1) = ((dx.max(0)) as usize, (S as isize + dx.min(0)) as usize);
            let src = &tmp[sy as usize * S..][..S];
            let dst = &mut img[y as usize * S..][..S];
            dst[x0..x1]
                .copy_from_slice(&src[(x0 as isize - dx) as usize..(x1 as isize - dx) as usize]);
        }
    }
}

fn optimizer(args: &Args, plan: &Plan) -> Box<dyn Optimizer + Send> {
    let (lr, wd) = (plan.lr, args.weight_decay);
    match plan.optimizer {
        Opt::Sgd => Box::new(Sgd::new(lr).with_weight_decay(wd)),
        Opt::Momentum => Box::new(Momentum::new(lr, 0.9).with_weight_decay(wd)),
        Opt::Nesterov => Box::new(Nesterov::new(lr, 0.9).with_weight_decay(wd)),
        Opt::Adagrad => Box::new(AdaGrad::new(lr).with_weight_decay(wd)),
        Opt::Rmsprop => Box::new(RmsProp::new(lr, 0.99).with_weight_decay(wd)),
        Opt::Adam => Box::new(Adam::new(lr).with_weight_decay(wd)),
    }
}

/// Mean loss and accuracy over a whole dataset in batches of 1000 rows
/// (`Sequential::evaluate` runs in evaluation mode).
fn evaluate(net: &mut Sequential, d: &Dataset) -> Result<(f32, f32), densegrad::Error> {
    net.evaluate(d.x(), d.labels(), 1000)
}

struct EpochRow {
    train_loss: f32,
    train_acc: f32,
    test_loss: f32,
    test_acc: f32,
}

/// One chart of a train and a test curve per epoch.
fn chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    y: std::ops::Range<f32>,
    curves: [(&str, RGBColor, Vec<f32>); 2],
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    let epochs = curves[0].2.len();
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(1f32..(epochs.max(2) as f32), y)?;
    // Ticks on whole epochs only: at most one label per epoch.
    c.configure_mesh()
        .x_labels(epochs.clamp(2, 20))
        .x_label_formatter(&|v| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .x_desc("epoch")
        .y_desc(caption)
        .draw()?;
    for (name, color, values) in curves {
        c.draw_series(LineSeries::new(
            values.iter().enumerate().map(|(i, &v)| (i as f32 + 1.0, v)),
            color,
        ))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c.configure_series_labels().border_style(BLACK).draw()?;
    Ok(())
}

fn plot(path: &std::path::Path, rows: &[EpochRow]) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let col = |f: fn(&EpochRow) -> f32| rows.iter().map(f).collect::<Vec<_>>();
    let max_loss = rows
        .iter()
        .map(|r| r.train_loss.max(r.test_loss))
        .fold(0.0f32, f32::max)
        .max(1e-3);
    chart(
        &left,
        "loss",
        0.0..max_loss * 1.05,
        [
            ("train", BLUE, col(|r| r.train_loss)),
            ("test", RED, col(|r| r.test_loss)),
        ],
    )?;
    let min_acc = rows
        .iter()
        .map(|r| r.train_acc.min(r.test_acc))
        .fold(1.0f32, f32::min);
    chart(
        &right,
        "accuracy",
        (min_acc - 0.01).max(0.0)..1.0,
        [
            ("train", BLUE, col(|r| r.train_acc)),
            ("test", RED, col(|r| r.test_acc)),
        ],
    )?;
    root.present()?;
    Ok(())
}

fn main() {
    let args = Args::parse();
    let plan = match plan(&args) {
        Ok(plan) => plan,
        // A usage error: clap's format and exit code 2.
        Err(msg) => Args::command()
            .error(clap::error::ErrorKind::ValueValidation, msg)
            .exit(),
    };
    if let Err(e) = run(&args, &plan) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args, plan: &Plan) -> Result<(), Box<dyn Error>> {
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()?;
    }
    let start = Instant::now();
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create --out {}: {e}", args.out.display()))?;
    let mnist = load_mnist(&args.data)?;
    let activation = match args.activation {
        Act::Relu => Activation::Relu,
        Act::Sigmoid => Activation::Sigmoid,
        Act::Tanh => Activation::Tanh,
        Act::LeakyRelu => Activation::LeakyRelu(0.01),
    };
    let init = match args.init {
        InitArg::He => Init::He,
        InitArg::Xavier => Init::Xavier,
        InitArg::Normal => Init::Normal { std: 0.01 },
    };
    let (mut net, what) = match args.model {
        Model::Mlp => (
            Sequential::mlp(&plan.sizes, activation, init, args.seed)?,
            format!("MLP {:?} ({:?}", plan.sizes, args.activation),
        ),
        Model::Cnn => (
            simple_conv_net(init, args.seed)?,
            "SimpleConvNet conv30x5x5-relu-pool2-100-relu-10 (Relu".to_string(),
        ),
    };
    let mut opt = optimizer(args, plan);
    println!(
        "densegrad: {what}, {:?} init), {:?} lr {} (×{} per epoch) wd {}, shift ±{}, batch {}, {} epochs, {} threads, seed {}, SIMD {}",
        args.init,
        plan.optimizer,
        plan.lr,
        plan.lr_decay,
        args.weight_decay,
        plan.shift,
        args.batch,
        plan.epochs,
        rayon::current_num_threads(),
        args.seed,
        densegrad::kernels::simd::Isa::best().name()
    );
    println!(
        "{:>5} | {:>10} | {:>9} | {:>9} | {:>8} | {:>7}",
        "epoch", "train loss", "train acc", "test loss", "test acc", "train s"
    );
    println!("{}", "-".repeat(64));

    let (mut x, mut labels) = (Tensor::zeros(&[0]), Vec::new());
    let mut rng = XorShift(args.seed | 1);
    let mut rows = Vec::new();
    let train_start = Instant::now();
    // Each epoch's evaluation (the whole training and test sets, on a copy
    // of the network as that epoch left it) runs beside the next epoch's
    // training: with two threads it costs no time of its own, with one it
    // runs after the training, as before. The numbers are the same either
    // way; a row is printed when its evaluation is done, one epoch later.
    let mut pending: Option<(usize, Sequential, f64)> = None;
    for epoch in 1..=plan.epochs + 1 {
        let bar = if args.quiet || epoch > plan.epochs {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(mnist.train.len().div_ceil(args.batch) as u64)
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")?
                .progress_chars("=> "),
        );
        bar.set_message(epoch.to_string());
        let snapshot = pending.take();
        let (trained, evaluated) = rayon::join(
            || -> Result<Option<f64>, densegrad::Error> {
                if epoch > plan.epochs {
                    return Ok(None);
                }
                let epoch_start = Instant::now();
                let mut batches = mnist
                    .train
                    .batches(args.batch, Some(args.seed.wrapping_add(epoch as u64)))?;
                while batches.next_into(&mut x, &mut labels) {
                    if plan.shift > 0 {
                        shift_images(x.data_mut(), plan.shift, &mut rng);
                    }
                    net.loss(&x, Labels::Index(&labels))?;
                    net.backward()?;
                    opt.step(&mut net)?;
                    bar.inc(1);
                }
                bar.finish_and_clear();
                opt.set_learning_rate(opt.learning_rate() * plan.lr_decay);
                Ok(Some(epoch_start.elapsed().as_secs_f64()))
            },
            || {
                snapshot.map(|(done, mut snap, seconds)| {
                    let train = evaluate(&mut snap, &mnist.train);
                    let test = evaluate(&mut snap, &mnist.test);
                    (done, seconds, train, test)
                })
            },
        );
        if let Some((done, seconds, train, test)) = evaluated {
            let ((train_loss, train_acc), (test_loss, test_acc)) = (train?, test?);
            println!(
                "{done:>5} | {train_loss:>10.4} | {:>8.2}% | {test_loss:>9.4} | {:>7.2}% | {seconds:>7.2}",
                train_acc * 100.0,
                test_acc * 100.0,
            );
            if !train_loss.is_finite() {
                return Err(format!(
                    "training diverged at epoch {done} (loss {train_loss}); lower --lr"
                )
                .into());
            }
            rows.push(EpochRow {
                train_loss,
                train_acc,
                test_loss,
                test_acc,
            });
        }
        if let Some(seconds) = trained? {
            pending = Some((epoch, net.clone(), seconds));
        }
    }
    let train_time = train_start.elapsed().as_secs_f64();

    if !rows.is_empty() {
        plot(&args.out.join("curves.svg"), &rows)?;
    }
    net.save(args.out.join("model.safetensors"))?;
    net.set_training(false);
    let mut preds = String::with_capacity(mnist.test.len() * 2);
    let mut batches = mnist.test.batches(1000, None)?;
    while batches.next_into(&mut x, &mut labels) {
        // One class per line; a row with NaN logits has none ("nan").
        for class in net.predict_classes(&x)? {
            match class {
                Some(c) => preds.push_str(&c.to_string()),
                None => preds.push_str("nan"),
            }
            preds.push('\n');
        }
    }
    std::fs::write(args.out.join("test_predictions.txt"), preds)?;

    let last = rows.last();
    println!("{}", "-".repeat(64));
    println!(
        "final test accuracy {:.2}%; training {:.1} s ({:.2} s/epoch), wall time {:.1} s",
        last.map_or(0.0, |r| r.test_acc * 100.0),
        train_time,
        train_time / plan.epochs as f64,
        start.elapsed().as_secs_f64()
    );
    println!(
        "wrote {}, {}, {}",
        args.out.join("curves.svg").display(),
        args.out.join("model.safetensors").display(),
        args.out.join("test_predictions.txt").display()
    );
    Ok(())
}
