//! Configuration from the environment (and an optional `.env` file).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::limits::{InvalidSetting, Limits};

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
    /// Sign-in with GitHub: enabled when `OPONN_GITHUB_CLIENT_ID`,
    /// `OPONN_GITHUB_CLIENT_SECRET` and `OPONN_GITHUB_REDIRECT_URL` are all set.
    pub github: Option<OAuthProviderConfig>,
    /// Sign-in with Google: enabled when `OPONN_GOOGLE_CLIENT_ID`,
    /// `OPONN_GOOGLE_CLIENT_SECRET` and `OPONN_GOOGLE_REDIRECT_URL` are all set.
    pub google: Option<OAuthProviderConfig>,
    /// Connection, size, time and rate limits; see [`Limits`].
    pub limits: Limits,
    /// `OPONN_PUBLIC_URL`: the address people reach this service at
    /// (`https://vote.example.org`), used for the links, QR codes and
    /// link previews that leave the site. When unset, each page uses the
    /// `Host` its request named.
    pub public_url: Option<String>,
}

/// One OAuth 2.0 sign-in provider: the client Oponn is registered as, and
/// the provider's endpoints (overridable for tests and self-hosted setups).
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthProviderConfig {
    /// The client id the provider issued.
    pub client_id: String,
    /// The client secret the provider issued; never logged.
    pub client_secret: String,
    /// Where the provider sends the browser back: this service's
    /// `/auth/{provider}/callback`, exactly as registered with the provider.
    pub redirect_url: String,
    /// The provider's authorization endpoint.
    pub auth_url: String,
    /// The provider's token endpoint.
    pub token_url: String,
    /// Where Oponn asks who signed in: for GitHub the REST API base (it
    /// reads `/user` and `/user/emails` under it), for Google the userinfo endpoint.
    pub user_info_url: String,
}

impl OAuthProviderConfig {
    /// GitHub's authorization endpoint.
    pub const GITHUB_AUTH_URL: &'static str = "https://github.com/login/oauth/authorize";
    /// GitHub's token endpoint.
    pub const GITHUB_TOKEN_URL: &'static str = "https://github.com/login/oauth/access_token";
    /// GitHub's REST API.
    pub const GITHUB_API_URL: &'static str = "https://api.github.com";
    /// Google's authorization endpoint.
    pub const GOOGLE_AUTH_URL: &'static str = "https://accounts.google.com/o/oauth2/v2/auth";
    /// Google's token endpoint.
    pub const GOOGLE_TOKEN_URL: &'static str = "https://oauth2.googleapis.com/token";
    /// Google's OpenID Connect userinfo endpoint.
    pub const GOOGLE_USERINFO_URL: &'static str =
        "https://openidconnect.googleapis.com/v1/userinfo";

    /// A GitHub OAuth app on github.com.
    pub fn github(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_url: impl Into<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_url: redirect_url.into(),
            auth_url: Self::GITHUB_AUTH_URL.to_owned(),
            token_url: Self::GITHUB_TOKEN_URL.to_owned(),
            user_info_url: Self::GITHUB_API_URL.to_owned(),
        }
    }

    /// A Google OAuth client.
    pub fn google(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_url: impl Into<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_url: redirect_url.into(),
            auth_url: Self::GOOGLE_AUTH_URL.to_owned(),
            token_url: Self::GOOGLE_TOKEN_URL.to_owned(),
            user_info_url: Self::GOOGLE_USERINFO_URL.to_owned(),
        }
    }
}

impl fmt::Debug for OAuthProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthProviderConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_url", &self.redirect_url)
            .field("auth_url", &self.auth_url)
            .field("token_url", &self.token_url)
            .field("user_info_url", &self.user_info_url)
            .finish()
    }
}

/// The variables that configure one provider.
struct ProviderVars {
    /// The provider's name in messages.
    provider: &'static str,
    client_id: &'static str,
    client_secret: &'static str,
    redirect_url: &'static str,
    auth_url: &'static str,
    token_url: &'static str,
    user_info_url: &'static str,
    /// The provider's defaults, given the three required values.
    defaults: fn(String, String, String) -> OAuthProviderConfig,
}

const GITHUB_VARS: ProviderVars = ProviderVars {
    provider: "GitHub",
    client_id: "OPONN_GITHUB_CLIENT_ID",
    client_secret: "OPONN_GITHUB_CLIENT_SECRET",
    redirect_url: "OPONN_GITHUB_REDIRECT_URL",
    auth_url: "OPONN_GITHUB_AUTH_URL",
    token_url: "OPONN_GITHUB_TOKEN_URL",
    user_info_url: "OPONN_GITHUB_API_URL",
    defaults: OAuthProviderConfig::github,
};

const GOOGLE_VARS: ProviderVars = ProviderVars {
    provider: "Google",
    client_id: "OPONN_GOOGLE_CLIENT_ID",
    client_secret: "OPONN_GOOGLE_CLIENT_SECRET",
    redirect_url: "OPONN_GOOGLE_REDIRECT_URL",
    auth_url: "OPONN_GOOGLE_AUTH_URL",
    token_url: "OPONN_GOOGLE_TOKEN_URL",
    user_info_url: "OPONN_GOOGLE_USERINFO_URL",
    defaults: OAuthProviderConfig::google,
};

impl ProviderVars {
    /// The provider's settings: `None` when none of the three required
    /// variables is set, an error naming the rest when only some are.
    fn read(
        &self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OAuthProviderConfig>, ConfigError> {
        let required = [self.client_id, self.client_secret, self.redirect_url];
        let values = required.map(get);
        let [Some(id), Some(secret), Some(redirect)] = values.clone() else {
            if values.iter().all(Option::is_none) {
                return Ok(None);
            }
            return Err(ConfigError::IncompleteProvider {
                provider: self.provider,
                missing: required
                    .iter()
                    .zip(&values)
                    .filter(|(_, value)| value.is_none())
                    .map(|(name, _)| *name)
                    .collect(),
            });
        };
        let mut config = (self.defaults)(id, secret, redirect);
        for (name, field) in [
            (self.auth_url, &mut config.auth_url),
            (self.token_url, &mut config.token_url),
            (self.user_info_url, &mut config.user_info_url),
        ] {
            if let Some(value) = get(name) {
                *field = value;
            }
        }
        self.check(&config)?;
        Ok(Some(config))
    }

    /// Every URL of `config` must be an absolute `http(s)` URL.
    fn check(&self, config: &OAuthProviderConfig) -> Result<(), ConfigError> {
        for (name, value) in [
            (self.redirect_url, &config.redirect_url),
            (self.auth_url, &config.auth_url),
            (self.token_url, &config.token_url),
            (self.user_info_url, &config.user_info_url),
        ] {
            match oauth2::url::Url::parse(value) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
                Ok(_) => {
                    return Err(ConfigError::Invalid {
                        name,
                        reason: format!("{value:?} is not an http or https URL"),
                    });
                }
                Err(error) => {
                    return Err(ConfigError::Invalid {
                        name,
                        reason: format!("{value:?} is not a URL: {error}"),
                    });
                }
            }
        }
        Ok(())
    }
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
            github: None,
            google: None,
            limits: Limits::default(),
            public_url: None,
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
            github: GITHUB_VARS.read(&get)?,
            google: GOOGLE_VARS.read(&get)?,
            limits: Limits::read(&get)?,
            public_url: get("OPONN_PUBLIC_URL")
                .map(|url| url.trim().trim_end_matches('/').to_owned()),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules of the environment: staging and production need
    /// every dependency configured and refuse `OPONN_SKIP_CSRF`; every
    /// sign-in provider's endpoints must be URLs.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] naming every missing setting,
    /// [`ConfigError::SkipCsrfRefused`], or [`ConfigError::Invalid`] naming
    /// a provider URL that is not one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url
            && !is_public_url(url)
        {
            return Err(ConfigError::Invalid {
                name: "OPONN_PUBLIC_URL",
                reason: "must be an http:// or https:// origin without a path, such as https://vote.example.org"
                    .to_owned(),
            });
        }
        for (vars, provider) in [(&GITHUB_VARS, &self.github), (&GOOGLE_VARS, &self.google)] {
            if let Some(provider) = provider {
                vars.check(provider)?;
            }
        }
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

/// Whether `url` is an `http`/`https` origin (scheme, host, optional
/// port; no path, since every page links from the site's root) that can be
/// put into a page and a QR code as it is.
fn is_public_url(url: &str) -> bool {
    let Some(host) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    !host.is_empty()
        && host.bytes().all(|byte| {
            byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b':' | b'[' | b']')
        })
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
    /// Some, not all, of a sign-in provider's required settings are set.
    #[error("{provider} sign-in is only partly configured; also set: {}", missing.join(", "))]
    IncompleteProvider {
        /// The provider (`GitHub`, `Google`).
        provider: &'static str,
        /// The variables still missing.
        missing: Vec<&'static str>,
    },
    /// A setting has a value the service cannot use.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<InvalidSetting> for ConfigError {
    fn from(InvalidSetting { name, reason }: InvalidSetting) -> Self {
        ConfigError::Invalid { name, reason }
    }
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
    fn the_public_url_is_an_http_origin_kept_without_its_last_slash() {
        let trimmed = config(&[("OPONN_PUBLIC_URL", " https://vote.example.org/ ")]).unwrap();
        assert_eq!(
            trimmed.public_url.as_deref(),
            Some("https://vote.example.org")
        );
        let with_port = config(&[("OPONN_PUBLIC_URL", "http://127.0.0.1:8000")]).unwrap();
        assert_eq!(
            with_port.public_url.as_deref(),
            Some("http://127.0.0.1:8000")
        );
        for bad in [
            // Every page links from the site's root: a path cannot work.
            "http://127.0.0.1:8000/polls",
            "vote.example.org",
            "ftp://vote.example.org",
            "https://",
            "https://vote.example.org/?a=1",
            "https://vote.example.org/#x",
            "https://vote.example.org/\"><script>",
            "javascript:alert(1)",
        ] {
            let error = config(&[("OPONN_PUBLIC_URL", bad)])
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("OPONN_PUBLIC_URL:"), "{bad}: {error}");
        }
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
    fn a_provider_is_enabled_by_its_id_secret_and_redirect_with_default_endpoints() {
        let config = config(&[
            ("OPONN_GITHUB_CLIENT_ID", "gh-id"),
            ("OPONN_GITHUB_CLIENT_SECRET", "gh-secret"),
            (
                "OPONN_GITHUB_REDIRECT_URL",
                "https://vote.example/auth/github/callback",
            ),
        ])
        .unwrap();
        assert_eq!(
            config.github,
            Some(OAuthProviderConfig::github(
                "gh-id",
                "gh-secret",
                "https://vote.example/auth/github/callback"
            ))
        );
        let github = config.github.unwrap();
        assert_eq!(github.auth_url, "https://github.com/login/oauth/authorize");
        assert_eq!(github.user_info_url, "https://api.github.com");
        assert!(!format!("{github:?}").contains("gh-secret"));
        assert_eq!(config.google, None);
    }

    #[test]
    fn provider_endpoints_can_be_overridden() {
        let config = config(&[
            ("OPONN_GOOGLE_CLIENT_ID", "g-id"),
            ("OPONN_GOOGLE_CLIENT_SECRET", "g-secret"),
            (
                "OPONN_GOOGLE_REDIRECT_URL",
                "http://localhost:8000/auth/google/callback",
            ),
            ("OPONN_GOOGLE_AUTH_URL", "http://127.0.0.1:9000/authorize"),
            ("OPONN_GOOGLE_TOKEN_URL", "http://127.0.0.1:9000/token"),
            (
                "OPONN_GOOGLE_USERINFO_URL",
                "http://127.0.0.1:9000/userinfo",
            ),
        ])
        .unwrap();
        let google = config.google.unwrap();
        assert_eq!(google.auth_url, "http://127.0.0.1:9000/authorize");
        assert_eq!(google.token_url, "http://127.0.0.1:9000/token");
        assert_eq!(google.user_info_url, "http://127.0.0.1:9000/userinfo");
        assert_eq!(config.github, None);
    }

    #[test]
    fn a_partly_configured_provider_names_what_is_missing() {
        let error = config(&[("OPONN_GOOGLE_CLIENT_ID", "g-id")]).unwrap_err();
        let message = error.to_string();
        assert!(matches!(
            error,
            ConfigError::IncompleteProvider {
                provider: "Google",
                ..
            }
        ));
        for name in ["OPONN_GOOGLE_CLIENT_SECRET", "OPONN_GOOGLE_REDIRECT_URL"] {
            assert!(message.contains(name), "{message}");
        }
        assert!(!message.contains("OPONN_GOOGLE_CLIENT_ID"), "{message}");
    }

    #[test]
    fn provider_urls_must_be_http_urls() {
        let error = config(&[
            ("OPONN_GITHUB_CLIENT_ID", "gh-id"),
            ("OPONN_GITHUB_CLIENT_SECRET", "gh-secret"),
            ("OPONN_GITHUB_REDIRECT_URL", "/auth/github/callback"),
        ])
        .unwrap_err();
        assert!(
            error.to_string().starts_with("OPONN_GITHUB_REDIRECT_URL"),
            "{error}"
        );
        let error = config(&[
            ("OPONN_GITHUB_CLIENT_ID", "gh-id"),
            ("OPONN_GITHUB_CLIENT_SECRET", "gh-secret"),
            (
                "OPONN_GITHUB_REDIRECT_URL",
                "https://vote.example/auth/github/callback",
            ),
            ("OPONN_GITHUB_API_URL", "ftp://api.example"),
        ])
        .unwrap_err();
        assert!(
            error.to_string().starts_with("OPONN_GITHUB_API_URL"),
            "{error}"
        );
    }

    #[test]
    fn malformed_values_are_named() {
        let error = config(&[("OPONN_ENV", "prod-ish")]).unwrap_err();
        assert!(error.to_string().starts_with("OPONN_ENV"));
        let error = config(&[("OPONN_SKIP_CSRF", "maybe")]).unwrap_err();
        assert!(error.to_string().starts_with("OPONN_SKIP_CSRF"));
    }
}
