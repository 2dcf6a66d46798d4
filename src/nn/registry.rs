//! Architectures by name: a module tree as a [`ModuleConfig`] (the kind of each
//! module, its settings and its named children), and the [`Registry`] that builds
//! modules back from one — Keras's `get_config`/custom objects, in Rust.
//!
//! A model file stores the config as JSON beside the weights, so the file names
//! every layer and never depends on the order of an enum. Each built-in layer
//! implements [`FromConfig`] in its own file and is registered by one line in
//! `nn/mod.rs`; a user's module is registered with [`Registry::register`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Module;

/// Version of the config layout written into model files (the `"format"` field).
pub const CONFIG_VERSION: u32 = 1;

/// One module of an architecture: its kind, its own settings, its children.
///
/// ```
/// use ferrocnn::nn::{Linear, Module, ModuleConfig, ReLU, Registry, Sequential};
/// use rand::SeedableRng;
///
/// let rng = &mut rand::rngs::StdRng::seed_from_u64(0);
/// let net = Sequential::new().add(Linear::new(4, 3, rng)).add(ReLU);
/// let config = ModuleConfig::of(&net);
/// assert_eq!(config.kind, "Sequential");
/// assert_eq!(config.children[0].0, "fc1");
/// let rebuilt = Registry::new().build(&config).unwrap();   // same architecture
/// assert_eq!(ModuleConfig::of(rebuilt.as_ref()), config);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleConfig {
    /// The module's kind, as [`Module::kind`] names it (`"Conv2d"`).
    pub kind: String,
    /// Its own settings, as [`Module::config`] gives them.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config: Value,
    /// Its children with their names, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<(String, ModuleConfig)>,
}

impl ModuleConfig {
    /// The architecture of `module` and everything under it.
    pub fn of(module: &dyn Module) -> ModuleConfig {
        ModuleConfig {
            kind: module.kind().to_string(),
            config: module.config(),
            children: module
                .children()
                .into_iter()
                .map(|(name, child)| (name, ModuleConfig::of(child)))
                .collect(),
        }
    }

    /// The settings decoded as `T`, or an error naming this kind.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_json::from_value(self.config.clone()).map_err(|e| ConfigError::Invalid {
            kind: self.kind.clone(),
            reason: e.to_string(),
        })
    }

    /// The child named `name`, or an error saying it is missing.
    pub fn child(&self, name: &str) -> Result<&ModuleConfig, ConfigError> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
            .ok_or_else(|| ConfigError::Invalid {
                kind: self.kind.clone(),
                reason: format!("no child named {name:?}"),
            })
    }
}

/// Why a config could not be turned into a module.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigError {
    /// No constructor is registered for this kind.
    UnknownKind {
        /// The kind in the config.
        kind: String,
    },
    /// The settings are missing, malformed or inconsistent.
    Invalid {
        /// The kind in the config.
        kind: String,
        /// What is wrong.
        reason: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::UnknownKind { kind } => write!(
                f,
                "unknown module kind {kind:?}: register it (Registry::register) or build the model in code \
                 and load the weights into it (io::load_weights)"
            ),
            ConfigError::Invalid { kind, reason } => write!(f, "{kind}: invalid config: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An `Invalid` error for `kind`.
    pub fn invalid(kind: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            kind: kind.to_string(),
            reason: reason.into(),
        }
    }
}

/// A module that can be built from its config alone: every built-in layer and
/// container. Parameters are built with the right shapes (their values then come
/// from the model file's weights).
pub trait FromConfig: Module + Sized {
    /// The kind this type is stored as; equal to what [`Module::kind`] returns.
    const KIND: &'static str;

    /// Builds the module from `config` (children through `registry`).
    fn from_config(config: &ModuleConfig, registry: &Registry) -> Result<Self, ConfigError>;
}

/// How a registered kind is built.
pub type Builder = fn(&ModuleConfig, &Registry) -> Result<Box<dyn Module>, ConfigError>;

/// Constructors by kind: what turns a stored architecture back into modules.
/// [`Registry::new`] knows every built-in layer and container; add your own modules
/// with [`register`](Registry::register) (Keras's `custom_objects`).
///
/// Built for a file, a registry carries a budget ([`with_budget`](Registry::with_budget)):
/// the settings of a layer are a few bytes of JSON that may claim a weight of any
/// size, and a constructor allocates it before any weight is compared with the
/// file's. Constructors [`reserve`](Registry::reserve) what they allocate, so a
/// file can make the loader allocate no more values than it stores.
#[derive(Clone)]
pub struct Registry {
    builders: BTreeMap<String, Builder>,
    /// Values the parameters and buffers still to be built may hold; shared by
    /// clones, so that children built through a clone count too.
    budget: Option<Arc<Budget>>,
}

/// A number of values given, and what is left of it.
struct Budget {
    given: usize,
    left: AtomicUsize,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry of the built-in layers and containers.
    pub fn new() -> Self {
        let mut registry = Registry {
            builders: BTreeMap::new(),
            budget: None,
        };
        super::register_builtins(&mut registry);
        registry
    }

    /// Registers the module type `T` under its [`FromConfig::KIND`], replacing any
    /// earlier constructor of that kind.
    pub fn register<T: FromConfig>(&mut self) -> &mut Self {
        self.register_builder(T::KIND, |config, registry| {
            Ok(Box::new(T::from_config(config, registry)?))
        })
    }

    /// Registers a constructor function for `kind`.
    pub fn register_builder(&mut self, kind: &str, build: Builder) -> &mut Self {
        self.builders.insert(kind.to_string(), build);
        self
    }

    /// This registry with a budget of `values` parameter and buffer values in all,
    /// for the constructors to [`reserve`](Registry::reserve) from.
    pub fn with_budget(mut self, values: usize) -> Self {
        self.budget = Some(Arc::new(Budget {
            given: values,
            left: AtomicUsize::new(values),
        }));
        self
    }

    /// Takes the values of a tensor of shape `dims` from the budget; a constructor
    /// calls it before it allocates a parameter or buffer. `kind` and `what`
    /// (`"weight"`) are for the error.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] if the shape's size overflows, or exceeds what is
    /// left of the budget.
    pub fn reserve(&self, kind: &str, what: &str, dims: &[usize]) -> Result<(), ConfigError> {
        let too_large =
            |why: String| ConfigError::invalid(kind, format!("its {what} of shape {dims:?} {why}"));
        // ndarray refuses (panics on) shapes whose byte size overflows isize.
        let values = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| {
                n.checked_mul(std::mem::size_of::<f32>())
                    .is_some_and(|b| b <= isize::MAX as usize)
            })
            .ok_or_else(|| too_large("is larger than memory".into()))?;
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        budget
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(values)
            })
            .map(|_| ())
            .map_err(|_| {
                too_large(format!(
                    "would hold {values} values, past the budget of {} for the whole model",
                    budget.given
                ))
            })
    }

    /// The kinds this registry builds, in name order.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.builders.keys().map(String::as_str)
    }

    /// True if `kind` can be built.
    pub fn contains(&self, kind: &str) -> bool {
        self.builders.contains_key(kind)
    }

    /// Builds the module `config` describes.
    pub fn build(&self, config: &ModuleConfig) -> Result<Box<dyn Module>, ConfigError> {
        let build = self
            .builders
            .get(&config.kind)
            .ok_or_else(|| ConfigError::UnknownKind {
                kind: config.kind.clone(),
            })?;
        let module = build(config, self)?;
        if module.kind() != config.kind {
            return Err(ConfigError::invalid(
                &config.kind,
                format!("its constructor built a {}", module.kind()),
            ));
        }
        Ok(module)
    }
}

/// The settings of a built-in layer as JSON (they are plain data: cannot fail).
pub(crate) fn to_config<T: Serialize>(settings: &T) -> Value {
    serde_json::to_value(settings).expect("layer settings are plain data")
}
