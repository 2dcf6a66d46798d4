//! Value parsers for clap: a bad value is a usage error (exit code 2) whose message
//! names the flag, before anything is loaded or trained.

/// A count flag's value: a whole number of at least 1.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// `--lr`: a finite number above 0 (the optimizers refuse anything else).
pub fn learning_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(lr) if lr.is_finite() && lr > 0.0 => Ok(lr),
        Ok(lr) => Err(format!(
            "{lr} is not a learning rate: it must be finite and above 0"
        )),
        Err(_) => Err(format!("{text:?} is not a number")),
    }
}
