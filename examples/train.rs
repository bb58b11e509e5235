//! The main job: train an MLP on the MNIST shipped in `data/mnist`.
//!
//! Defaults reproduce the book's TwoLayerNet: 784-50-10, ReLU, He init, SGD
//! with lr 0.1, batch 100, 17 epochs (10 200 iterations). Each epoch shows a
//! progress bar, then a table row of train/test loss and accuracy; at the end
//! the curves are plotted to `<out>/curves.svg`, the network saved to
//! `<out>/model.safetensors` and the test-set predictions to
//! `<out>/test_predictions.txt` (for `scripts/check_checkpoint.py`).
//!
//!     cargo run --release --example train
//!     cargo run --release --example train -- --sizes 784,1024,1024,10 --optimizer adam --lr 0.001 --batch 128 --epochs 10

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use densegrad::data::{load_mnist, Dataset};
use densegrad::optim::{AdaGrad, Adam, Momentum, Nesterov, Optimizer, RmsProp, Sgd};
use densegrad::{Activation, Init, Labels, Sequential, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "Train a densegrad MLP on MNIST")]
struct Args {
    /// Directory with the four MNIST IDX files (.gz or raw).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))]
    data: PathBuf,
    /// Layer sizes, input first.
    #[arg(long, value_delimiter = ',', default_value = "784,50,10")]
    sizes: Vec<usize>,
    /// Activation between layers.
    #[arg(long, value_enum, default_value_t = Act::Relu)]
    activation: Act,
    /// Weight initialization.
    #[arg(long, value_enum, default_value_t = InitArg::He)]
    init: InitArg,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = Opt::Sgd)]
    optimizer: Opt,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Mini-batch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 17)]
    epochs: usize,
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

fn optimizer(args: &Args) -> Box<dyn Optimizer> {
    let (lr, wd) = (args.lr, args.weight_decay);
    match args.optimizer {
        Opt::Sgd => Box::new(Sgd::new(lr).with_weight_decay(wd)),
        Opt::Momentum => Box::new(Momentum::new(lr, 0.9).with_weight_decay(wd)),
        Opt::Nesterov => Box::new(Nesterov::new(lr, 0.9).with_weight_decay(wd)),
        Opt::Adagrad => Box::new(AdaGrad::new(lr).with_weight_decay(wd)),
        Opt::Rmsprop => Box::new(RmsProp::new(lr, 0.99).with_weight_decay(wd)),
        Opt::Adam => Box::new(Adam::new(lr).with_weight_decay(wd)),
    }
}

/// Mean loss and accuracy over a whole dataset, in evaluation mode, in
/// batches of 1000 rows.
fn evaluate(net: &mut Sequential, d: &Dataset) -> Result<(f32, f32), densegrad::Error> {
    net.set_training(false);
    let result = net.evaluate(&d.x, &d.labels, 1000);
    net.set_training(true);
    result
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
    let epochs = curves[0].2.len() as f32;
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(1f32..epochs.max(2.0), y)?;
    c.configure_mesh().x_desc("epoch").draw()?;
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

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()?;
    }
    let start = Instant::now();
    let mnist = load_mnist(&args.data)?;
    if args.sizes.first() != Some(&mnist.train.features())
        || args.sizes.last() != Some(&mnist.train.classes)
    {
        return Err(format!(
            "--sizes {:?} must start with {} (pixels) and end with {} (classes)",
            args.sizes,
            mnist.train.features(),
            mnist.train.classes
        )
        .into());
    }
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
    let mut net = Sequential::mlp(&args.sizes, activation, init, args.seed)?;
    let mut opt = optimizer(&args);
    std::fs::create_dir_all(&args.out)?;
    println!(
        "densegrad: MLP {:?} ({:?}, {:?} init), {:?} lr {} wd {}, batch {}, {} epochs, {} threads, seed {}, SIMD {}",
        args.sizes,
        args.activation,
        args.init,
        args.optimizer,
        args.lr,
        args.weight_decay,
        args.batch,
        args.epochs,
        rayon::current_num_threads(),
        args.seed,
        densegrad::kernels::simd::Isa::best().name()
    );
    println!(
        "{:>5} | {:>10} | {:>9} | {:>9} | {:>8} | {:>7}",
        "epoch", "train loss", "train acc", "test loss", "test acc", "time s"
    );
    println!("{}", "-".repeat(64));

    let (mut x, mut labels) = (Tensor::zeros(&[0]), Vec::new());
    let mut rows = Vec::new();
    let train_start = Instant::now();
    for epoch in 1..=args.epochs {
        let epoch_start = Instant::now();
        let steps = mnist.train.len().div_ceil(args.batch);
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(steps as u64)
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")?
                .progress_chars("=> "),
        );
        bar.set_message(epoch.to_string());
        let mut batches = mnist
            .train
            .batches(args.batch, Some(args.seed.wrapping_add(epoch as u64)))?;
        while batches.next_into(&mut x, &mut labels) {
            net.loss(&x, Labels::Index(&labels))?;
            net.backward()?;
            opt.step(&mut net)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let (train_loss, train_acc) = evaluate(&mut net, &mnist.train)?;
        let (test_loss, test_acc) = evaluate(&mut net, &mnist.test)?;
        println!(
            "{epoch:>5} | {train_loss:>10.4} | {:>8.2}% | {test_loss:>9.4} | {:>7.2}% | {:>7.2}",
            train_acc * 100.0,
            test_acc * 100.0,
            epoch_start.elapsed().as_secs_f64()
        );
        if !train_loss.is_finite() {
            return Err(format!(
                "training diverged at epoch {epoch} (loss {train_loss}); lower --lr"
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
    let train_time = train_start.elapsed().as_secs_f64();

    if !rows.is_empty() {
        plot(&args.out.join("curves.svg"), &rows)?;
    }
    net.save(args.out.join("model.safetensors"))?;
    net.set_training(false);
    let mut preds = String::with_capacity(mnist.test.len() * 2);
    let mut batches = mnist.test.batches(1000, None)?;
    while batches.next_into(&mut x, &mut labels) {
        let out = net.predict(&x)?;
        let c = out.shape()[1];
        for row in out.data().chunks_exact(c) {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
            preds.push_str(&best.to_string());
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
        train_time / args.epochs.max(1) as f64,
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
