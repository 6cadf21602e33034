//! Accounts: people who signed in through an identity provider.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::ids::AccountId;

/// Longest email address accepted (RFC 5321's path limit).
const EMAIL_MAX_LEN: usize = 254;

/// A verified email address, trimmed and lowercased: the key that makes
/// the same person signing in through two providers one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalizes an address a provider vouched for.
    ///
    /// # Errors
    /// [`InvalidEmail`] for anything without a local part, an `@` and a domain.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= EMAIL_MAX_LEN
            && !email.chars().any(char::is_whitespace)
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.contains('@')
            });
        if valid {
            Ok(Self(email))
        } else {
            Err(InvalidEmail)
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Not an email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a usable email address")]
pub struct InvalidEmail;

/// Who a provider says someone is: the provider's name and its stable id
/// for them (not their email, which may change).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    provider: String,
    subject: String,
}

impl Identity {
    /// An identity at `provider` (`github`, `google`, `mock`, …).
    pub fn new(provider: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            subject: subject.into(),
        }
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The provider's id for the person.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    id: AccountId,
    email: Email,
    created_at: OffsetDateTime,
}

impl Account {
    /// An account as storage holds it.
    pub fn new(id: AccountId, email: Email, created_at: OffsetDateTime) -> Self {
        Self {
            id,
            email,
            created_at,
        }
    }

    /// The account's id.
    pub fn id(&self) -> &AccountId {
        &self.id
    }

    /// The account's email.
    pub fn email(&self) -> &Email {
        &self.email
    }

    /// When the account was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }
}

/// Bytes of randomness in a [`SessionToken`]: 256 bits, far beyond guessing.
const SESSION_TOKEN_BYTES: usize = 32;

/// The secret naming one signed-in session: random, held only by the
/// browser (in its signed session cookie). Storage keeps its
/// [`SessionHash`], so a copy of the database signs no one in.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SESSION_TOKEN_BYTES];
        crate::crypto::fill_random(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as a cookie carries it: `None` unless it is exactly what
    /// [`generate`](SessionToken::generate) makes (43 URL-safe characters).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        (bytes.len() == SESSION_TOKEN_BYTES && URL_SAFE_NO_PAD.encode(&bytes) == text)
            .then(|| Self(text.to_owned()))
    }

    /// The token's text, for the cookie.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What storage keeps of this token.
    pub fn hash(&self) -> SessionHash {
        SessionHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A token signs its holder in; keep it out of logs.
        f.write_str("SessionToken(..)")
    }
}

/// The SHA-256 of a [`SessionToken`]: how storage names a session. The
/// token is 256 random bits, so an unkeyed hash cannot be reversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHash([u8; 32]);

impl SessionHash {
    /// The hash's bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a hash from stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ada@Example.ORG ").unwrap().as_str(),
            "ada@example.org"
        );
        for bad in [
            "",
            "ada",
            "@example.org",
            "ada@",
            "ada@localhost",
            "a b@example.org",
            "a@b@c.org",
        ] {
            assert_eq!(Email::parse(bad), Err(InvalidEmail), "{bad}");
        }
    }

    #[test]
    fn session_tokens_are_random_parse_back_and_hash_apart() {
        let token = SessionToken::generate();
        assert_eq!(token.as_str().len(), 43);
        assert_eq!(SessionToken::parse(token.as_str()), Some(token.clone()));
        let other = SessionToken::generate();
        assert_ne!(token, other);
        assert_ne!(token.hash(), other.hash());
        assert_eq!(token.hash(), token.clone().hash());
        assert!(!format!("{token:?}").contains(token.as_str()));
    }

    #[test]
    fn anything_but_a_generated_token_is_refused() {
        let token = SessionToken::generate();
        let long = format!("{}A", token.as_str());
        for text in ["", "short", &token.as_str()[..42], &long, "a|1|b@c.d"] {
            assert_eq!(SessionToken::parse(text), None, "{text}");
        }
        // 43 characters carry 2 spare bits; only the canonical form parses.
        let canonical = URL_SAFE_NO_PAD.encode([0u8; 32]);
        assert!(SessionToken::parse(&canonical).is_some());
        let mut loose = canonical.clone();
        loose.pop();
        loose.push('B');
        assert_eq!(SessionToken::parse(&loose), None);
    }
}
