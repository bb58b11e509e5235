//! The notebook's test section ("5. 테스트 예시"), run with densegrad.
//!
//! Each value is printed beside what the notebook printed, with one line on
//! why they differ. Run with `cargo run --release --example notebook`.

use densegrad::{Error, Labels, SoftmaxWithLoss, Tensor};

fn row(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:>12.8}")).collect();
    format!("[{}]", parts.join(", "))
}

fn example(
    name: &str,
    logits: [f32; 3],
    notebook_loss: f64,
    notebook_dx: [f64; 3],
) -> Result<(), Error> {
    let mut swl = SoftmaxWithLoss::new();
    let t = Tensor::from_slice(&[0.0, 1.0, 0.0]);
    let loss = swl.forward(&Tensor::from_slice(&logits), Labels::OneHot(&t))?;
    let dx = swl.backward(1.0)?;
    let dx_nb: Vec<f32> = notebook_dx.iter().map(|&v| v as f32).collect();

    println!("{name}: a = {logits:?}, t = [0, 1, 0]");
    println!(
        "  loss      densegrad {loss:>.10}   notebook {notebook_loss:.10}   (differ by {:.2e})",
        loss as f64 - notebook_loss
    );
    println!("            the notebook adds 1e-7 inside log(y + 1e-7); densegrad uses the exact log-softmax (PyTorch's F.cross_entropy)");
    println!("  backward  densegrad {}", row(dx.data()));
    println!("            notebook  {}", row(&dx_nb));
    println!(
        "            densegrad / 3 = {}",
        row(&dx.data().iter().map(|g| g / 3.0).collect::<Vec<_>>())
    );
    println!("            the notebook divides a 1-D input by t.shape[0] = 3 (its class count); densegrad treats 1-D as one sample, N = 1");
    println!();
    Ok(())
}

fn main() -> Result<(), Error> {
    println!("densegrad vs the notebook's printed values\n");
    example(
        "example 1 (almost right)",
        [1.0, 8.0, 3.0],
        0.007620616629495912,
        [0.00030165, -0.00253058, 0.00222893],
    )?;
    example(
        "example 2 (badly wrong)",
        [1.0, 3.0, 8.0],
        5.0076057626568575,
        [3.01653061e-04, -3.31104402e-01, 3.30802749e-01],
    )?;
    println!("Both examples as one batch of two rows (row-wise softmax, mean loss):");
    let x = Tensor::new(&[2, 3], vec![1.0, 8.0, 3.0, 1.0, 3.0, 8.0])?;
    let mut swl = SoftmaxWithLoss::new();
    let loss = swl.forward(&x, Labels::Index(&[1, 1]))?;
    println!("  loss = {loss:.7} (the mean of 0.0076207 and 5.0076207)");
    println!("  dx   =\n{:.8}", swl.backward(1.0)?);
    println!("  the notebook's softmax takes np.max over the whole batch; densegrad's is per row, so each row is the");
    println!("  single-sample gradient divided by N = 2");
    Ok(())
}
