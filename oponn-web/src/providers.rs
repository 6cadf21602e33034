//! How sign-in is set up: [`AuthSettings`], read once from the
//! configuration and held by `AppState`, with the OAuth providers'
//! `oauth2` clients (authorization URL, PKCE, code exchange) and the calls
//! that ask each who signed in. The sign-in routes are `crate::auth`'s.

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken as OAuthState,
    EndpointNotSet, EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse as _, TokenUrl,
};
use serde::Deserialize;

use crate::config::{Config, Environment, OAuthProviderConfig};

/// How long one call to a provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// How sign-in is set up, read once from the configuration.
pub(crate) struct AuthSettings {
    /// The OAuth providers configured.
    pub(crate) providers: Providers,
    /// Whether `/auth/mock` signs people in (development and testing only).
    pub(crate) mock: bool,
}

impl AuthSettings {
    /// Sign-in as `config` describes it.
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            providers: Providers::new(config),
            mock: mock_allowed(config.environment),
        }
    }
}

/// Whether the one-click mock provider may sign people in: in development
/// and testing, never in staging or production.
pub(crate) fn mock_allowed(environment: Environment) -> bool {
    !environment.is_strict()
}

/// An `oauth2` client with an authorization and a token endpoint.
type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The identity providers Oponn knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProviderKind {
    /// GitHub OAuth apps.
    GitHub,
    /// Google OAuth clients (OpenID Connect userinfo).
    Google,
}

impl ProviderKind {
    /// Every provider, in the order the login page lists them.
    const ALL: [ProviderKind; 2] = [ProviderKind::GitHub, ProviderKind::Google];

    /// The name in routes and in stored identities.
    pub(crate) fn slug(self) -> &'static str {
        match self {
            ProviderKind::GitHub => "github",
            ProviderKind::Google => "google",
        }
    }

    /// The name people know.
    pub(crate) fn label(self) -> &'static str {
        match self {
            ProviderKind::GitHub => "GitHub",
            ProviderKind::Google => "Google",
        }
    }

    /// What Oponn asks for: who the person is and their verified email.
    fn scopes(self) -> &'static [&'static str] {
        match self {
            ProviderKind::GitHub => &["read:user", "user:email"],
            ProviderKind::Google => &["openid", "email", "profile"],
        }
    }

    /// This provider's settings in `config`, if it is enabled there.
    fn settings(self, config: &Config) -> Option<&OAuthProviderConfig> {
        match self {
            ProviderKind::GitHub => config.github.as_ref(),
            ProviderKind::Google => config.google.as_ref(),
        }
    }
}

/// One configured provider.
pub(crate) struct Provider {
    kind: ProviderKind,
    client: OAuthClient,
    /// GitHub: the API base; Google: the userinfo endpoint.
    user_info_url: String,
}

/// A sign-in under way: where to send the browser, and what to keep until
/// it comes back.
pub(crate) struct Authorization {
    /// The provider's authorization URL, with state and PKCE challenge.
    pub(crate) url: String,
    /// The state the callback must bring back.
    pub(crate) state: String,
    /// The PKCE verifier the code exchange must present.
    pub(crate) pkce_verifier: String,
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProviderIdentity {
    /// The provider's stable id for the person.
    pub(crate) subject: String,
    /// Their verified email.
    pub(crate) email: String,
}

/// Why a provider did not tell who signed in.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderError {
    /// The HTTP client could not be built at startup.
    #[error("no HTTP client: {0}")]
    NoClient(String),
    /// The code could not be exchanged for a token.
    #[error("code exchange failed: {0}")]
    Exchange(String),
    /// A user-info call failed or answered something unreadable.
    #[error("user info request failed: {0}")]
    UserInfo(#[from] reqwest::Error),
    /// The provider answered without something it must send.
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
    /// The provider has no verified email for the person.
    #[error("no verified email")]
    NoVerifiedEmail,
}

impl Provider {
    /// A provider from its settings.
    ///
    /// # Errors
    /// The name and reason of a URL that does not parse.
    fn new(kind: ProviderKind, settings: &OAuthProviderConfig) -> Result<Self, String> {
        let auth_url = AuthUrl::new(settings.auth_url.clone())
            .map_err(|error| format!("authorization URL: {error}"))?;
        let token_url = TokenUrl::new(settings.token_url.clone())
            .map_err(|error| format!("token URL: {error}"))?;
        let redirect_url = RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|error| format!("redirect URL: {error}"))?;
        let client = BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(settings.client_secret.clone()))
            .set_auth_uri(auth_url)
            .set_token_uri(token_url)
            .set_redirect_uri(redirect_url)
            // Both providers document credentials in the request body.
            .set_auth_type(AuthType::RequestBody);
        Ok(Self {
            kind,
            client,
            user_info_url: settings.user_info_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Which provider this is.
    pub(crate) fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// Starts a sign-in: a fresh random state and PKCE (S256) pair.
    pub(crate) fn authorize(&self) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .client
            .authorize_url(OAuthState::new_random)
            .add_scopes(
                self.kind
                    .scopes()
                    .iter()
                    .map(|s| Scope::new((*s).to_owned())),
            )
            .set_pkce_challenge(challenge)
            .url();
        Authorization {
            url: url.into(),
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    /// Exchanges `code` for a token and asks who it belongs to.
    ///
    /// # Errors
    /// [`ProviderError`] when the exchange or a user-info call fails, or
    /// the provider vouches for no email.
    pub(crate) async fn identify(
        &self,
        http: &reqwest::Client,
        code: String,
        pkce_verifier: String,
    ) -> Result<ProviderIdentity, ProviderError> {
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(http)
            .await
            .map_err(|error| ProviderError::Exchange(exchange_error(&error)))?;
        let access = token.access_token().secret();
        match self.kind {
            ProviderKind::GitHub => github_identity(http, &self.user_info_url, access).await,
            ProviderKind::Google => google_identity(http, &self.user_info_url, access).await,
        }
    }
}

/// A code-exchange failure in words fit for the log (never the token).
fn exchange_error<E: std::error::Error>(
    error: &oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> String {
    match error {
        oauth2::RequestTokenError::ServerResponse(response) => {
            format!("the provider refused: {response}")
        }
        oauth2::RequestTokenError::Request(source) => format!("request failed: {source}"),
        oauth2::RequestTokenError::Parse(source, _) => {
            format!("unreadable token response: {source}")
        }
        oauth2::RequestTokenError::Other(reason) => reason.clone(),
    }
}

/// GitHub's `/user`: only the id matters (the login can be renamed).
#[derive(Deserialize)]
struct GitHubUser {
    id: serde_json::Value,
}

/// One entry of GitHub's `/user/emails`.
#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

/// Who a GitHub token belongs to: the numeric user id, and the primary
/// email if GitHub has verified it.
async fn github_identity(
    http: &reqwest::Client,
    api: &str,
    access_token: &str,
) -> Result<ProviderIdentity, ProviderError> {
    let get = |path: &str| {
        http.get(format!("{api}{path}"))
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    };
    let user: GitHubUser = get("/user")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let subject = match user.id {
        serde_json::Value::Number(id) => id.to_string(),
        serde_json::Value::String(id) if !id.is_empty() => id,
        _ => return Err(ProviderError::Malformed("a GitHub user without an id")),
    };
    let emails: Vec<GitHubEmail> = get("/user/emails")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let email = emails
        .into_iter()
        .find(|email| email.primary && email.verified)
        .ok_or(ProviderError::NoVerifiedEmail)?
        .email;
    Ok(ProviderIdentity { subject, email })
}

/// Google's OpenID Connect userinfo.
#[derive(Deserialize)]
struct GoogleUserInfo {
    sub: String,
    email: Option<String>,
    /// Absent means not verified.
    email_verified: Option<Verified>,
}

/// `email_verified`, which some Google endpoints send as a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Verified {
    /// A JSON boolean.
    Bool(bool),
    /// `"true"` or `"false"`.
    Text(String),
}

impl Verified {
    /// Whether Google vouches for the email.
    fn is_true(&self) -> bool {
        match self {
            Verified::Bool(verified) => *verified,
            Verified::Text(text) => text.eq_ignore_ascii_case("true"),
        }
    }
}

/// Who a Google token belongs to: `sub`, and the email if
/// `email_verified` is true.
async fn google_identity(
    http: &reqwest::Client,
    userinfo: &str,
    access_token: &str,
) -> Result<ProviderIdentity, ProviderError> {
    let info: GoogleUserInfo = http
        .get(userinfo)
        .bearer_auth(access_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    match info.email {
        Some(email)
            if info.email_verified.as_ref().is_some_and(Verified::is_true)
                && !info.sub.is_empty() =>
        {
            Ok(ProviderIdentity {
                subject: info.sub,
                email,
            })
        }
        _ => Err(ProviderError::NoVerifiedEmail),
    }
}

/// The configured providers and the HTTP client that talks to them.
pub(crate) struct Providers {
    providers: Vec<Provider>,
    /// Follows no redirects, as `oauth2` recommends: a token or user-info
    /// endpoint must not be able to bounce Oponn's requests elsewhere (SSRF).
    http: Result<reqwest::Client, String>,
}

impl Providers {
    /// The providers `config` enables; one whose URLs do not parse is left
    /// out, with an error in the log.
    pub(crate) fn new(config: &Config) -> Self {
        let providers = ProviderKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let settings = kind.settings(config)?;
                Provider::new(kind, settings)
                    .inspect_err(|reason| {
                        let provider = kind.slug();
                        tracing::error!(provider, %reason, "sign-in provider disabled");
                    })
                    .ok()
            })
            .collect();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .user_agent(concat!("oponn/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| error.to_string());
        if let Err(reason) = &http {
            tracing::error!(%reason, "no HTTP client for sign-in providers");
        }
        Self { providers, http }
    }

    /// The configured provider named `slug`.
    pub(crate) fn get(&self, slug: &str) -> Option<&Provider> {
        self.providers
            .iter()
            .find(|provider| provider.kind.slug() == slug)
    }

    /// Every configured provider.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.providers.iter()
    }

    /// The client for provider calls.
    ///
    /// # Errors
    /// [`ProviderError::NoClient`] when it could not be built at startup.
    pub(crate) fn http(&self) -> Result<&reqwest::Client, ProviderError> {
        self.http
            .as_ref()
            .map_err(|reason| ProviderError::NoClient(reason.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mock_provider_is_refused_in_staging_and_production() {
        assert!(mock_allowed(Environment::Development));
        assert!(mock_allowed(Environment::Testing));
        assert!(!mock_allowed(Environment::Staging));
        assert!(!mock_allowed(Environment::Production));
    }

    #[test]
    fn production_configuration_offers_no_mock_provider() {
        let config = Config::from_lookup(|name| {
            match name {
                "OPONN_ENV" => Some("production"),
                "DATABASE_URL" => Some("postgres://db/oponn"),
                "REDIS_URL" => Some("redis://redis"),
                "OPONN_KMS_KEY_ID" => Some("alias/oponn"),
                "OPONN_SECRET_KEY" => Some("a production secret"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .unwrap();
        assert!(!AuthSettings::new(&config).mock);
        assert!(AuthSettings::new(&Config::development()).mock);
    }
}
