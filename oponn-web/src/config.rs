//! Configuration from the environment (and an optional `.env` file).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the service runs; decides what it demands and how strict it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// A developer's machine: zero configuration, mock sign-in, readable logs.
    Development,
    /// Automated tests.
    Testing,
    /// A production rehearsal: production rules.
    Staging,
    /// Real votes: every dependency configured, secure cookies, JSON logs.
    Production,
}

impl Environment {
    /// True for staging and production, which refuse shortcuts.
    pub fn is_strict(self) -> bool {
        matches!(self, Environment::Staging | Environment::Production)
    }

    /// The name used in `OPONN_ENV`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Testing => "testing",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Environment::Development),
            "testing" | "test" => Ok(Environment::Testing),
            "staging" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err(ConfigError::Invalid {
                name: "OPONN_ENV",
                reason: format!(
                    "{value:?} is not one of development, testing, staging, production"
                ),
            }),
        }
    }
}

/// Everything the service reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `OPONN_ENV`; development when unset.
    pub environment: Environment,
    /// `OPONN_BIND`: the address to listen on; `127.0.0.1:8000` when unset.
    pub bind: String,
    /// `DATABASE_URL`: `postgres://…` or `sqlite://…`; the embedded default when unset.
    pub database_url: Option<String>,
    /// `REDIS_URL`: locks and pub/sub across instances; in-process when unset.
    pub redis_url: Option<String>,
    /// `OPONN_KMS_KEY_ID`: the KMS key that wraps data keys; a local key file when unset.
    pub kms_key_id: Option<String>,
    /// `AWS_REGION`, for KMS.
    pub aws_region: Option<String>,
    /// `OPONN_KMS_ENDPOINT`: an AWS-compatible KMS endpoint, for local testing.
    pub kms_endpoint: Option<String>,
    /// `OPONN_SECRET_KEY`: signs cookies and keys voter hashes; generated
    /// once and kept in the data directory when unset (outside staging and production).
    pub secret_key: Option<String>,
    /// `OPONN_SKIP_CSRF`: turns CSRF checks off, for local tools; refused
    /// in staging and production.
    pub skip_csrf: bool,
    /// `OPONN_DATA_DIR`: where the embedded default keeps its files; the
    /// working directory when unset.
    pub data_dir: PathBuf,
}

impl Config {
    /// Settings for a development run with nothing configured.
    pub fn development() -> Self {
        Self {
            environment: Environment::Development,
            bind: "127.0.0.1:8000".to_owned(),
            database_url: None,
            redis_url: None,
            kms_key_id: None,
            aws_region: None,
            kms_endpoint: None,
            secret_key: None,
            skip_csrf: false,
            data_dir: PathBuf::from("."),
        }
    }

    /// Reads the process environment, after loading `.env` if there is one
    /// (variables already set win over the file).
    ///
    /// # Errors
    /// [`ConfigError`] naming each setting that is missing or malformed.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is the normal case; a malformed one is worth failing on.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(error) if error.not_found() => {}
            Err(error) => {
                return Err(ConfigError::Invalid {
                    name: ".env",
                    reason: error.to_string(),
                });
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds a configuration from any variable lookup (tests pass a map).
    ///
    /// # Errors
    /// [`ConfigError`] naming each setting that is missing or malformed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let defaults = Self::development();
        let config = Self {
            environment: get("OPONN_ENV")
                .map(|value| value.parse())
                .transpose()?
                .unwrap_or(defaults.environment),
            bind: get("OPONN_BIND").unwrap_or(defaults.bind),
            database_url: get("DATABASE_URL"),
            redis_url: get("REDIS_URL"),
            kms_key_id: get("OPONN_KMS_KEY_ID"),
            aws_region: get("AWS_REGION"),
            kms_endpoint: get("OPONN_KMS_ENDPOINT"),
            secret_key: get("OPONN_SECRET_KEY"),
            skip_csrf: get("OPONN_SKIP_CSRF")
                .map(|value| parse_flag("OPONN_SKIP_CSRF", &value))
                .transpose()?
                .unwrap_or(false),
            data_dir: get("OPONN_DATA_DIR").map_or(defaults.data_dir, PathBuf::from),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules of the environment: staging and production need
    /// every dependency configured and refuse `OPONN_SKIP_CSRF`.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] naming every missing setting, or
    /// [`ConfigError::SkipCsrfRefused`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.environment.is_strict() {
            return Ok(());
        }
        let required = [
            ("DATABASE_URL", self.database_url.is_some()),
            ("REDIS_URL", self.redis_url.is_some()),
            ("OPONN_KMS_KEY_ID", self.kms_key_id.is_some()),
            ("OPONN_SECRET_KEY", self.secret_key.is_some()),
        ];
        let missing: Vec<&'static str> = required
            .iter()
            .filter(|(_, present)| !present)
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::Missing {
                environment: self.environment,
                names: missing,
            });
        }
        if self.skip_csrf {
            return Err(ConfigError::SkipCsrfRefused(self.environment));
        }
        Ok(())
    }

    /// True when cookies must carry `Secure` (staging and production).
    pub fn secure_cookies(&self) -> bool {
        self.environment.is_strict()
    }
}

fn parse_flag(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!("{value:?} is not a yes/no value (true, false, 1, 0)"),
        }),
    }
}

/// A configuration the service refuses to start with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Settings the environment requires are not set.
    #[error("{environment} requires these settings, which are not set: {}", names.join(", "))]
    Missing {
        /// The environment that requires them.
        environment: Environment,
        /// Every missing variable.
        names: Vec<&'static str>,
    },
    /// `OPONN_SKIP_CSRF` in staging or production.
    #[error("OPONN_SKIP_CSRF is refused in {0}: CSRF protection cannot be turned off there")]
    SkipCsrfRefused(Environment),
    /// A setting has a value the service cannot use.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_configured_is_a_development_run_on_port_8000() {
        let config = config(&[]).unwrap();
        assert_eq!(config.environment, Environment::Development);
        assert_eq!(config.bind, "127.0.0.1:8000");
        assert!(!config.secure_cookies());
    }

    #[test]
    fn production_names_every_missing_setting() {
        let error = config(&[("OPONN_ENV", "production"), ("REDIS_URL", "redis://x")])
            .unwrap_err()
            .to_string();
        for name in ["DATABASE_URL", "OPONN_KMS_KEY_ID", "OPONN_SECRET_KEY"] {
            assert!(error.contains(name), "{error}");
        }
        assert!(!error.contains("REDIS_URL"), "{error}");
    }

    #[test]
    fn skip_csrf_is_refused_in_staging() {
        let error = config(&[
            ("OPONN_ENV", "staging"),
            ("DATABASE_URL", "postgres://db"),
            ("REDIS_URL", "redis://r"),
            ("OPONN_KMS_KEY_ID", "alias/oponn"),
            ("OPONN_SECRET_KEY", "s"),
            ("OPONN_SKIP_CSRF", "true"),
        ])
        .unwrap_err();
        assert!(matches!(error, ConfigError::SkipCsrfRefused(_)));
    }

    #[test]
    fn malformed_values_are_named() {
        let error = config(&[("OPONN_ENV", "prod-ish")]).unwrap_err();
        assert!(error.to_string().starts_with("OPONN_ENV"));
        let error = config(&[("OPONN_SKIP_CSRF", "maybe")]).unwrap_err();
        assert!(error.to_string().starts_with("OPONN_SKIP_CSRF"));
    }
}
