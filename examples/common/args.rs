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

/// `--image-size`: `HxW` (`28x28`) or one side for a square (`64`), each side 1 to
/// 8192 pixels.
pub fn image_size(text: &str) -> Result<(usize, usize), String> {
    let side = |t: &str| match t.trim().parse::<usize>() {
        Ok(n) if (1..=ferrocnn::data::MAX_IMAGE_SIDE).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not an image size: give HxW (e.g. 28x28) or one side, 1 to {} pixels",
            ferrocnn::data::MAX_IMAGE_SIDE
        )),
    };
    match text.split_once(['x', 'X', '×']) {
        Some((h, w)) => Ok((side(h)?, side(w)?)),
        None => side(text).map(|s| (s, s)),
    }
}

/// `--channels`: 1 (gray) or 3 (RGB).
pub fn channels(text: &str) -> Result<usize, String> {
    match text {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err(format!("{text:?}: images have 1 (gray) or 3 (RGB) channels")),
    }
}
