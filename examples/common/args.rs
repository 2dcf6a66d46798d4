//! The examples' command lines, read with `lexopt` one argument at a time, and the
//! parsers of their values.
//!
//! lexopt, not clap: a few hundred lines that build in a second, where clap's
//! derive (clap_builder, clap_derive, syn) cost about a minute of CPU in a clean
//! build of any example (ripgrep moved to lexopt for the same reasons). The price
//! is a hand-written `--help`, kept beside each example's parser.
//!
//! Usage errors read and exit as clap's did: one `error: …` line naming the flag,
//! a pointer to `--help`, exit code 2, before anything is loaded or trained. A flag
//! given twice is an error too (which of the two was meant?).
//!
//! An example reads its arguments as lexopt's own examples do:
//!
//! ```ignore
//! let mut cli = CommandLine::from_env("mnist", HELP);
//! while let Some(arg) = cli.next() {
//!     match arg {
//!         Long("epochs") => epochs = Some(cli.value("--epochs <EPOCHS>", at_least_one)),
//!         Long("data") => data = cli.path("--data <DATA>"),
//!         Value(path) if model.is_none() => model = Some(PathBuf::from(path)),
//!         arg => unexpected(arg),
//!     }
//! }
//! ```

use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;

pub use lexopt::Arg::{self, Long, Short, Value};

/// A usage error: `error: MESSAGE` and a pointer to `--help` on standard error,
/// then exit code 2 (clap's code for a bad command line).
pub fn usage_error(message: impl Display) -> ! {
    eprintln!("error: {message}\n\nFor more information, try '--help'.");
    std::process::exit(2)
}

/// An argument no example takes: a usage error naming it.
pub fn unexpected(arg: Arg) -> ! {
    let text = match arg {
        Short(c) => format!("-{c}"),
        Long(name) => format!("--{name}"),
        Value(value) => value.to_string_lossy().into_owned(),
    };
    usage_error(format_args!("unexpected argument '{text}' found"))
}

/// A required positional argument (`<MODEL>`), or a usage error saying it is
/// missing.
pub fn required<T>(value: Option<T>, name: &str) -> T {
    value.unwrap_or_else(|| missing(name))
}

/// A usage error: the positional arguments `names` (`<MODEL> <OUT>`) were not given.
pub fn missing(names: &str) -> ! {
    usage_error(format_args!(
        "the following required arguments were not provided: {names}"
    ))
}

/// The end of every example's `--help`: the two flags [`CommandLine`] answers itself.
const HELP_FLAGS: &str = "  -h, --help\n          Print help\n  -V, --version\n          Print version\n";

/// An example's command line. `--help`/`-h` prints its help and `--version`/`-V`
/// its name and version (exit code 0); every mistake is a [`usage_error`].
pub struct CommandLine {
    parser: lexopt::Parser,
    name: &'static str,
    help: &'static str,
    /// The flags read so far, to refuse one given twice.
    given: Vec<String>,
}

impl CommandLine {
    /// The process's arguments, for the example `name` whose `--help` is `help`
    /// (its own flags; `-h` and `-V` are added).
    pub fn from_env(name: &'static str, help: &'static str) -> CommandLine {
        CommandLine {
            parser: lexopt::Parser::from_env(),
            name,
            help,
            given: Vec::new(),
        }
    }

    /// The next flag (`Long("epochs")` for `--epochs`, `Short('h')`) or positional
    /// argument (`Value`), or `None` after the last.
    pub fn next(&mut self) -> Option<Arg<'_>> {
        match self.parser.next() {
            Ok(Some(Long("help") | Short('h'))) => {
                print!("{}{HELP_FLAGS}", self.help);
                std::process::exit(0)
            }
            Ok(Some(Long("version") | Short('V'))) => {
                println!("{} {}", self.name, env!("CARGO_PKG_VERSION"));
                std::process::exit(0)
            }
            Ok(arg) => arg,
            Err(lexopt::Error::UnexpectedValue { option, value }) => usage_error(format_args!(
                "unexpected value '{}' for '{option}' found; no more were expected",
                value.to_string_lossy()
            )),
            Err(e) => usage_error(e),
        }
    }

    /// A flag without a value (`--profile`): true, once.
    pub fn flag(&mut self, flag: &str) -> bool {
        self.once(flag);
        true
    }

    /// The value of `flag`, read by `parse`. `flag` is written as `--help` shows it,
    /// with the value's name (`"--epochs <EPOCHS>"`), and a message names it so:
    /// `invalid value '0' for '--epochs <EPOCHS>': must be at least 1`.
    pub fn value<T>(&mut self, flag: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> T {
        self.once(flag);
        self.repeatable_value(flag, parse)
    }

    /// The value of a flag that may be given more than once (`--only a --only b`),
    /// read as [`value`](Self::value) reads it.
    pub fn repeatable_value<T>(&mut self, flag: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> T {
        let value = self.parser.value().unwrap_or_else(|_| missing_value(flag));
        match value.to_str() {
            Some(text) => parsed(flag, text, parse),
            None => usage_error(format_args!("invalid UTF-8 in the value of '{flag}': {value:?}")),
        }
    }

    /// The path given to `flag` (any bytes the OS allows in a path).
    pub fn path(&mut self, flag: &str) -> PathBuf {
        self.once(flag);
        self.parser
            .value()
            .map(PathBuf::from)
            .unwrap_or_else(|_| missing_value(flag))
    }

    /// The value of a flag whose value may be left out: `--explore` alone gives
    /// `None`, `--explore 9000` and `--explore=9000` give the value (an argument
    /// that starts with `-` is the next flag, not a value).
    pub fn optional_value<T>(
        &mut self,
        flag: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.once(flag);
        let value = self.parser.optional_value().or_else(|| {
            self.parser
                .try_raw_args()?
                .next_if(|next| !next.to_string_lossy().starts_with('-'))
        })?;
        Some(parsed(flag, &value.to_string_lossy(), parse))
    }

    /// Refuses `flag` a second time.
    fn once(&mut self, flag: &str) {
        let name = flag.split(' ').next().unwrap_or(flag);
        if self.given.iter().any(|given| given == name) {
            usage_error(format_args!(
                "the argument '{flag}' cannot be used multiple times"
            ));
        }
        self.given.push(name.to_string());
    }
}

/// `text` read by `parse`, or a usage error naming `flag` and saying why not.
fn parsed<T>(flag: &str, text: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> T {
    parse(text).unwrap_or_else(|why| usage_error(format_args!("invalid value '{text}' for '{flag}': {why}")))
}

fn missing_value(flag: &str) -> ! {
    usage_error(format_args!(
        "a value is required for '{flag}' but none was supplied"
    ))
}

/// A value of a type that parses itself (`u64`, `u16`, `usize`), with the
/// standard library's reason when it does not: `invalid digit found in string`.
pub fn number<T: FromStr>(text: &str) -> Result<T, String>
where
    T::Err: Display,
{
    text.parse().map_err(|e: T::Err| e.to_string())
}

/// A TCP port, 0 to 65535 (0: the system picks a free one).
pub fn port(text: &str) -> Result<u16, String> {
    let port: u64 = number(text)?;
    u16::try_from(port).map_err(|_| format!("{port} is not in 0..=65535"))
}

/// One of a flag's named values (`--net r1`), from `(name, value)` pairs in the
/// order `--help` lists them.
pub fn one_of<T: Copy>(text: &str, choices: &[(&str, T)]) -> Result<T, String> {
    match choices.iter().find(|(name, _)| *name == text) {
        Some(&(_, value)) => Ok(value),
        None => {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            Err(format!("possible values are {}", names.join(", ")))
        }
    }
}

/// A comma-separated list (`--torch-ms 8.8,22.8`), each item read by `parse`.
pub fn comma_list<T>(text: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    text.split(',').map(|item| parse(item.trim())).collect()
}

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
